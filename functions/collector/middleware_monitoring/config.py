"""Typed settings read once from environment variables.

Every problem found is collected and reported together in one ``ConfigError`` that
names each variable and the shape it expects. Secret values are never echoed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import quote_plus

RDS_TYPES: Final = ("DBInstanceIdentifier", "DBClusterIdentifier")
PG_SSLMODES: Final = ("disable", "prefer", "require", "verify-ca", "verify-full")
SINKS: Final = ("pushgateway", "emf")

# Variables whose presence turns a source on; used to say "X is set, so Y is required".
_PG_VARIABLES: Final = (
    "PG_DATABASE",
    "PG_PORT",
    "PG_USER",
    "PG_PWD",
    "PG_DBNAME",
    "PG_SECRET_ARN",
)


def _is_number_text(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits,
    which int() then refuses (a crash instead of a configuration error)."""
    return text.isascii() and text.isdigit()


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

    def secret(self, name: str) -> str | None:
        """A password as given: blanks around it may be part of it."""
        value = self._environ.get(name)
        return value if value else None

    def http_url(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is not None and not raw.startswith(("http://", "https://")):
            # A URL may carry user:password@; never echo that part.
            shown = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)?[^/@]*@", r"\1***@", raw)
            self.problem(name, f"expected an http:// or https:// URL, got {shown!r}")
        return raw

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
        if not _is_number_text(raw) or not 1 <= int(raw) <= 65535:
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
    # PG_SECRET_ARN: user and password come from this secret at each connect (RDS JSON shape).
    secret_arn: str | None = None
    # Which of host/port/dbname the secret may fill: those whose variable is not set.
    from_secret: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SecretStoreSettings:
    """Secrets Manager reads (PG_SECRET_ARN, MONGO_SECRET_ARN)."""

    region: str | None
    # How long a warm function instance keeps a secret before reading it again.
    max_age_seconds: int = 300


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
    docdb: tuple[DocDBSettings, ...] = ()
    cloudwatch: CloudWatchSettings | None = None
    # METRICS_SINK=emf: the CloudWatch namespace (POWERTOOLS_METRICS_NAMESPACE).
    emf_namespace: str = "MiddlewareMonitoring"
    secret_store: SecretStoreSettings = field(default_factory=lambda: SecretStoreSettings(None))

    def secrets(self) -> list[str]:
        """Every secret value, so logging can scrub them."""
        values = [self.pushgateway.password]
        if self.postgres:
            values.append(self.postgres.password)
        for target in self.docdb:
            # The URI carries the escaped form; either may end up in a driver's message.
            values.extend((target.password, quote_plus(target.password or "")))
        return [value for value in values if value]


SECRET_VARIABLES: Final = ("PG_PWD", "PUSHGATEWAY_PASSWORD", "MONGO_INFO")


def _load_postgres(env: EnvReader) -> PostgresSettings | None:
    if not any(env.has(name) for name in _PG_VARIABLES):
        return None
    why = (
        "when PostgreSQL is configured ("
        + ", ".join(name for name in _PG_VARIABLES if env.has(name))
        + " set)"
    )
    secret_arn = env.text("PG_SECRET_ARN")
    if secret_arn is None:
        host = env.required("PG_DATABASE", f"(the PostgreSQL host name or IP) {why}")
        user = env.required("PG_USER", why)
    else:
        # The secret supplies the login, and host/port/dbname where these are not set.
        host = env.text("PG_DATABASE") or ""
        user = env.text("PG_USER") or ""
        if env.has("PG_PWD"):
            env.problem(
                "PG_PWD",
                "is set together with PG_SECRET_ARN; the password comes from one of them: "
                "unset PG_PWD to use the secret",
            )
    rds_id = env.text("AWS_RDS_INSTANCE_ID")
    rds_type = env.choice("AWS_RDS_TYPE", RDS_TYPES, RDS_TYPES[0])
    target_name = env.text("PG_TARGET_NAME") or rds_id or host
    if not target_name and secret_arn is not None:
        env.problem(
            "PG_TARGET_NAME",
            "is required when the host comes from PG_SECRET_ARN (it names the target before "
            "the secret is read); or set PG_DATABASE or AWS_RDS_INSTANCE_ID",
        )
    sslmode = env.choice("PG_SSLMODE", PG_SSLMODES, "prefer")
    sslrootcert = env.text("PG_SSLROOTCERT")
    if sslmode.startswith("verify-") and sslrootcert is None:
        env.problem(
            "PG_SSLROOTCERT",
            f"is required when PG_SSLMODE={sslmode} (the CA bundle that verifies the server, "
            "e.g. global-bundle.pem from the CA layer)",
        )
    from_secret = frozenset(
        name
        for name, variable in (
            ("host", "PG_DATABASE"),
            ("port", "PG_PORT"),
            ("dbname", "PG_DBNAME"),
        )
        if secret_arn is not None and not env.has(variable)
    )
    return PostgresSettings(
        target_name=target_name,
        host=host,
        port=env.port("PG_PORT", 5432),
        user=user,
        password=env.secret("PG_PWD") or "",
        database=env.text("PG_DBNAME", "postgres") or "postgres",
        sslmode=sslmode,
        sslrootcert=sslrootcert,
        connect_timeout_seconds=env.number("PG_CONNECT_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
        statement_timeout_ms=env.integer("PG_STATEMENT_TIMEOUT_MS", 5000, 100, 60000),
        statements_top_n=env.integer("PG_STATEMENTS_TOP_N", 20, 0, 1000),
        query_max_length=env.integer("PG_QUERY_MAX_LENGTH", 300, 20, 10000),
        qps_sample_seconds=env.number("PG_QPS_SAMPLE_SECONDS", 1.0, 0.0, 10.0),
        rds_id=rds_id,
        rds_type=rds_type,
        secret_arn=secret_arn,
        from_secret=from_secret,
    )


_EMF_NAMESPACE_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/#:"
)


def _load_emf_namespace(env: EnvReader) -> str:
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


def _load_secret_store(env: EnvReader) -> SecretStoreSettings:
    return SecretStoreSettings(
        region=env.text("AWS_REGION") or env.text("AWS_DEFAULT_REGION"),
        max_age_seconds=env.integer("SECRETS_MAX_AGE_SECONDS", 300, 0, 86400),
    )


def _load_pushgateway(env: EnvReader) -> PushgatewaySettings:
    url = env.http_url("PUSHGATEWAY_URL")
    username = env.text("PUSHGATEWAY_USERNAME")
    password = env.secret("PUSHGATEWAY_PASSWORD")
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


@dataclass(frozen=True)
class ElastiCacheId:
    cluster: str
    # Set for clusters whose metrics are read per node (CacheClusterId + CacheNodeId).
    node: str | None = None


@dataclass(frozen=True)
class CloudWatchSettings:
    region: str | None
    # boto3's own override variables (AWS_ENDPOINT_URL_CLOUDWATCH, AWS_ENDPOINT_URL), read
    # from the same mapping as everything else: a local stand-in outside Lambda.
    endpoint_url: str | None
    lookback_seconds: int
    end_delay_seconds: int
    connect_timeout_seconds: float
    read_timeout_seconds: float
    max_attempts: int
    retry_mode: str
    docdb_instances: tuple[str, ...] = ()
    docdb_clusters: tuple[str, ...] = ()
    elasticache: tuple[ElastiCacheId, ...] = ()
    # AWS_RDS_INSTANCE_ID set without PostgreSQL: CloudWatch values only.
    rds_only: RdsId | None = None


@dataclass(frozen=True)
class RdsId:
    identifier: str
    dimension: str  # one of RDS_TYPES


RETRY_MODES: Final = ("standard", "adaptive")
_MONGO_IDS_EXAMPLE: Final = (
    '{"DBInstanceIdentifier": ["docdb-1", "docdb-2"], "DBClusterIdentifier": ["docdb-cluster"]}'
)
_ELASTICACHE_IDS_EXAMPLE: Final = (
    '{"CacheClusterId": ["staging-001", {"CacheClusterId": "prod-001", "CacheNodeId": "0001"}]}'
)


def _id_list(value: Any) -> list[Any] | None:
    """A JSON list of ids, or None when the value is not a list."""
    return value if isinstance(value, list) else None


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _mongo_ids(env: EnvReader) -> tuple[tuple[str, ...], tuple[str, ...]]:
    name = "AWS_MONGO_INSTANCE_INFO"
    value = env.json_value(name, _MONGO_IDS_EXAMPLE)
    if value is None:
        return (), ()
    keys = ("DBInstanceIdentifier", "DBClusterIdentifier")
    lists = {key: _id_list(value.get(key, [])) for key in keys} if isinstance(value, dict) else {}
    if (
        not isinstance(value, dict)
        or set(value) - set(keys)
        or any(ids is None or not all(_is_id(i) for i in ids) for ids in lists.values())
    ):
        env.problem(
            name,
            "expected an object with DBInstanceIdentifier and/or DBClusterIdentifier, each a "
            f"list of id strings, e.g. {_MONGO_IDS_EXAMPLE}",
        )
        return (), ()
    instances, clusters = (
        tuple(dict.fromkeys(i.strip() for i in lists[key] or [])) for key in keys
    )
    return instances, clusters


def _elasticache_ids(env: EnvReader) -> tuple[ElastiCacheId, ...]:
    name = "AWS_ELASTICACHE_INSTANCE_INFO"
    value = env.json_value(name, _ELASTICACHE_IDS_EXAMPLE)
    if value is None:
        return ()
    items = _id_list(value.get("CacheClusterId")) if isinstance(value, dict) else None
    ids: list[ElastiCacheId] = []
    for item in items or []:
        if _is_id(item):
            ids.append(ElastiCacheId(item.strip()))
        elif (
            isinstance(item, dict)
            and set(item) == {"CacheClusterId", "CacheNodeId"}
            and all(_is_id(v) for v in item.values())
        ):
            ids.append(ElastiCacheId(item["CacheClusterId"].strip(), item["CacheNodeId"].strip()))
        else:
            items = None
            break
    if items is None or set(value) != {"CacheClusterId"}:
        env.problem(
            name,
            "expected an object with CacheClusterId, a list of cluster ids (or of "
            '{"CacheClusterId": ..., "CacheNodeId": ...} objects for per-node metrics), '
            f"e.g. {_ELASTICACHE_IDS_EXAMPLE}",
        )
        return ()
    return tuple(dict.fromkeys(ids))


def _load_cloudwatch(env: EnvReader) -> CloudWatchSettings | None:
    """CloudWatch settings when any CloudWatch-fed target is configured, else None."""
    # Without the PG_* variables the instance still gets its CloudWatch values, as a target
    # of its own; with them, the PostgreSQL settings carry the id (and check AWS_RDS_TYPE).
    rds = env.has("AWS_RDS_INSTANCE_ID")
    rds_only = None
    if rds and not any(env.has(name) for name in _PG_VARIABLES):
        rds_only = RdsId(
            env.text("AWS_RDS_INSTANCE_ID") or "",
            env.choice("AWS_RDS_TYPE", RDS_TYPES, RDS_TYPES[0]),
        )
    docdb_instances, docdb_clusters = _mongo_ids(env)
    elasticache = _elasticache_ids(env)
    if not (rds or env.has("AWS_MONGO_INSTANCE_INFO") or env.has("AWS_ELASTICACHE_INSTANCE_INFO")):
        return None
    endpoint_url = None
    for variable in ("AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL"):
        endpoint_url = env.http_url(variable)
        if endpoint_url is not None:
            break
    return CloudWatchSettings(
        # Lambda always sets AWS_REGION; elsewhere boto3's chain (profile) may supply it.
        region=env.text("AWS_REGION") or env.text("AWS_DEFAULT_REGION"),
        endpoint_url=endpoint_url,
        lookback_seconds=env.integer("CLOUDWATCH_LOOKBACK_SECONDS", 900, 300, 86400),
        end_delay_seconds=env.integer("CLOUDWATCH_END_DELAY_SECONDS", 60, 0, 900),
        connect_timeout_seconds=env.number("CLOUDWATCH_CONNECT_TIMEOUT_SECONDS", 3.0, 0.1, 60.0),
        read_timeout_seconds=env.number("CLOUDWATCH_READ_TIMEOUT_SECONDS", 10.0, 0.5, 120.0),
        max_attempts=env.integer("CLOUDWATCH_MAX_ATTEMPTS", 3, 1, 10),
        retry_mode=env.choice("CLOUDWATCH_RETRY_MODE", RETRY_MODES, "standard"),
        docdb_instances=docdb_instances,
        docdb_clusters=docdb_clusters,
        elasticache=elasticache,
        rds_only=rds_only,
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
        if not host or not _is_number_text(port) or not 1 <= int(port) <= 65535:
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


@dataclass(frozen=True)
class DocDBSettings:
    """One DocumentDB target from MONGO_INFO (an object, or one element of a list)."""

    target_name: str
    # Where it came from, e.g. ``MONGO_INFO[1]``: names the target in messages.
    variable: str
    address: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    # The ``parameter`` object as the user wrote it (values as strings), in order.
    parameters: tuple[tuple[str, str], ...]
    # MONGO_SECRET_ARN, for a target without user/pwd of its own: the login is read from it.
    secret_arn: str | None = None


_MONGO_INFO_EXAMPLE: Final = (
    '{"connect": {"address": "HOST", "port": "27017", "user": "USER", "pwd": "PASSWORD"}, '
    '"parameter": {"authSource": "admin", "tls": "true", "tlsCAFile": "global-bundle.pem", '
    '"replicaSet": "rs0", "readPreference": "secondaryPreferred", "retryWrites": "false"}}'
)
_MONGO_CONNECT_FIELDS: Final = ("address", "port", "user", "pwd")
_MONGO_TOP_FIELDS: Final = ("connect", "parameter", "name")
# File options are checked when connecting (a relative tlsCAFile is looked up then, in the
# layer directory); pymongo's validators would try to open them relative to the cwd.
_MONGO_FILE_OPTIONS: Final = ("tlscafile", "tlscertificatekeyfile", "tlscrlfile")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _mongo_option_problem(key: str, value: str) -> str | None:
    """pymongo's own judgement of one URI option, so a typo fails at start, not at connect."""
    from pymongo import common
    from pymongo.errors import ConfigurationError

    lowered = key.lower()
    aliases = {alias.lower() for names in common.URI_OPTIONS_ALIAS_MAP.values() for alias in names}
    if lowered not in common.URI_OPTIONS_VALIDATOR_MAP and lowered not in aliases:
        return "is not a MongoDB connection-string option"
    if lowered in _MONGO_FILE_OPTIONS:
        return None
    try:
        common.validate(key, value)
    except (ConfigurationError, ValueError, TypeError) as exc:
        return str(exc)
    return None


def _mongo_string(env: EnvReader, name: str, value: Any, what: str, secret: bool = False) -> str:
    if not isinstance(value, str):
        env.problem(name, f"expected a string ({what}), got {_json_type(value)}")
        return ""
    if not value.strip() and not secret:
        env.problem(name, f"is empty; expected {what}")
    return value if secret else value.strip()


def _mongo_target(env: EnvReader, variable: str, item: Any) -> DocDBSettings | None:
    if not isinstance(item, dict):
        env.problem(variable, f"expected a JSON object like {_MONGO_INFO_EXAMPLE}, got "
                    f"{_json_type(item)}")  # fmt: skip
        return None
    before = len(env.problems)
    for key in item:
        if key not in _MONGO_TOP_FIELDS:
            env.problem(
                f"{variable}.{key}", f"unknown field; expected {', '.join(_MONGO_TOP_FIELDS)}"
            )
    connect = item.get("connect")
    if not isinstance(connect, dict):
        got = "it is missing" if connect is None else f"got {_json_type(connect)}"
        env.problem(
            f"{variable}.connect",
            'expected an object like {"address": "HOST", "port": "27017", "user": "USER", '
            f'"pwd": "PASSWORD"}}; {got}',
        )
        connect = {}
    for key in connect:
        if key not in _MONGO_CONNECT_FIELDS:
            env.problem(
                f"{variable}.connect.{key}",
                f"unknown field; expected {', '.join(_MONGO_CONNECT_FIELDS)}",
            )
    address = ""
    if "address" not in connect:
        if isinstance(item.get("connect"), dict):
            env.problem(f"{variable}.connect.address", "is required (the cluster endpoint)")
    else:
        address = _mongo_string(
            env, f"{variable}.connect.address", connect["address"], "the cluster endpoint"
        )
    port = 27017
    raw_port = connect.get("port")
    if raw_port is not None:
        text = str(raw_port).strip() if isinstance(raw_port, (str, int)) else ""
        if isinstance(raw_port, bool) or not _is_number_text(text) or not 1 <= int(text) <= 65535:
            shown = repr(raw_port) if isinstance(raw_port, str) else _json_type(raw_port)
            env.problem(
                f"{variable}.connect.port",
                f'expected a port number from 1 to 65535 (e.g. "27017"), got {shown}',
            )
        else:
            port = int(text)
    user = password = None
    if "user" in connect:
        user = _mongo_string(env, f"{variable}.connect.user", connect["user"], "the login")
    if "pwd" in connect:
        password = _mongo_string(
            env, f"{variable}.connect.pwd", connect["pwd"], "the password", secret=True
        )
    if user is not None and password is None:
        env.problem(f"{variable}.connect.pwd", "is required when connect.user is set")
    if password is not None and user is None:
        env.problem(f"{variable}.connect.user", "is required when connect.pwd is set")

    parameters: list[tuple[str, str]] = []
    raw_parameters = item.get("parameter", {})
    if not isinstance(raw_parameters, dict):
        env.problem(
            f"{variable}.parameter",
            'expected an object of connection options like {"tls": "true", '
            f'"replicaSet": "rs0"}}, got {_json_type(raw_parameters)}',
        )
        raw_parameters = {}
    for key, value in raw_parameters.items():
        name = f"{variable}.parameter.{key}"
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text = str(value).strip()
        else:
            env.problem(name, f"expected a string, number or true/false, got {_json_type(value)}")
            continue
        problem = _mongo_option_problem(key, text)
        if problem is not None:
            env.problem(name, problem)
            continue
        parameters.append((key, text))

    target_name = address
    if "name" in item:
        target_name = _mongo_string(
            env, f"{variable}.name", item["name"], "the target's instance name"
        )
    if len(env.problems) > before:
        return None
    return DocDBSettings(
        target_name=target_name,
        variable=variable,
        address=address,
        port=port,
        user=user,
        password=password,
        parameters=tuple(parameters),
    )


def _load_docdb(env: EnvReader) -> tuple[DocDBSettings, ...]:
    """MONGO_INFO: one object (the older exporter's form) or a list of them, one target each."""
    value = env.json_value("MONGO_INFO", _MONGO_INFO_EXAMPLE)
    secret_arn = env.text("MONGO_SECRET_ARN")
    if value is None:
        if secret_arn is not None and not env.has("MONGO_INFO"):
            env.problem(
                "MONGO_SECRET_ARN", "is set but MONGO_INFO (the cluster to log in to) is not"
            )
        return ()
    if isinstance(value, list):
        if not value:
            env.problem(
                "MONGO_INFO", f"is an empty list; expected objects like {_MONGO_INFO_EXAMPLE}"
            )
        items = [(f"MONGO_INFO[{index}]", item) for index, item in enumerate(value)]
    elif isinstance(value, dict):
        items = [("MONGO_INFO", value)]
    else:
        env.problem(
            "MONGO_INFO",
            f"expected a JSON object like {_MONGO_INFO_EXAMPLE} or a list of them, "
            f"got {_json_type(value)}",
        )
        return ()
    targets: list[DocDBSettings] = []
    used: dict[str, str] = {}
    for variable, item in items:
        target = _mongo_target(env, variable, item)
        if target is None:
            continue
        if target.target_name in used:
            first = used[target.target_name]
            env.problem(
                variable,
                f"target name {target.target_name!r} is already used by {first}; "
                'give each target a distinct "name"',
            )
            continue
        used[target.target_name] = variable
        targets.append(target)
    if secret_arn is not None:
        targets = [
            target if target.user is not None else replace(target, secret_arn=secret_arn)
            for target in targets
        ]
    return tuple(targets)


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
        docdb=_load_docdb(env),
        cloudwatch=_load_cloudwatch(env),
        emf_namespace=_load_emf_namespace(env),
        secret_store=_load_secret_store(env),
    )
    if env.problems:
        raise ConfigError(env.problems)
    return settings
