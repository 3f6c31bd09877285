"""Session-scoped stand-in servers. Each starts on first use and once per run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Closer
from tests.standins.aws import MotoServer
from tests.standins.postgres import PG_VERSIONS, PostgresServer
from tests.standins.prometheus import Prometheus
from tests.standins.pushgateway import Pushgateway
from tests.standins.redis import MONITOR, TOKEN, RedisServer
from tests.standins.tls import TlsFiles, make_tls_files


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
