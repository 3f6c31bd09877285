"""Real local servers (PostgreSQL, Pushgateway, Prometheus, moto) for tests and `make demo`.

Each binds 127.0.0.1 on a free port, waits for readiness by polling with a
bounded timeout, and is stopped by its own PID (never by process name).
"""

from tests.standins._process import StandinError
from tests.standins.aws import MotoServer
from tests.standins.postgres import PostgresServer
from tests.standins.prometheus import Prometheus
from tests.standins.pushgateway import Pushgateway

__all__ = ["MotoServer", "PostgresServer", "Prometheus", "Pushgateway", "StandinError"]
