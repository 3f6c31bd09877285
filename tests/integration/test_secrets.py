"""PostgreSQL logins from Secrets Manager (moto) against a real PostgreSQL: the RDS secret
shape, rotation (cache expiry, and a refused password re-read at once), unreadable secrets
that take down only their own target, and no secret value in any log line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters import base as parameters_base

from middleware_monitoring.config import SecretStoreSettings, load_settings
from middleware_monitoring.credentials import SecretStore, pg_secret_login
from middleware_monitoring.model import SourceFailure, Target
from middleware_monitoring.postgres.connection import PgConnection
from middleware_monitoring.postgres.source import PostgresSource
from middleware_monitoring.runner import run_pass
from middleware_monitoring.runtime import Runtime
from tests.integration.pg_helpers import APP_DB, MONITOR, prepare, settings_for
from tests.standins.aws import MotoServer
from tests.standins.postgres import PostgresServer

ROTATING = "mm_rotating"
FIRST_PASSWORD = "first-Secret-pw-5150"
SECOND_PASSWORD = "second-Secret-pw-8086"
# No cold-start QPS window: these tests are about the login.
FAST = {"PG_QPS_SAMPLE_SECONDS": "0"}


@pytest.fixture(scope="module")
def pg(pg17: PostgresServer) -> PostgresServer:
    return prepare(pg17)


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """boto3 reads endpoint, region and credentials from the environment, as in Lambda."""
    moto_server.reset()
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    yield moto_server


class _Records(logging.Handler):
    """Every record of the package (at DEBUG) and of the root logger, before any scrubbing:
    a secret must not reach a log call in the first place."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not any(kept is record for kept in self.records):
            self.records.append(record)

    def getvalue(self) -> str:
        return "\n".join(
            record.getMessage() + " " + json.dumps(record.__dict__, default=str)
            for record in self.records
        )


@pytest.fixture
def log() -> Iterator[_Records]:
    handler = _Records()
    package = logging.getLogger("middleware_monitoring")
    saved_level = package.level
    package.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(), package]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
    package.setLevel(saved_level)


@pytest.fixture
def rotating_role(pg: PostgresServer) -> str:
    pg.create_role(ROTATING, FIRST_PASSWORD, monitor=True)
    return ROTATING


def rds_secret(pg: PostgresServer, user: str, password: str, **extra: Any) -> str:
    """The JSON an RDS-attached secret holds (what rotation templates write)."""
    return json.dumps(
        {
            "engine": "postgres",
            "username": user,
            "password": password,
            "host": pg.host,
            "port": pg.port,
            "dbname": APP_DB,
            "dbInstanceIdentifier": "db-1",
            **extra,
        }
    )


def create_secret(aws: MotoServer, name: str, value: str) -> str:
    arn: str = aws.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
    return arn


def put_value(aws: MotoServer, arn: str, value: str) -> None:
    aws.client("secretsmanager").put_secret_value(SecretId=arn, SecretString=value)


def terminate_sessions(pg: PostgresServer, user: str) -> None:
    """What a failover or an idle timeout does to the warm function's kept connection."""
    pg.execute_as_superuser(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :u", u=user
    )


def store(max_age: int = 300) -> SecretStore:
    return SecretStore(SecretStoreSettings(region="us-east-1", max_age_seconds=max_age))


def test_rds_secret_alone_gives_host_port_database_and_login(aws, pg, rotating_role, log, closer):
    arn = create_secret(aws, "rds!db-1", rds_secret(pg, rotating_role, FIRST_PASSWORD))
    runtime = closer(
        Runtime.from_environ(
            {"PG_SECRET_ARN": arn, "PG_TARGET_NAME": "orders-db", "PG_SSLMODE": "disable", **FAST}
        )
    )
    result = runtime.collect(20.0)
    (target,) = result.targets
    assert (target.target, target.up) == ("orders-db", True)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in target.families
        for s in family.samples
    }
    assert samples[("pg_up", ())] == 1.0
    # Connected to the secret's host, port and dbname, as the secret's user.
    rows = pg.execute_as_superuser(
        "SELECT datname FROM pg_stat_activity WHERE usename = :u", u=rotating_role
    )
    assert rows == [[APP_DB]]
    assert FIRST_PASSWORD not in log.getvalue()


def test_variables_win_over_the_secret_for_host_port_and_dbname(aws, pg, rotating_role):
    secret = rds_secret(pg, rotating_role, FIRST_PASSWORD, host="db.invalid", port="1")
    arn = create_secret(aws, "rds!db-2", secret)
    settings = load_settings(
        {
            "PG_SECRET_ARN": arn,
            "PG_DATABASE": pg.host,
            "PG_PORT": str(pg.port),
            "PG_DBNAME": "postgres",
        }
    ).postgres
    assert settings is not None
    login = pg_secret_login(settings, store())(False)
    assert (login.host, login.port, login.user, login.database) == (
        pg.host,
        pg.port,
        rotating_role,
        "postgres",
    )
    assert login.password == FIRST_PASSWORD
    assert FIRST_PASSWORD not in repr(login)


def test_pg_user_wins_over_the_secrets_username(aws, pg, rotating_role):
    arn = create_secret(aws, "rds!db-3", rds_secret(pg, rotating_role, FIRST_PASSWORD))
    settings = load_settings(
        {"PG_SECRET_ARN": arn, "PG_TARGET_NAME": "orders-db", "PG_USER": "monitor_override"}
    ).postgres
    assert settings is not None
    login = pg_secret_login(settings, store())(False)
    assert (login.user, login.password) == ("monitor_override", FIRST_PASSWORD)


class _Later(dt.datetime):
    """``datetime`` for Powertools' cache, ``shift`` seconds in the future."""

    shift = 0.0

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _Later:
        real = dt.datetime.now(tz) + dt.timedelta(seconds=cls.shift)
        return cls.fromtimestamp(real.timestamp(), tz)


def test_rotated_secret_is_used_once_the_cache_expires(aws, pg, rotating_role, monkeypatch):
    arn = create_secret(aws, "rds!db-3", rds_secret(pg, rotating_role, FIRST_PASSWORD))
    settings = load_settings({"PG_SECRET_ARN": arn, "PG_TARGET_NAME": "db"}).postgres
    assert settings is not None
    login = pg_secret_login(settings, store(max_age=60))
    assert login(False).password == FIRST_PASSWORD

    put_value(aws, arn, rds_secret(pg, rotating_role, SECOND_PASSWORD))
    monkeypatch.setattr(parameters_base, "datetime", _Later)
    _Later.shift = 59
    assert login(False).password == FIRST_PASSWORD  # still cached: no call to Secrets Manager
    _Later.shift = 61
    assert login(False).password == SECOND_PASSWORD


def test_refused_password_rereads_the_secret_at_once(aws, pg, rotating_role, log, closer):
    arn = create_secret(aws, "rds!db-4", rds_secret(pg, rotating_role, FIRST_PASSWORD))
    environ = {"PG_SECRET_ARN": arn, "PG_TARGET_NAME": "db", "PG_SSLMODE": "disable", **FAST}
    runtime = closer(Runtime.from_environ(environ))
    assert runtime.collect(20.0).targets[0].up

    # Rotation: new password in the database and the secret; the kept connection is lost.
    pg.create_role(rotating_role, SECOND_PASSWORD)
    put_value(aws, arn, rds_secret(pg, rotating_role, SECOND_PASSWORD))
    terminate_sessions(pg, rotating_role)

    result = runtime.collect(20.0)
    assert [(t.target, t.up) for t in result.targets] == [("db", True)]
    text = log.getvalue()
    assert FIRST_PASSWORD not in text and SECOND_PASSWORD not in text


def test_unreadable_secret_takes_down_only_its_own_target(aws, pg, log, closer):
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"
    broken_settings = load_settings({"PG_SECRET_ARN": missing, "PG_TARGET_NAME": "a"}).postgres
    assert broken_settings is not None
    secrets = store()
    broken = closer(
        PostgresSource(
            broken_settings,
            PgConnection(broken_settings, login=pg_secret_login(broken_settings, secrets)),
        )
    )
    healthy = closer(PostgresSource(settings_for(pg)))
    result = run_pass(
        [Target("a", [broken]), Target("b", [healthy])],
        deadline=time.monotonic() + 20,
        max_workers=2,
        collector_instance="collector",
    )
    a, b = result.targets
    assert (a.up, b.up) == (False, True)
    (outcome,) = a.outcomes
    assert (outcome.reason, outcome.detail) == (
        "secret_unavailable",
        f"cannot read PG_SECRET_ARN ({missing}): ResourceNotFoundException",
    )
    pg_up = {s.value for f in a.families if f.name == "pg_up" for s in f.samples}
    assert pg_up == {0.0}
    (down,) = [r for r in log.records if r.getMessage() == "source down"]
    assert (down.__dict__["target"], down.__dict__["reason"]) == ("a", "secret_unavailable")


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (
            "not json at all " + FIRST_PASSWORD,
            "PG_SECRET_ARN ({arn}) is not JSON; expected the RDS shape "
            '{{"username": "...", "password": "...", "host": "...", "port": 5432, '
            '"dbname": "..."}} (host, port and dbname optional)',
        ),
        (
            json.dumps({"username": MONITOR}),
            "PG_SECRET_ARN ({arn}) has no password string; expected the RDS shape "
            '{{"username": "...", "password": "...", "host": "...", "port": 5432, '
            '"dbname": "..."}} (host, port and dbname optional)',
        ),
        (
            json.dumps({"username": MONITOR, "password": FIRST_PASSWORD}),
            "PG_SECRET_ARN ({arn}) has no host and PG_DATABASE is not set; set one of them",
        ),
    ],
    ids=["not-json", "no-password", "no-host"],
)
def test_malformed_secret_is_a_clear_target_failure(aws, pg, log, value, detail, closer):
    arn = create_secret(aws, "malformed", value)
    runtime = closer(Runtime.from_environ({"PG_SECRET_ARN": arn, "PG_TARGET_NAME": "db", **FAST}))
    (target,) = runtime.collect(20.0).targets
    (outcome,) = target.outcomes
    assert (outcome.reason, outcome.detail) == ("secret_invalid", detail.format(arn=arn))
    assert [r.__dict__["reason"] for r in log.records if r.getMessage() == "source down"] == [
        "secret_invalid"
    ]
    assert FIRST_PASSWORD not in log.getvalue()


def test_a_file_targets_unreadable_secret_names_its_entry(aws, tmp_path, closer):
    """The environment's targets name PG_SECRET_ARN / MONGO_SECRET_ARN; a file's name the
    entry whose secret_arn could not be read."""
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"
    path = tmp_path / "targets.json"
    path.write_text(
        json.dumps(
            {
                "postgres": [{"name": "orders-db", "host": "127.0.0.1", "secret_arn": missing}],
                "docdb": [{"name": "orders-docdb", "host": "127.0.0.1", "secret_arn": missing}],
            }
        )
    )
    runtime = closer(Runtime.from_environ({"TARGETS_FILE": str(path), **FAST}))
    details = {
        target.target: [(o.reason, o.detail) for o in target.outcomes]
        for target in runtime.collect(20.0).targets
    }
    where = f"TARGETS_FILE ({path})"
    assert details == {
        "orders-db": [
            (
                "secret_unavailable",
                f"cannot read the secret_arn of {where} postgres[0] (orders-db) ({missing}): "
                "ResourceNotFoundException",
            )
        ],
        "orders-docdb": [
            (
                "secret_unavailable",
                f"cannot read the secret_arn of {where} docdb[0] (orders-docdb) ({missing}): "
                "ResourceNotFoundException",
            )
        ],
    }


def test_a_secret_is_read_in_the_region_its_arn_names(aws: MotoServer):
    """The function runs in us-east-1; the secret lives in eu-central-1 (docs/fleet.md's
    example): it is read there. A plain name is read in the function's region."""
    far = aws.client("secretsmanager", region_name="eu-central-1")
    arn = far.create_secret(
        Name="monitoring/orders-db", SecretString=json.dumps({"username": "far", "password": "p"})
    )["ARN"]
    assert ":eu-central-1:" in arn
    aws.client("secretsmanager").create_secret(
        Name="monitoring/near", SecretString=json.dumps({"username": "near", "password": "p"})
    )
    store = SecretStore(SecretStoreSettings(region=aws.region))
    assert store.read_json(arn, "secret_arn")["username"] == "far"
    assert store.read_json("monitoring/near", "secret_arn")["username"] == "near"
    # The same name in the function's region is another secret: absent there.
    with pytest.raises(SourceFailure) as caught:
        store.read_json(arn.replace(":eu-central-1:", ":us-east-1:"), "secret_arn")
    assert caught.value.reason == "secret_unavailable"
    assert str(caught.value).endswith(": ResourceNotFoundException")
