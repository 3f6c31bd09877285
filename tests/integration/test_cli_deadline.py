"""`collect` ends with its budget even when a server accepts and never answers: the target
is reported down (pg_up 0, reason deadline) and the process does not wait for the stuck
worker's socket timeouts before exiting."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import child_env
from tests.standins.silent import SilentServer

# Far longer than the budget: a process that waited for them would hit the run's timeout.
SOCKET_TIMEOUTS = {"PG_CONNECT_TIMEOUT_SECONDS": "60", "PG_STATEMENT_TIMEOUT_MS": "60000"}


def test_collect_returns_with_its_budget_against_a_silent_server() -> None:
    with SilentServer() as silent:
        environ = {
            "PG_DATABASE": silent.host,
            "PG_PORT": str(silent.port),
            "PG_USER": "monitor",
            "PG_TARGET_NAME": "silent-db",
            **SOCKET_TIMEOUTS,
        }
        done = subprocess.run(
            [sys.executable, "-m", "middleware_monitoring", "collect", "--budget", "1"],
            env=child_env(environ),
            capture_output=True,
            text=True,
            timeout=30,  # the bound under test: 30 s, against 60 s socket timeouts
            check=False,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert 'pg_up{instance="silent-db"} 0.0' in lines
    assert (
        'middleware_collector_failure{instance="silent-db",reason="deadline",source="postgres"} 1.0'
        in lines
    )
