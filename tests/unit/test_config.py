"""Configuration: good environments give typed settings, bad ones one error listing every
problem with the variable's name and the expected shape, and never a secret."""

from __future__ import annotations

import pytest

from middleware_monitoring.config import (
    ConfigError,
    PostgresSettings,
    RemoteWriteSettings,
    load_settings,
)

PASSWORD = "Sup3r-s3cret-pw"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rw-login"

PG_OK = {
    "PG_DATABASE": "db.example.internal",
    "PG_PORT": "5433",
    "PG_USER": "monitor",
    "PG_PWD": PASSWORD,
    "PG_DBNAME": "app",
}


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    return caught.value.problems


def test_empty_environment_skips_postgres() -> None:
    settings = load_settings({})
    assert settings.postgres is None
    assert settings.pushgateway.url is None
    assert settings.pushgateway.job == "aws-middleware-monitoring"
    assert settings.pushgateway.timeout_seconds == 5.0
    assert settings.pushgateway.retries == 2
    assert settings.sink == "pushgateway"
    assert settings.collector_instance == "collector"
    assert settings.secrets() == []


def test_postgres_settings_typed_with_defaults() -> None:
    settings = load_settings(PG_OK)
    assert settings.postgres == PostgresSettings(
        target_name="db.example.internal",
        host="db.example.internal",
        port=5433,
        user="monitor",
        password=PASSWORD,
        database="app",
        sslmode="prefer",
        sslrootcert=None,
        connect_timeout_seconds=5.0,
        statement_timeout_ms=5000,
        statements_top_n=20,
        query_max_length=300,
        qps_sample_seconds=1.0,
        rds_id=None,
        rds_type="DBInstanceIdentifier",
    )
    assert settings.secrets() == [PASSWORD]
    # The dataclass repr (tracebacks, debuggers) leaves the password out.
    assert PASSWORD not in repr(settings)


def test_postgres_optional_values() -> None:
    settings = load_settings(
        {
            "PG_DATABASE": " 10.0.0.7 ",
            "PG_USER": "monitor",
            "AWS_RDS_INSTANCE_ID": "aurora-prod",
            "AWS_RDS_TYPE": "DBClusterIdentifier",
            "PG_STATEMENTS_TOP_N": "0",
            "PG_QUERY_MAX_LENGTH": "20",
            "PG_QPS_SAMPLE_SECONDS": "0",
            "PG_STATEMENT_TIMEOUT_MS": "60000",
            "PG_SSLMODE": "verify-full",
            "PG_SSLROOTCERT": "global-bundle.pem",
        }
    )
    pg = settings.postgres
    assert pg is not None
    assert (pg.host, pg.port, pg.database, pg.password) == ("10.0.0.7", 5432, "postgres", "")
    assert (pg.rds_id, pg.rds_type, pg.target_name) == (
        "aurora-prod",
        "DBClusterIdentifier",
        "aurora-prod",
    )
    assert (pg.statements_top_n, pg.query_max_length, pg.qps_sample_seconds) == (0, 20, 0.0)
    assert pg.statement_timeout_ms == 60000
    assert (pg.sslmode, pg.sslrootcert) == ("verify-full", "global-bundle.pem")
    assert settings.secrets() == []


def test_target_name_override_wins() -> None:
    settings = load_settings({**PG_OK, "AWS_RDS_INSTANCE_ID": "rds-1", "PG_TARGET_NAME": "orders"})
    assert settings.postgres is not None
    assert settings.postgres.target_name == "orders"


def test_pushgateway_settings() -> None:
    settings = load_settings(
        {
            "PUSHGATEWAY_URL": "https://push.example:9091",
            "PUSHGATEWAY_JOB": "mm",
            "PUSHGATEWAY_USERNAME": "pusher",
            "PUSHGATEWAY_PASSWORD": "push-pw-123",
            "PUSHGATEWAY_TIMEOUT_SECONDS": "2.5",
            "PUSHGATEWAY_RETRIES": "0",
        }
    )
    gateway = settings.pushgateway
    assert (gateway.url, gateway.job, gateway.username, gateway.password) == (
        "https://push.example:9091",
        "mm",
        "pusher",
        "push-pw-123",
    )
    assert (gateway.timeout_seconds, gateway.retries) == (2.5, 0)
    assert settings.secrets() == ["push-pw-123"]
    assert "push-pw-123" not in repr(settings)


BAD = [
    pytest.param(
        {**PG_OK, "PG_PORT": "abc"},
        ["PG_PORT: expected a port number from 1 to 65535, got 'abc'"],
        id="port-not-a-number",
    ),
    pytest.param(
        {**PG_OK, "PG_PORT": "65536"},
        ["PG_PORT: expected a port number from 1 to 65535, got '65536'"],
        id="port-too-big",
    ),
    pytest.param(
        {**PG_OK, "PG_PORT": "-1"},
        ["PG_PORT: expected a port number from 1 to 65535, got '-1'"],
        id="port-negative",
    ),
    pytest.param(
        {**PG_OK, "PG_PORT": "0"},
        ["PG_PORT: expected a port number from 1 to 65535, got '0'"],
        id="port-zero",
    ),
    pytest.param(
        {**PG_OK, "AWS_RDS_TYPE": "DBInstance"},
        [
            "AWS_RDS_TYPE: expected one of DBInstanceIdentifier, DBClusterIdentifier, "
            "got 'DBInstance'"
        ],
        id="rds-type",
    ),
    pytest.param(
        {"PG_PWD": PASSWORD},
        [
            "PG_DATABASE: is required (the PostgreSQL host name or IP) when PostgreSQL is "
            "configured (PG_PWD set)",
            "PG_USER: is required when PostgreSQL is configured (PG_PWD set)",
        ],
        id="only-password",
    ),
    pytest.param(
        {"PG_DATABASE": "db", "PG_PORT": "5432", "PG_USER": "   "},
        ["PG_USER: is required when PostgreSQL is configured (PG_DATABASE, PG_PORT set)"],
        id="blank-user",
    ),
    pytest.param(
        {**PG_OK, "PG_STATEMENTS_TOP_N": "-1"},
        ["PG_STATEMENTS_TOP_N: expected a whole number from 0 to 1000, got '-1'"],
        id="top-n-negative",
    ),
    pytest.param(
        {**PG_OK, "PG_STATEMENT_TIMEOUT_MS": "5s"},
        ["PG_STATEMENT_TIMEOUT_MS: expected a whole number from 100 to 60000, got '5s'"],
        id="timeout-unit",
    ),
    pytest.param(
        {**PG_OK, "PG_QPS_SAMPLE_SECONDS": "nan"},
        ["PG_QPS_SAMPLE_SECONDS: expected a number from 0 to 10, got 'nan'"],
        id="qps-nan",
    ),
    pytest.param(
        {**PG_OK, "PG_CONNECT_TIMEOUT_SECONDS": "0"},
        ["PG_CONNECT_TIMEOUT_SECONDS: expected a number from 0.1 to 60, got '0'"],
        id="connect-timeout-zero",
    ),
    pytest.param(
        {**PG_OK, "PG_SSLMODE": "on"},
        ["PG_SSLMODE: expected one of disable, prefer, require, verify-ca, verify-full, got 'on'"],
        id="sslmode",
    ),
    pytest.param(
        {"PUSHGATEWAY_URL": "pushgateway:9091"},
        ["PUSHGATEWAY_URL: expected an http:// or https:// URL, got 'pushgateway:9091'"],
        id="pushgateway-url-without-scheme",
    ),
    pytest.param(
        {"PUSHGATEWAY_URL": f"ftp://pusher:{PASSWORD}@push:9091"},
        ["PUSHGATEWAY_URL: expected an http:// or https:// URL, got 'ftp://***@push:9091'"],
        id="pushgateway-url-credentials-hidden",
    ),
    pytest.param(
        {**PG_OK, "PG_SSLMODE": "verify-full"},
        [
            "PG_SSLROOTCERT: sslmode verify-full needs the CA bundle that verifies the server "
            "(sslrootcert, e.g. global-bundle.pem from the CA layer)"
        ],
        id="verify-without-ca",
    ),
    pytest.param(
        {"PUSHGATEWAY_USERNAME": "pusher"},
        [
            "PUSHGATEWAY_USERNAME/PUSHGATEWAY_PASSWORD: basic auth needs both a user name "
            "and a password, or neither"
        ],
        id="basic-auth-user-only",
    ),
    pytest.param(
        {"PUSHGATEWAY_PASSWORD": PASSWORD},
        [
            "PUSHGATEWAY_USERNAME/PUSHGATEWAY_PASSWORD: basic auth needs both a user name "
            "and a password, or neither"
        ],
        id="basic-auth-password-only",
    ),
    pytest.param(
        {"PUSHGATEWAY_RETRIES": "11"},
        ["PUSHGATEWAY_RETRIES: expected a whole number from 0 to 10, got '11'"],
        id="retries",
    ),
    pytest.param(
        # The password holds a "/": urllib's parser sees host "user" and a path; any "@"
        # before the query is a login.
        {"PUSHGATEWAY_URL": f"https://user:pa/{PASSWORD}@push.example:9091"},
        [
            "PUSHGATEWAY_URL: expected a URL without user:password@ (got "
            "'https://***@push.example:9091'); give the login separately "
            "(PUSHGATEWAY_USERNAME / PUSHGATEWAY_PASSWORD for the Pushgateway)"
        ],
        id="pushgateway-url-password-with-slash",
    ),
    pytest.param(
        {"REMOTE_WRITE_URL": f"https://writer:{PASSWORD}@mimir.example/api/v1/push"},
        [
            "REMOTE_WRITE_URL: expected a URL without user:password@ (got "
            "'https://***@mimir.example/api/v1/push'); give the login separately "
            "(REMOTE_WRITE_SECRET_ARN, a secret holding the login or bearer token)"
        ],
        id="remote-write-url-credentials",
    ),
    pytest.param(
        {"REMOTE_WRITE_URL": "http://prometheus:nine/api/v1/write"},
        [
            "REMOTE_WRITE_URL: expected an http:// or https:// URL with a host[:port], got "
            "'http://prometheus:nine/api/v1/write'"
        ],
        id="remote-write-url-port",
    ),
    pytest.param(
        {"REMOTE_WRITE_SIGV4_REGION": "Ireland"},
        ["REMOTE_WRITE_SIGV4_REGION: expected an AWS region (e.g. eu-west-1), got 'Ireland'"],
        id="sigv4-region",
    ),
    pytest.param(
        {
            "REMOTE_WRITE_SIGV4_REGION": "eu-west-1",
            "REMOTE_WRITE_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:rw",
        },
        [
            "REMOTE_WRITE_SIGV4_REGION/REMOTE_WRITE_SECRET_ARN: choose one way to sign in: "
            "SigV4 (Amazon Managed Service for Prometheus) or the secret's basic auth / bearer "
            "token, not both"
        ],
        id="sigv4-and-secret",
    ),
    pytest.param(
        {"AWS_RDS_INSTANCE_ID": "db-1", "CLOUDWATCH_INTERVAL_SECONDS": "90"},
        [
            "CLOUDWATCH_INTERVAL_SECONDS: expected whole minutes in seconds (60, 120, 300, ...), "
            "got 90"
        ],
        id="cloudwatch-interval-minutes",
    ),
    pytest.param(
        {"AWS_RDS_INSTANCE_ID": "db-1", "CLOUDWATCH_INTERVAL_SECONDS": "30"},
        ["CLOUDWATCH_INTERVAL_SECONDS: expected a whole number from 60 to 3600, got '30'"],
        id="cloudwatch-interval-range",
    ),
    pytest.param(
        {"METRICS_SINK": "prometheus"},
        ["METRICS_SINK: expected one of pushgateway, emf, remote_write, got 'prometheus'"],
        id="sink",
    ),
]


@pytest.mark.parametrize(("environ", "expected"), BAD)
def test_bad_environment(environ: dict[str, str], expected: list[str]) -> None:
    problems = problems_of(environ)
    assert problems == expected
    assert PASSWORD not in "\n".join(problems)


def test_every_problem_reported_together_in_one_message() -> None:
    environ = {
        "PG_DATABASE": "db",
        "PG_PORT": "five-four-three-two",
        "PG_USER": "monitor",
        "PG_PWD": PASSWORD,
        "AWS_RDS_TYPE": "cluster",
        "PUSHGATEWAY_URL": "ftp://push",
        "PUSHGATEWAY_PASSWORD": PASSWORD,
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert str(caught.value) == (
        "invalid configuration:\n"
        "  - AWS_RDS_TYPE: expected one of DBInstanceIdentifier, DBClusterIdentifier, "
        "got 'cluster'\n"
        "  - PG_PORT: expected a port number from 1 to 65535, got 'five-four-three-two'\n"
        "  - PUSHGATEWAY_URL: expected an http:// or https:// URL, got 'ftp://push'\n"
        "  - PUSHGATEWAY_USERNAME/PUSHGATEWAY_PASSWORD: basic auth needs both a user name "
        "and a password, or neither"
    )


def test_secret_value_in_a_checked_variable_is_hidden() -> None:
    # A secret-named variable is never echoed even when a shape check applies to it.
    from middleware_monitoring.config import EnvReader

    env = EnvReader({"PG_PWD": PASSWORD}, secret_names=["PG_PWD"])
    env.integer("PG_PWD", 0, 0, 10)
    assert env.problems == ["PG_PWD: expected a whole number from 0 to 10, got (hidden)"]


def test_passwords_keep_surrounding_blanks() -> None:
    settings = load_settings({**PG_OK, "PG_PWD": f" {PASSWORD} "})
    assert settings.postgres is not None
    assert settings.postgres.password == f" {PASSWORD} "


def test_credentials_in_an_http_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"PUSHGATEWAY_URL": f"https://pusher:{PASSWORD}@push.example:9091"})
    assert caught.value.problems == [
        "PUSHGATEWAY_URL: expected a URL without user:password@ (got "
        "'https://***@push.example:9091'); give the login separately "
        "(PUSHGATEWAY_USERNAME / PUSHGATEWAY_PASSWORD for the Pushgateway)"
    ]


def test_remote_write_settings() -> None:
    loaded = load_settings(
        {
            "METRICS_SINK": "remote_write",
            "REMOTE_WRITE_URL": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/"
            "ws-1/api/v1/remote_write",
            "REMOTE_WRITE_SIGV4_REGION": "eu-west-1",
            "REMOTE_WRITE_TIMEOUT_SECONDS": "3",
            "REMOTE_WRITE_RETRIES": "4",
            "AWS_RDS_INSTANCE_ID": "db-1",
            "CLOUDWATCH_INTERVAL_SECONDS": "300",
        }
    )
    assert loaded.sink == "remote_write"
    assert loaded.remote_write == RemoteWriteSettings(
        url="https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write",
        sigv4_region="eu-west-1",
        secret_arn=None,
        timeout_seconds=3.0,
        retries=4,
    )
    assert loaded.cloudwatch is not None and loaded.cloudwatch.interval_seconds == 300
    assert load_settings({}).remote_write == RemoteWriteSettings(None, None, None, 5.0, 2)


def test_log_level() -> None:
    assert load_settings({"LOG_LEVEL": "debug"}).postgres is None  # any case is fine
    assert problems_of({"LOG_LEVEL": "verbose"}) == [
        "LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'verbose'"
    ]


# --- TLS by default to AWS endpoints; no login over plain http ----------------------------


def test_an_rds_endpoint_is_verified_against_the_bundle_unless_told_otherwise() -> None:
    rds = {**PG_OK, "PG_DATABASE": "orders.abc123.eu-west-1.rds.amazonaws.com"}
    pg = load_settings(rds).postgres
    assert pg is not None and (pg.sslmode, pg.sslrootcert) == ("verify-full", "global-bundle.pem")
    explicit = load_settings({**rds, "PG_SSLMODE": "require"}).postgres
    assert explicit is not None and (explicit.sslmode, explicit.sslrootcert) == ("require", None)
    # Elsewhere libpq's own default stays.
    other = load_settings(PG_OK).postgres
    assert other is not None and (other.sslmode, other.sslrootcert) == ("prefer", None)


def test_a_documentdb_endpoint_gets_tls_with_the_bundle_unless_its_options_say() -> None:
    import json

    host = "orders.cluster-abc123.eu-west-1.docdb.amazonaws.com"
    plain = load_settings({"MONGO_INFO": json.dumps({"connect": {"address": host}})})
    assert plain.docdb[0].parameters == (("tls", "true"), ("tlsCAFile", "global-bundle.pem"))
    told = {"connect": {"address": host}, "parameter": {"tls": "false"}}
    assert load_settings({"MONGO_INFO": json.dumps(told)}).docdb[0].parameters == (
        ("tls", "false"),
    )
    elsewhere = load_settings({"MONGO_INFO": json.dumps({"connect": {"address": "10.0.0.7"}})})
    assert elsewhere.docdb[0].parameters == ()


def test_basic_auth_over_plain_http_to_another_host_is_refused_unless_allowed() -> None:
    auth = {"PUSHGATEWAY_USERNAME": "pusher", "PUSHGATEWAY_PASSWORD": PASSWORD}
    assert problems_of({**auth, "PUSHGATEWAY_URL": "http://push.example:9091"}) == [
        "PUSHGATEWAY_URL: is plain http:// to another host while PUSHGATEWAY_PASSWORD is set: "
        "the password would cross the network readable; use https://, or set "
        "PUSHGATEWAY_ALLOW_INSECURE_AUTH=true to send it anyway"
    ]
    for allowed in (
        {"PUSHGATEWAY_URL": "https://push.example:9091"},
        {"PUSHGATEWAY_URL": "http://127.0.0.1:9091"},
        {"PUSHGATEWAY_URL": "http://localhost:9091"},
        {"PUSHGATEWAY_URL": "http://push.example:9091", "PUSHGATEWAY_ALLOW_INSECURE_AUTH": "true"},
    ):
        assert load_settings({**auth, **allowed}).pushgateway.password == PASSWORD


def test_remote_write_login_over_plain_http_to_another_host_is_refused_unless_allowed() -> None:
    login = {"METRICS_SINK": "remote_write", "REMOTE_WRITE_SECRET_ARN": SECRET_ARN}
    assert problems_of({**login, "REMOTE_WRITE_URL": "http://mimir.example/api/v1/push"}) == [
        "REMOTE_WRITE_URL: is plain http:// to another host while REMOTE_WRITE_SECRET_ARN is "
        "set: the login or bearer token would cross the network readable; use https://, or "
        "set REMOTE_WRITE_ALLOW_INSECURE_AUTH=true to send it anyway"
    ]
    for allowed in (
        {**login, "REMOTE_WRITE_URL": "https://mimir.example/api/v1/push"},
        {**login, "REMOTE_WRITE_URL": "http://127.0.0.1:9090/api/v1/write"},
        {**login, "REMOTE_WRITE_URL": "http://[::1]:9090/api/v1/write"},
        {**login, "REMOTE_WRITE_URL": "http://localhost:9090/api/v1/write"},
        {
            **login,
            "REMOTE_WRITE_URL": "http://mimir.example/api/v1/push",
            "REMOTE_WRITE_ALLOW_INSECURE_AUTH": "true",
        },
    ):
        assert load_settings(allowed).remote_write.secret_arn == SECRET_ARN
    # Without a login nothing secret crosses: plain http to another host stays allowed.
    bare = {"METRICS_SINK": "remote_write", "REMOTE_WRITE_URL": "http://prom.example/api/v1/write"}
    assert load_settings(bare).remote_write.secret_arn is None


def test_an_unknown_rds_type_is_an_error_whatever_else_is_set() -> None:
    assert problems_of({"AWS_RDS_TYPE": "cluster"}) == [
        "AWS_RDS_TYPE: expected one of DBInstanceIdentifier, DBClusterIdentifier, got 'cluster'"
    ]


def test_a_name_used_twice_is_in_the_one_message_with_every_other_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                **PG_OK,
                "PG_TARGET_NAME": "orders",
                "MONGO_INFO": '{"name": "orders", "connect": {"address": "docdb"}}',
                "PUSHGATEWAY_RETRIES": "many",
            }
        )
    assert caught.value.problems == [
        "MONGO_INFO: target name 'orders' is already used by PG_*; each target needs its "
        "own name (the instance label of its series)",
        "PUSHGATEWAY_RETRIES: expected a whole number from 0 to 10, got 'many'",
    ]
