"""Session-scoped stand-in servers. Each starts on first use and once per run (under
pytest-xdist, once per worker: `make test` runs the suite on parallel workers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Closer
from tests.standins.aws import MotoServer
from tests.standins.postgres import PG_VERSIONS, PostgresServer
from tests.standins.prometheus import Prometheus
from tests.standins.pushgateway import Pushgateway
from tests.standins.redis import MONITOR, TOKEN, RedisServer
from tests.standins.tls import TlsFiles, make_tls_files

# `make test` runs on pytest-xdist workers, a module to a worker (`--dist loadscope`, the
# scheduler below): module-, package- and class-scoped fixtures (a `sam build`, a whole quick
# bench, a stopped-and-restarted server) are set up once, and a module's tests keep their
# order. Modules whose tests are long and independent of each other go test by test.
SPREAD_MODULES = frozenset({"tests/faults/test_config_fuzz.py"})
# The longest modules first: one that starts last makes the run's tail.
LONGEST_FIRST = (
    "tests/integration/test_bench_smoke.py",
    "tests/faults/test_config_fuzz.py",
    "tests/integration/test_template_stacks.py",
    "tests/integration/test_sam_build.py",
    "tests/integration/test_dashboards_e2e.py",
    "tests/integration/test_bench_discovery.py",
    "tests/integration/test_postgres_failover.py",
    "tests/faults/test_fleet_faults.py",
    "tests/faults/test_pushgateway_faults.py",
    "tests/faults/test_load.py",
    "tests/integration/test_postgres_health.py",
    "tests/integration/test_postgres_health_capabilities.py",
    "tests/integration/test_discovery.py",
    "tests/integration/test_postgres.py",
)


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first, each module's own order kept (after pytest's own
    reordering by fixture parameters, which runs before this)."""
    rank = {module: i for i, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item.nodeid), len(rank)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope`, a work unit per module (a test per unit for SPREAD_MODULES), in
    collection order (`--no-loadscope-reorder`). xdist's own `loadgroup` cannot be used: it
    marks groups by rewriting node ids, which pytest 9 no longer reads."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return nodeid if module in SPREAD_MODULES else module

    return ModuleScheduling(config, log)


def _postgres(version: int) -> Iterator[PostgresServer]:
    server = PostgresServer(version)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg15() -> Iterator[PostgresServer]:
    yield from _postgres(15)


@pytest.fixture(scope="session")
def pg17() -> Iterator[PostgresServer]:
    yield from _postgres(17)


@pytest.fixture(scope="session")
def pg18() -> Iterator[PostgresServer]:
    yield from _postgres(18)


@pytest.fixture(scope="session", params=PG_VERSIONS, ids=[f"pg{v}" for v in PG_VERSIONS])
def pg_server(request: pytest.FixtureRequest) -> PostgresServer:
    """Each supported PostgreSQL version in turn (the shared session servers)."""
    server: PostgresServer = request.getfixturevalue(f"pg{request.param}")
    return server


@pytest.fixture(scope="session")
def pushgateway() -> Iterator[Pushgateway]:
    with Pushgateway() as gateway:
        yield gateway


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def prometheus(pushgateway: Pushgateway) -> Iterator[Prometheus]:
    with Prometheus(pushgateway.address) as prom:
        yield prom


@pytest.fixture(scope="session")
def redis_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The test CA of the shared redis-server and a certificate it signed for 127.0.0.1."""
    return make_tls_files(tmp_path_factory.mktemp("redis-tls"))


@pytest.fixture(scope="session")
def redis_server(redis_tls: TlsFiles) -> Iterator[RedisServer]:
    """An ElastiCache-like node shared by the tests that do not reconfigure it: the AUTH
    token ``TOKEN``, the RBAC user ``MONITOR`` (INFO, PING and SLOWLOG only), TLS beside plain."""
    with RedisServer(password=TOKEN, users=[MONITOR], tls=redis_tls) as server:
        yield server


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    """The shared redis-server emptied, its statistics and ACL log zeroed for this test."""
    redis_server.reset()
    return redis_server


@pytest.fixture(scope="session")
def remote_write_receiver() -> Iterator[Prometheus]:
    """A Prometheus that scrapes nothing and takes remote write at ``remote_write_url``."""
    with Prometheus(None, remote_write_receiver=True) as prom:
        yield prom


@pytest.fixture
def clean_pushgateway(pushgateway: Pushgateway) -> Pushgateway:
    """The session Pushgateway, emptied for this test."""
    pushgateway.wipe()
    return pushgateway


@pytest.fixture
def clean_moto(moto_server: MotoServer) -> MotoServer:
    """The session moto server with every resource and metric forgotten."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def closer() -> Iterator[Closer]:
    """``closer(x)`` returns x and closes it when the test ends (tests.helpers.close)."""
    made = Closer()
    yield made
    made.close_all()
