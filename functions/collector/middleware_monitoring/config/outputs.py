"""Where values go and how: the Pushgateway, EMF, pull mode, the Kafka stream, and
Secrets Manager reads."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from .env import EnvReader, port_number

SINKS: Final = ("pushgateway", "emf", "remote_write")
DEFAULT_ENV_NAME: Final = "default"


@dataclass(frozen=True)
class PushgatewaySettings:
    url: str | None
    job: str
    username: str | None
    password: str | None = field(repr=False)
    timeout_seconds: float
    retries: int


@dataclass(frozen=True)
class RemoteWriteSettings:
    """METRICS_SINK=remote_write: Prometheus remote write 1.0 to ``url``, signed with SigV4
    for Amazon Managed Service for Prometheus when ``sigv4_region`` is set, or with the basic
    auth / bearer token held in the Secrets Manager secret ``secret_arn``."""

    url: str | None
    sigv4_region: str | None
    secret_arn: str | None
    timeout_seconds: float
    retries: int


@dataclass(frozen=True)
class ServeSettings:
    """Pull mode (``serve``): where to listen and how long one scrape's pass may take."""

    address: str
    port: int
    scrape_budget_seconds: float


@dataclass(frozen=True)
class KafkaSettings:
    """The optional query-statistics stream (SPEC 6)."""

    bootstrap_servers: tuple[str, ...]
    topic: str
    env_name: str
    timeout_seconds: float
    env_name_defaulted: bool = False


@dataclass(frozen=True)
class SecretStoreSettings:
    """Secrets Manager reads: every target's secret (PG_SECRET_ARN, MONGO_SECRET_ARN, a
    file's or a discovered resource's ``secret_arn``)."""

    region: str | None
    # How long a warm function instance keeps a secret before reading it again.
    max_age_seconds: int = 300


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_pushgateway(env: EnvReader) -> PushgatewaySettings:
    url = env.http_url("PUSHGATEWAY_URL")
    username = env.text("PUSHGATEWAY_USERNAME")
    password = env.secret("PUSHGATEWAY_PASSWORD")
    if (username is None) != (password is None):
        env.problem(
            "PUSHGATEWAY_USERNAME/PUSHGATEWAY_PASSWORD",
            "basic auth needs both a user name and a password, or neither",
        )
    insecure_allowed = env.flag("PUSHGATEWAY_ALLOW_INSECURE_AUTH", False)
    plain = url is not None and url.startswith("http://") and not is_loopback(url)
    if password is not None and plain and not insecure_allowed:
        env.problem(
            "PUSHGATEWAY_URL",
            "is plain http:// to another host while PUSHGATEWAY_PASSWORD is set: the "
            "password would cross the network readable; use https://, or set "
            "PUSHGATEWAY_ALLOW_INSECURE_AUTH=true to send it anyway",
        )
    return PushgatewaySettings(
        url=url,
        job=env.text("PUSHGATEWAY_JOB", "aws-middleware-monitoring") or "",
        username=username,
        password=password,
        timeout_seconds=env.number("PUSHGATEWAY_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
        retries=env.integer("PUSHGATEWAY_RETRIES", 2, 0, 10),
    )


_REGION_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def load_remote_write(env: EnvReader) -> RemoteWriteSettings:
    url = env.http_url(
        "REMOTE_WRITE_URL",
        login_hint="REMOTE_WRITE_SECRET_ARN, a secret holding the login or bearer token",
    )
    region = env.text("REMOTE_WRITE_SIGV4_REGION")
    if region is not None and not (set(region) <= _REGION_CHARS and region.count("-") >= 2):
        env.problem(
            "REMOTE_WRITE_SIGV4_REGION",
            f"expected an AWS region (e.g. eu-west-1), got {region!r}",
        )
        region = None
    secret_arn = env.text("REMOTE_WRITE_SECRET_ARN")
    if region is not None and secret_arn is not None:
        env.problem(
            "REMOTE_WRITE_SIGV4_REGION/REMOTE_WRITE_SECRET_ARN",
            "choose one way to sign in: SigV4 (Amazon Managed Service for Prometheus) or the "
            "secret's basic auth / bearer token, not both",
        )
    # A SigV4 signature is no credential (it holds no key and is bound to one request and a
    # short time); a basic-auth password or a bearer token is, and would cross readable.
    insecure_allowed = env.flag("REMOTE_WRITE_ALLOW_INSECURE_AUTH", False)
    plain = url is not None and url.startswith("http://") and not is_loopback(url)
    if secret_arn is not None and plain and not insecure_allowed:
        env.problem(
            "REMOTE_WRITE_URL",
            "is plain http:// to another host while REMOTE_WRITE_SECRET_ARN is set: the "
            "login or bearer token would cross the network readable; use https://, or set "
            "REMOTE_WRITE_ALLOW_INSECURE_AUTH=true to send it anyway",
        )
    return RemoteWriteSettings(
        url=url,
        sigv4_region=region,
        secret_arn=secret_arn,
        timeout_seconds=env.number("REMOTE_WRITE_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
        retries=env.integer("REMOTE_WRITE_RETRIES", 2, 0, 10),
    )


_EMF_NAMESPACE_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/#:"
)


def load_emf_namespace(env: EnvReader) -> str:
    namespace = env.text("POWERTOOLS_METRICS_NAMESPACE", "MiddlewareMonitoring") or ""
    if (
        len(namespace) > 255
        or not set(namespace) <= _EMF_NAMESPACE_CHARS
        or namespace.startswith("AWS/")
    ):
        env.problem(
            "POWERTOOLS_METRICS_NAMESPACE",
            "expected a CloudWatch namespace: up to 255 of A-Z a-z 0-9 . - _ / # :, not "
            f"starting with AWS/ (e.g. MiddlewareMonitoring), got {namespace!r}",
        )
    return namespace


_METRIC_PATTERN: Final = re.compile(r"[A-Za-z_:*?\[\]!][A-Za-z0-9_:*?\[\]!-]*")


def load_emf_metrics(env: EnvReader) -> tuple[str, ...]:
    """EMF_METRICS: series names or glob patterns, comma separated, that become CloudWatch
    metrics beside the default set (SPEC 19)."""
    raw = env.text("EMF_METRICS")
    if raw is None:
        return ()
    patterns = tuple(part.strip() for part in raw.split(",") if part.strip())
    wrong = [p for p in patterns if not _METRIC_PATTERN.fullmatch(p)]
    if wrong or not patterns:
        env.problem(
            "EMF_METRICS",
            "expected series names or glob patterns, comma separated (e.g. "
            f"pg_database_xact_commit,pg_table_*), got {raw!r}",
        )
        return ()
    return patterns


def load_serve(env: EnvReader) -> ServeSettings:
    return ServeSettings(
        address=env.text("SERVER_ADDRESS", "0.0.0.0") or "0.0.0.0",
        port=env.port("SERVER_PORT", 9010),
        # Below Prometheus's default scrape_timeout (10 s), so a slow target is reported down
        # in the answer instead of the whole scrape failing.
        scrape_budget_seconds=env.number("SERVER_SCRAPE_BUDGET_SECONDS", 8.0, 0.5, 300.0),
    )


def load_kafka(env: EnvReader) -> KafkaSettings | None:
    raw = env.text("KAFKA_SERVER")
    if raw is None:
        return None
    servers = tuple(part.strip() for part in raw.split(",") if part.strip())
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or port_number(port) is None:
            env.problem(
                "KAFKA_SERVER",
                f"expected host:port[,host:port...] (e.g. kafka-1:9092,kafka-2:9092), got {raw!r}",
            )
            break
    if not servers:
        env.problem("KAFKA_SERVER", "expected host:port[,host:port...] (e.g. kafka-1:9092)")
    return KafkaSettings(
        bootstrap_servers=servers,
        topic=env.text("KAFKA_TOPIC", "pgsql_query_message") or "pgsql_query_message",
        # Missing, it must not stop collection (an older exporter's user would lose every
        # metric): messages are tagged with a default, and the stream logs that once.
        env_name=env.text("PG_ENV_NAME") or DEFAULT_ENV_NAME,
        timeout_seconds=env.number("KAFKA_TIMEOUT_SECONDS", 5.0, 0.5, 60.0),
        env_name_defaulted=not env.has("PG_ENV_NAME"),
    )


def load_secret_store(env: EnvReader) -> SecretStoreSettings:
    return SecretStoreSettings(
        region=env.aws_region(),
        max_age_seconds=env.integer("SECRETS_MAX_AGE_SECONDS", 300, 0, 86400),
    )
