from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.deployed import SamArtifact, packaged_targets, sam_build
from tests.integration.pg_helpers import prepare
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront
from tests.standins.postgres import PostgresServer
from tests.standins.redis import RedisServer

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration talks to real servers: `-m "not integration"`
    # gives a quick unit-only run without remembering to mark each test.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def fleet_servers(
    pg17: PostgresServer, redis_server: RedisServer
) -> tuple[PostgresServer, RedisServer]:
    """The servers the packaged targets document names (sam_artifact's targets.yaml)."""
    return prepare(pg17), redis_server


@pytest.fixture(scope="session")
def sam_artifact(
    tmp_path_factory: pytest.TempPathFactory, fleet_servers: tuple[PostgresServer, RedisServer]
) -> SamArtifact:
    """The session's one `sam build` of the template, with a targets document packaged next
    to app.py (TARGETS_FILE=targets.yaml) naming the session's PostgreSQL and redis-server."""
    pg, redis = fleet_servers
    return sam_build(tmp_path_factory.mktemp("sam"), {"targets.yaml": packaged_targets(pg, redis)})


@pytest.fixture
def front(clean_moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsFront]:
    """The AWS stand-ins as the function sees them: moto for CloudWatch, Logs and Secrets
    Manager, the front (then moto) for RDS, DocumentDB, ElastiCache, STS and tagging;
    credentials and endpoints from the process environment, as botocore reads them in Lambda."""
    with AwsFront(clean_moto.endpoint_url) as made:
        for name, value in {**clean_moto.env(), **made.env()}.items():
            monkeypatch.setenv(name, value)
        yield made
