"""IAM database authentication (SPEC 9) for real: the RDS auth token the collector makes
(botocore's signer, fixed credentials and a fixed clock, so the token is known in advance)
is set as a local role's password on a PostgreSQL with TLS, and the collector logs in with
it; after the clock moves past the token's reuse age it makes and uses a new one.

Only the signing clock is fixed (botocore's get_current_datetime): RDS checks a token's
signature, this server compares it as a password; what is tested is that the collector
sends the token for its host, port, user and region, over TLS, and renews it in time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from middleware_monitoring.aws import AwsSessions
from middleware_monitoring.config import PostgresSettings, load_settings
from middleware_monitoring.credentials import TOKEN_REUSE_SECONDS, iam_token_login
from middleware_monitoring.logs import REDACTED, scrubber
from middleware_monitoring.postgres.connection import PgConnection
from middleware_monitoring.postgres.source import PostgresSource
from middleware_monitoring.runtime import Runtime
from tests.helpers import Closer, closing
from tests.integration.test_postgres_tls import start_tls_server
from tests.standins.postgres import PostgresServer
from tests.standins.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration

ACCESS_KEY = "AKIDEXAMPLEIAMAUTH01"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-1"
USER = "iam_monitor"
T0 = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("iam-tls"))


@pytest.fixture(scope="module")
def tls_server(tls_files: TlsFiles) -> Iterator[PostgresServer]:
    server = start_tls_server(tls_files)
    yield server
    server.cleanup()


@pytest.fixture
def signing_clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """Fixed credentials for boto3 (as the function's role would give) and botocore's signing
    time, which the test moves by replacing the list's element."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    now = [T0]

    def current(remove_tzinfo: bool = True) -> dt.datetime:
        return now[0].replace(tzinfo=None) if remove_tzinfo else now[0]

    # awscrt's signer (when installed, as here) or botocore's own: both ask this.
    monkeypatch.setattr("botocore.auth.get_current_datetime", current)
    monkeypatch.setattr("botocore.crt.auth.get_current_datetime", current)
    return now


def token_at(server: PostgresServer, now: list[dt.datetime], at: dt.datetime) -> str:
    """What a token for the test server must be at ``at``, made apart from the collector."""
    saved, now[0] = now[0], at
    try:
        client = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
        ).client("rds", region_name=REGION)
        return str(client.generate_db_auth_token(server.host, server.port, USER, REGION))
    finally:
        now[0] = saved


def iam_settings(server: PostgresServer, tls: TlsFiles) -> PostgresSettings:
    settings = load_settings(
        {
            "PG_DATABASE": server.host,
            "PG_PORT": str(server.port),
            "PG_USER": USER,
            "PG_IAM_AUTH": "true",
            # The certificate names 127.0.0.1: verify-full checks the CA and the host.
            "PG_SSLMODE": "verify-full",
            "PG_SSLROOTCERT": str(tls.ca),
            "PG_QPS_SAMPLE_SECONDS": "0",
            "AWS_REGION": REGION,
        }
    ).postgres
    assert settings is not None
    return settings


def up(source: PostgresSource) -> float:
    return next(f for f in source.collect() if f.name == "pg_up").samples[0].value


def test_the_token_is_the_password_over_tls_and_is_renewed(
    tls_server: PostgresServer, tls_files: TlsFiles, signing_clock: list[dt.datetime]
) -> None:
    first = token_at(tls_server, signing_clock, T0)
    # The token of RDS: host:port/?Action=connect&DBUser=..., SigV4-signed for rds-db.
    parts = urlsplit(f"//{first}")
    query = parse_qs(parts.query)
    assert (parts.hostname, parts.port) == (tls_server.host, tls_server.port)
    assert (query["Action"], query["DBUser"], query["X-Amz-Expires"]) == (
        ["connect"],
        [USER],
        ["900"],
    )
    assert query["X-Amz-Credential"] == [f"{ACCESS_KEY}/20261201/{REGION}/rds-db/aws4_request"]
    tls_server.create_role(USER, first)

    clock = [1000.0]
    settings = iam_settings(tls_server, tls_files)
    login = iam_token_login(settings, AwsSessions(REGION), clock=lambda: clock[0])
    connection = PgConnection(settings, login=login)
    with closing(PostgresSource(settings, connection)) as source:
        assert up(source) == 1.0
        assert connection.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [
            [True]
        ]

        # Past the reuse age (well before the token's 15 minutes): the next connect signs
        # a new token, and only the new one is accepted now.
        clock[0] += TOKEN_REUSE_SECONDS + 100
        signing_clock[0] = T0 + dt.timedelta(seconds=TOKEN_REUSE_SECONDS + 100)
        renewed = token_at(tls_server, signing_clock, signing_clock[0])
        assert renewed != first
        tls_server.create_role(USER, renewed)
        source.close()
        assert up(source) == 1.0

        # Within the reuse age the token is not made again: a new one would be refused.
        clock[0] += 100
        signing_clock[0] += dt.timedelta(seconds=100)
        source.close()
        assert up(source) == 1.0

        # A token the server refuses is replaced at once, whatever its age.
        signing_clock[0] += dt.timedelta(seconds=60)
        third = token_at(tls_server, signing_clock, signing_clock[0])
        tls_server.create_role(USER, third)
        source.close()
        assert up(source) == 1.0

    # Log lines are scrubbed of the token in use and the one before it; the first has
    # expired and is no longer looked for (a warm instance would otherwise gather them all).
    assert [scrubber.scrub(token) for token in (first, renewed, third)] == [
        first,
        REDACTED,
        REDACTED,
    ]


def test_a_targets_file_entry_with_iam_auth_logs_in(
    tls_server: PostgresServer,
    tls_files: TlsFiles,
    signing_clock: list[dt.datetime],
    tmp_path: Path,
    closer: Closer,
) -> None:
    tls_server.create_role(USER, token_at(tls_server, signing_clock, T0))
    entry = {
        "name": "iam-db",
        "host": tls_server.host,
        "port": tls_server.port,
        "user": USER,
        "iam_auth": True,
        "sslmode": "verify-full",
        "sslrootcert": str(tls_files.ca),
    }
    (tmp_path / "targets.json").write_text(json.dumps({"postgres": [entry]}))
    runtime = closer(
        Runtime.from_environ(
            {
                "TARGETS_FILE": str(tmp_path / "targets.json"),
                "AWS_REGION": REGION,
                "PG_QPS_SAMPLE_SECONDS": "0",
            }
        )
    )
    result = runtime.collect(10.0)
    (target,) = result.targets
    assert [(o.source, o.up, o.reason) for o in target.outcomes] == [("postgres", True, None)]
