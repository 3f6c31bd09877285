"""Settings added for deployment: PG_SECRET_ARN, the EMF namespace, the secrets cache age."""

from __future__ import annotations

import pytest

from middleware_monitoring.config import ConfigError, load_settings

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1-AbCdEf"


def problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    return caught.value.problems


def test_secret_alone_turns_postgres_on_and_leaves_host_port_dbname_to_it():
    settings = load_settings({"PG_SECRET_ARN": ARN, "AWS_RDS_INSTANCE_ID": "db-1"})
    pg = settings.postgres
    assert pg is not None
    assert (pg.secret_arn, pg.target_name, pg.host, pg.user, pg.password) == (
        ARN,
        "db-1",
        "",
        "",
        "",
    )
    assert pg.from_secret == frozenset({"host", "port", "dbname"})


def test_variables_set_beside_the_secret_are_not_taken_from_it():
    pg = load_settings(
        {"PG_SECRET_ARN": ARN, "PG_DATABASE": "db.example", "PG_DBNAME": "app"}
    ).postgres
    assert pg is not None
    assert (pg.target_name, pg.host, pg.database) == ("db.example", "db.example", "app")
    assert pg.from_secret == frozenset({"port"})
    plain = load_settings({"PG_DATABASE": "h", "PG_USER": "u"}).postgres
    assert plain is not None
    assert (plain.secret_arn, plain.from_secret) == (None, frozenset())


def test_secret_with_password_variable_or_without_a_name_is_refused():
    assert problems({"PG_SECRET_ARN": ARN, "PG_PWD": "hunter2-pw"}) == [
        "PG_PWD: is set together with PG_SECRET_ARN; the password comes from one of them "
        "(PG_PWD, PG_SECRET_ARN or PG_IAM_AUTH=true): unset the others",
        "PG_TARGET_NAME: is required when the host comes from PG_SECRET_ARN (it names the "
        "target before the secret is read); or set PG_DATABASE or AWS_RDS_INSTANCE_ID",
    ]


def test_emf_namespace_and_secret_cache_age():
    settings = load_settings(
        {
            "METRICS_SINK": "emf",
            "POWERTOOLS_METRICS_NAMESPACE": "Team/Middleware",
            "SECRETS_MAX_AGE_SECONDS": "60",
            "AWS_REGION": "eu-west-1",
        }
    )
    assert (settings.sink, settings.emf_namespace) == ("emf", "Team/Middleware")
    assert (settings.secret_store.max_age_seconds, settings.secret_store.region) == (
        60,
        "eu-west-1",
    )
    assert load_settings({}).emf_namespace == "MiddlewareMonitoring"
    assert load_settings({}).secret_store.max_age_seconds == 300


@pytest.mark.parametrize("namespace", ["AWS/RDS", "has space", "x" * 256])
def test_bad_emf_namespace(namespace):
    assert problems({"POWERTOOLS_METRICS_NAMESPACE": namespace}) == [
        "POWERTOOLS_METRICS_NAMESPACE: expected a CloudWatch namespace: up to 255 of "
        "A-Z a-z 0-9 . - _ / # :, not starting with AWS/ (e.g. MiddlewareMonitoring), "
        f"got {namespace!r}"
    ]


def test_bad_secret_cache_age():
    assert problems({"SECRETS_MAX_AGE_SECONDS": "soon"}) == [
        "SECRETS_MAX_AGE_SECONDS: expected a whole number from 0 to 86400, got 'soon'"
    ]


def test_mongo_secret_without_mongo_info_is_refused():
    assert problems({"MONGO_SECRET_ARN": ARN}) == [
        "MONGO_SECRET_ARN: is set but MONGO_INFO (the cluster to log in to) is not"
    ]


@pytest.mark.parametrize("value", ["false", "FALSE", "0", "no"])
def test_iam_auth_switched_off_alone_is_no_postgres(value):
    """A template's default (PG_IAM_AUTH=false, PG_SSLMODE, PG_SSLROOTCERT) with no host never
    turns the PG_* target on: a fleet stack (targets file, parameter, discovery) runs."""
    settings = load_settings(
        {"PG_IAM_AUTH": value, "PG_SSLMODE": "verify-full", "PG_SSLROOTCERT": "global-bundle.pem"}
    )
    assert settings.postgres is None
    assert settings.targets == ()


def test_iam_auth_switched_on_or_not_a_flag_alone_is_still_reported():
    assert problems({"PG_IAM_AUTH": "true"}) == [
        "PG_DATABASE: is required (the PostgreSQL host name or IP) when PostgreSQL is "
        "configured (PG_IAM_AUTH set)",
        "PG_USER: is required when PostgreSQL is configured (PG_IAM_AUTH set)",
        "PG_SSLMODE: IAM authentication sends a token as the password, which needs TLS that "
        "verifies the server: sslmode prefer is not allowed (use one of verify-ca, "
        "verify-full, with sslrootcert)",
    ]
    assert problems({"PG_IAM_AUTH": "maybe"}) == [
        "PG_IAM_AUTH: expected true or false, got 'maybe'",
        "PG_DATABASE: is required (the PostgreSQL host name or IP) when PostgreSQL is "
        "configured (PG_IAM_AUTH set)",
        "PG_USER: is required when PostgreSQL is configured (PG_IAM_AUTH set)",
    ]
