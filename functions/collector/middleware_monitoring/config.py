"""Typed settings read once from environment variables.

Every problem found is collected and reported together in one ``ConfigError`` that
names each variable and the shape it expects. Secret values are never echoed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

RDS_TYPES: Final = ("DBInstanceIdentifier", "DBClusterIdentifier")
PG_SSLMODES: Final = ("disable", "prefer", "require", "verify-ca", "verify-full")
SINKS: Final = ("pushgateway", "emf")

# Variables whose presence turns a source on; used to say "X is set, so Y is required".
_PG_VARIABLES: Final = ("PG_DATABASE", "PG_PORT", "PG_USER", "PG_PWD", "PG_DBNAME")


class ConfigError(Exception):
    """The environment cannot be used; ``problems`` holds one line per bad variable."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in self.problems)
        )


class EnvReader:
    """Reads variables from a mapping and records problems instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str], secret_names: Iterable[str] = ()) -> None:
        self._environ = environ
        self._secret_names = frozenset(secret_names)
        self.problems: list[str] = []

    def has(self, name: str) -> bool:
        return self.text(name) is not None

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return default
        return value.strip()

    def required(self, name: str, why: str) -> str:
        value = self.text(name)
        if value is None:
            self.problem(name, f"is required {why}")
            return ""
        return value

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{name}: {message}")

    def _shown(self, name: str, raw: str) -> str:
        return "(hidden)" if name in self._secret_names else repr(raw)

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if not minimum <= value <= maximum:
            self.problem(
                name,
                f"expected a whole number from {minimum} to {maximum}, "
                f"got {self._shown(name, raw)}",
            )
            return default
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not minimum <= value <= maximum:  # NaN fails both comparisons
            self.problem(
                name,
                f"expected a number from {minimum:g} to {maximum:g}, got {self._shown(name, raw)}",
            )
            return default
        return value

    def port(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            self.problem(
                name, f"expected a port number from 1 to 65535, got {self._shown(name, raw)}"
            )
            return default
        return int(raw)

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        if raw not in allowed:
            self.problem(
                name,
                f"expected one of {', '.join(allowed)}, got {self._shown(name, raw)}",
            )
            return default
        return raw

    def json_value(self, name: str, example: str) -> Any:
        """Parsed JSON, or None when absent or malformed; the raw text is never echoed."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            self.problem(
                name,
                f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                f"expected e.g. {example}",
            )
            return None


@dataclass(frozen=True)
class PostgresSettings:
    target_name: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    sslmode: str
    sslrootcert: str | None
    connect_timeout_seconds: float
    statement_timeout_ms: int
    statements_top_n: int
    query_max_length: int
    qps_sample_seconds: float
    rds_id: str | None
    rds_type: str


@dataclass(frozen=True)
class PushgatewaySettings:
    url: str | None
    job: str
    username: str | None
    password: str | None = field(repr=False)
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


@dataclass(frozen=True)
class Settings:
    postgres: PostgresSettings | None
    pushgateway: PushgatewaySettings
    sink: str
    max_workers: int
    collector_instance: str
    # Defaults keep hand-built Settings (tests) working; load_settings always fills them.
    serve: ServeSettings = field(default_factory=lambda: ServeSettings("0.0.0.0", 9010, 8.0))
    kafka: KafkaSettings | None = None

    def secrets(self) -> list[str]:
        """Every secret value, so logging can scrub them."""
        values = [self.pushgateway.password]
        if self.postgres:
            values.append(self.postgres.password)
        return [value for value in values if value]


SECRET_VARIABLES: Final = ("PG_PWD", "PUSHGATEWAY_PASSWORD")


def _load_postgres(env: EnvReader) -> PostgresSettings | None:
    if not any(env.has(name) for name in _PG_VARIABLES):
        return None
    why = (
        "when PostgreSQL is configured ("
        + ", ".join(name for name in _PG_VARIABLES if env.has(name))
        + " set)"
    )
    host = env.required("PG_DATABASE", f"(the PostgreSQL host name or IP) {why}")
    user = env.required("PG_USER", why)
    rds_id = env.text("AWS_RDS_INSTANCE_ID")
    rds_type = env.choice("AWS_RDS_TYPE", RDS_TYPES, RDS_TYPES[0])
    return PostgresSettings(
        target_name=env.text("PG_TARGET_NAME") or rds_id or host,
        host=host,
        port=env.port("PG_PORT", 5432),
        user=user,
        password=env.text("PG_PWD") or "",
        database=env.text("PG_DBNAME", "postgres") or "postgres",
        sslmode=env.choice("PG_SSLMODE", PG_SSLMODES, "prefer"),
        sslrootcert=env.text("PG_SSLROOTCERT"),
        connect_timeout_seconds=env.number("PG_CONNECT_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
        statement_timeout_ms=env.integer("PG_STATEMENT_TIMEOUT_MS", 5000, 100, 60000),
        statements_top_n=env.integer("PG_STATEMENTS_TOP_N", 20, 0, 1000),
        query_max_length=env.integer("PG_QUERY_MAX_LENGTH", 300, 20, 10000),
        qps_sample_seconds=env.number("PG_QPS_SAMPLE_SECONDS", 1.0, 0.0, 10.0),
        rds_id=rds_id,
        rds_type=rds_type,
    )


def _load_pushgateway(env: EnvReader) -> PushgatewaySettings:
    url = env.text("PUSHGATEWAY_URL")
    if url is not None and not url.startswith(("http://", "https://")):
        env.problem("PUSHGATEWAY_URL", f"expected an http:// or https:// URL, got {url!r}")
    username = env.text("PUSHGATEWAY_USERNAME")
    password = env.text("PUSHGATEWAY_PASSWORD")
    if (username is None) != (password is None):
        env.problem(
            "PUSHGATEWAY_USERNAME/PUSHGATEWAY_PASSWORD",
            "basic auth needs both a user name and a password, or neither",
        )
    return PushgatewaySettings(
        url=url,
        job=env.text("PUSHGATEWAY_JOB", "aws-middleware-monitoring") or "",
        username=username,
        password=password,
        timeout_seconds=env.number("PUSHGATEWAY_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
        retries=env.integer("PUSHGATEWAY_RETRIES", 2, 0, 10),
    )


def _load_serve(env: EnvReader) -> ServeSettings:
    return ServeSettings(
        address=env.text("SERVER_ADDRESS", "0.0.0.0") or "0.0.0.0",
        port=env.port("SERVER_PORT", 9010),
        # Below Prometheus's default scrape_timeout (10 s), so a slow target is reported down
        # in the answer instead of the whole scrape failing.
        scrape_budget_seconds=env.number("SERVER_SCRAPE_BUDGET_SECONDS", 8.0, 0.5, 300.0),
    )


def _load_kafka(env: EnvReader) -> KafkaSettings | None:
    raw = env.text("KAFKA_SERVER")
    if raw is None:
        return None
    servers = tuple(part.strip() for part in raw.split(",") if part.strip())
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            env.problem(
                "KAFKA_SERVER",
                f"expected host:port[,host:port...] (e.g. kafka-1:9092,kafka-2:9092), got {raw!r}",
            )
            break
    if not servers:
        env.problem("KAFKA_SERVER", "expected host:port[,host:port...] (e.g. kafka-1:9092)")
    env_name = env.required(
        "PG_ENV_NAME", "when KAFKA_SERVER is set (the environment tag of every message)"
    )
    return KafkaSettings(
        bootstrap_servers=servers,
        topic=env.text("KAFKA_TOPIC", "pgsql_query_message") or "pgsql_query_message",
        env_name=env_name,
        timeout_seconds=env.number("KAFKA_TIMEOUT_SECONDS", 5.0, 0.5, 60.0),
    )


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate the whole environment once; raise ``ConfigError`` listing every problem."""
    env = EnvReader(environ, SECRET_VARIABLES)
    settings = Settings(
        postgres=_load_postgres(env),
        pushgateway=_load_pushgateway(env),
        sink=env.choice("METRICS_SINK", SINKS, "pushgateway"),
        max_workers=env.integer("COLLECTOR_MAX_WORKERS", 8, 1, 64),
        collector_instance=env.text("COLLECTOR_INSTANCE_NAME", "collector") or "collector",
        serve=_load_serve(env),
        kafka=_load_kafka(env),
    )
    if env.problems:
        raise ConfigError(env.problems)
    return settings
