"""PostgreSQL settings: the PG_* target (SPEC 2) and the options every PostgreSQL target
shares, whichever place it comes from (PG_*, a targets file, discovery)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, TypeVar, cast

from ..paths import DEFAULT_SEARCH_DIRS
from .aws import HERE, AwsLocation
from .env import FLAGS, EnvReader
from .pg_queries import QueriesFile, read_queries_file

TSpec = TypeVar("TSpec")
RDS_TYPES: Final = ("DBInstanceIdentifier", "DBClusterIdentifier")
PG_SSLMODES: Final = ("disable", "prefer", "require", "verify-ca", "verify-full")
# Modes that send the password only over TLS: IAM auth tokens need one of them.
TLS_SSLMODES: Final = ("require", "verify-ca", "verify-full")
# What IAM authentication accepts: with ``require`` the server is not verified, and whoever
# answers in its place receives a token that works as the password for 15 minutes.
VERIFIED_SSLMODES: Final = ("verify-ca", "verify-full")
# Host names of RDS and Aurora endpoints: their certificates chain to the AWS CA bundle.
RDS_HOST_SUFFIXES: Final = (".rds.amazonaws.com", ".rds.amazonaws.com.cn")
CA_BUNDLE: Final = "global-bundle.pem"
# Variables whose presence turns the PG_* source on; used to say "X is set, so Y is required".
PG_VARIABLES: Final = (
    "PG_DATABASE",
    "PG_PORT",
    "PG_USER",
    "PG_PWD",
    "PG_DBNAME",
    "PG_SECRET_ARN",
    "PG_IAM_AUTH",
)
ENV_ORIGIN: Final = "PG_*"
# PG_COLLECTORS: the health groups of SPEC 11 (docs/postgresql.md lists what each sends).
PG_COLLECTOR_GROUPS: Final = (
    "server",
    "wraparound",
    "transactions",
    "locks",
    "wait_events",
    "replication",
    "replication_slots",
    "database_stats",
    "tables",
    "statement_details",
    "indexes",
    "vacuum",
    "bloat",
)
# `bloat` is off by default: its catalog query costs more than the others together.
PG_DEFAULT_COLLECTORS: Final = frozenset(PG_COLLECTOR_GROUPS) - {"bloat"}


@dataclass(frozen=True)
class PostgresSettings:
    """One PostgreSQL target: the plain spec its sources are built from."""

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
    # The password is an RDS IAM auth token made with the function's role (or aws.role_arn).
    iam_auth: bool = False
    # Where its AWS APIs are asked: CloudWatch, and the region an IAM token is made for.
    aws: AwsLocation = HERE
    # Where it was configured, for messages: PG_*, TARGETS_FILE (...) postgres[3] (name), ...
    origin: str = ENV_ORIGIN
    # PG_COLLECTORS: the SPEC 11 health groups collected; PG_TABLES_TOP_N: tables in `tables`.
    collectors: frozenset[str] = PG_DEFAULT_COLLECTORS
    tables_top_n: int = 20
    # PG_QUERIES_FILE / queries_file: custom SQL metrics (SPEC 16), at most
    # PG_QUERIES_MAX_SERIES series per query.
    custom_queries: QueriesFile | None = None
    queries_max_series: int = 1000
    # PG_DATABASES / databases: the per-database series of every database (all_databases)
    # or of these, besides PG_DBNAME; at most database_connections kept open for them.
    all_databases: bool = False
    databases: tuple[str, ...] = ()
    database_connections: int = 8
    # PG_INDEXES_TOP_N: indexes the `indexes` group sends per database.
    indexes_top_n: int = 20
    # False on a target whose server (host and port) another target carries: it reads and
    # sends only its database's series (the runtime decides, SPEC 16).
    server_wide: bool = True
    # Of its PG_DATABASES, those another target of the same server reads (its own database,
    # or one that target asked for first), or all of them (an earlier target reads `all`):
    # each database of a server is read once a pass (the runtime decides).
    databases_read_elsewhere: frozenset[str] = frozenset()
    all_read_elsewhere: bool = False


def load_collectors(env: EnvReader) -> tuple[frozenset[str], int]:
    """PG_COLLECTORS: group names, comma separated, replacing the default set (every group
    but ``bloat``); names that each start with '-' or '+' take groups out of the default set
    or add them to it instead; ``none``: no group. PG_TABLES_TOP_N: how many tables the
    ``tables`` (and ``bloat``) group sends."""
    raw = env.text("PG_COLLECTORS")
    tables_top_n = env.integer("PG_TABLES_TOP_N", 20, 0, 1000)
    if raw is None:
        return PG_DEFAULT_COLLECTORS, tables_top_n
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if items == ["none"]:
        return frozenset(), tables_top_n
    relative = [item.startswith(("-", "+")) for item in items]
    names = [item.lstrip("-+").strip() for item in items]
    unknown = [name for name in names if name not in PG_COLLECTOR_GROUPS]
    if not items or unknown or (any(relative) and not all(relative)):
        env.problem(
            "PG_COLLECTORS",
            "expected 'none' or a comma list of groups from "
            f"{', '.join(PG_COLLECTOR_GROUPS)} (all of them '-name' or '+name' to take those "
            f"out of the default set or add them to it), got {raw!r}",
        )
        return PG_DEFAULT_COLLECTORS, tables_top_n
    if all(relative):
        removed = {name for item, name in zip(items, names, strict=True) if item[0] == "-"}
        added = {name for item, name in zip(items, names, strict=True) if item[0] == "+"}
        return (PG_DEFAULT_COLLECTORS - removed) | added, tables_top_n
    return frozenset(names), tables_top_n


def server_key(spec: PostgresSettings) -> tuple[str, int] | None:
    """The server a target reads (host and port as configured), or None when the secret
    supplies them (not known before it is read)."""
    if "host" in spec.from_secret or "port" in spec.from_secret or not spec.host:
        return None
    return (spec.host.lower().rstrip("."), spec.port)


def mark_server_carriers(specs: list[TSpec]) -> list[TSpec]:
    """Targets sharing a server (host and port) read each thing once a pass. The target
    first by name carries the server's series (statements, QPS, activity, replication,
    settings, database sizes and statistics); the others send their databases' only. Each
    target reads its own database (PG_DBNAME); a database of PG_DATABASES is read by the
    first target by name that asks for it, unless it is another target's own database."""
    servers: dict[tuple[str, int], list[PostgresSettings]] = {}
    for spec in specs:
        if isinstance(spec, PostgresSettings) and (key := server_key(spec)) is not None:
            servers.setdefault(key, []).append(spec)
    marked_by_name: dict[str, PostgresSettings] = {}
    for sharing in servers.values():
        sharing.sort(key=lambda target: target.target_name)
        owned = {target.database for target in sharing}
        claimed: set[str] = set()
        all_claimed = False
        for position, target in enumerate(sharing):
            marked_by_name[target.target_name] = replace(
                target,
                server_wide=position == 0,
                databases_read_elsewhere=frozenset((owned | claimed) - {target.database}),
                all_read_elsewhere=all_claimed,
            )
            all_claimed = all_claimed or target.all_databases
            claimed.update(target.databases)
    marked: list[TSpec] = []
    for spec in specs:
        if isinstance(spec, PostgresSettings) and server_key(spec) is not None:
            new = marked_by_name[spec.target_name]
            if new != spec:
                spec = cast(TSpec, new)
        marked.append(spec)
    return marked


def is_rds_host(host: str) -> bool:
    return host.lower().rstrip(".").endswith(RDS_HOST_SUFFIXES)


def default_sslmode(host: str) -> str:
    """An RDS/Aurora endpoint is verified against the AWS CA bundle unless told otherwise;
    elsewhere libpq's own default (TLS when offered, unverified)."""
    return "verify-full" if is_rds_host(host) else "prefer"


def load_custom_queries(env: EnvReader, search_dirs: Sequence[Path]) -> QueriesFile | None:
    """PG_QUERIES_FILE: a queries.yaml (postgres_exporter's format) every PostgreSQL target
    runs unless its targets-file entry names its own."""
    name = env.text("PG_QUERIES_FILE")
    if name is None:
        return None
    queries, problems = read_queries_file(name, search_dirs)
    for problem in problems:
        env.problem("PG_QUERIES_FILE", problem)
    return queries


def parse_databases(raw: str) -> tuple[bool, tuple[str, ...]] | None:
    """PG_DATABASES / databases: ``all``, or database names, comma separated; None: empty."""
    names = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    if not names:
        return None
    if names == ("all",):
        return True, ()
    return False, names


def load_databases(env: EnvReader) -> tuple[bool, tuple[str, ...]]:
    raw = env.text("PG_DATABASES")
    if raw is None:
        return False, ()
    parsed = parse_databases(raw)
    if parsed is None or (parsed[0] is False and "all" in parsed[1]):
        env.problem(
            "PG_DATABASES", f"expected 'all' or a comma list of database names, got {raw!r}"
        )
        return False, ()
    return parsed


def postgres_defaults(
    env: EnvReader, search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS
) -> PostgresSettings:
    """What every PostgreSQL target shares (timeouts, top N, ...) from the PG_* option
    variables; the identity fields are blank, to be filled per target with ``replace``."""
    collectors, tables_top_n = load_collectors(env)
    all_databases, databases = load_databases(env)
    return PostgresSettings(
        target_name="",
        host="",
        port=5432,
        user="",
        password="",
        database="postgres",
        sslmode="prefer",
        sslrootcert=None,
        connect_timeout_seconds=env.number("PG_CONNECT_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
        statement_timeout_ms=env.integer("PG_STATEMENT_TIMEOUT_MS", 5000, 100, 60000),
        statements_top_n=env.integer("PG_STATEMENTS_TOP_N", 20, 0, 1000),
        query_max_length=env.integer("PG_QUERY_MAX_LENGTH", 300, 20, 10000),
        qps_sample_seconds=env.number("PG_QPS_SAMPLE_SECONDS", 1.0, 0.0, 10.0),
        rds_id=None,
        rds_type=RDS_TYPES[0],
        collectors=collectors,
        tables_top_n=tables_top_n,
        custom_queries=load_custom_queries(env, search_dirs),
        queries_max_series=env.integer("PG_QUERIES_MAX_SERIES", 1000, 1, 100000),
        all_databases=all_databases,
        databases=databases,
        database_connections=env.integer("PG_DATABASE_CONNECTIONS", 8, 0, 100),
        indexes_top_n=env.integer("PG_INDEXES_TOP_N", 20, 0, 1000),
    )


def tls_problem(sslmode: str, sslrootcert: str | None, iam_auth: bool) -> str | None:
    """What is wrong with a target's TLS settings, or None (the sentence names no variable:
    the caller says where)."""
    if iam_auth and sslmode not in VERIFIED_SSLMODES:
        return (
            f"IAM authentication sends a token as the password, which needs TLS that verifies "
            f"the server: sslmode {sslmode} is not allowed (use one of "
            f"{', '.join(VERIFIED_SSLMODES)}, with sslrootcert)"
        )
    if sslmode.startswith("verify-") and sslrootcert is None:
        return (
            f"sslmode {sslmode} needs the CA bundle that verifies the server (sslrootcert, "
            f"e.g. {CA_BUNDLE} from the CA layer)"
        )
    return None


def load_postgres(
    env: EnvReader, defaults: PostgresSettings, rds_type: str
) -> PostgresSettings | None:
    """The PG_* target, or None when no PG_* variable is set. ``rds_type`` is AWS_RDS_TYPE,
    already checked."""
    configured_by = [name for name in PG_VARIABLES if env.has(name)]
    # A flag at its default says nothing: PG_IAM_AUTH=false alone (a deployment template's
    # default) is no PostgreSQL. A value that is not a flag still counts, to be reported.
    if (
        configured_by == ["PG_IAM_AUTH"]
        and FLAGS.get((env.text("PG_IAM_AUTH") or "").lower()) is False
    ):
        return None
    if not configured_by:
        return None
    why = "when PostgreSQL is configured (" + ", ".join(configured_by) + " set)"
    secret_arn = env.text("PG_SECRET_ARN")
    iam_auth = env.flag("PG_IAM_AUTH", False)
    if secret_arn is None:
        host = env.required("PG_DATABASE", f"(the PostgreSQL host name or IP) {why}")
        user = env.required("PG_USER", why)
    else:
        # The secret supplies the login, and host/port/dbname where these are not set.
        host = env.text("PG_DATABASE") or ""
        user = env.text("PG_USER") or ""
    logins = [name for name in ("PG_PWD", "PG_SECRET_ARN") if env.has(name)]
    if iam_auth:
        logins.append("PG_IAM_AUTH")
    if len(logins) > 1:
        env.problem(
            logins[0],
            f"is set together with {' and '.join(logins[1:])}; the password comes from one "
            "of them (PG_PWD, PG_SECRET_ARN or PG_IAM_AUTH=true): unset the others",
        )
    rds_id = env.text("AWS_RDS_INSTANCE_ID")
    target_name = env.text("PG_TARGET_NAME") or rds_id or host
    if not target_name and secret_arn is not None:
        env.problem(
            "PG_TARGET_NAME",
            "is required when the host comes from PG_SECRET_ARN (it names the target before "
            "the secret is read); or set PG_DATABASE or AWS_RDS_INSTANCE_ID",
        )
    sslmode = env.choice("PG_SSLMODE", PG_SSLMODES, default_sslmode(host))
    sslrootcert = env.text("PG_SSLROOTCERT")
    if sslrootcert is None and not env.has("PG_SSLMODE") and sslmode.startswith("verify-"):
        sslrootcert = CA_BUNDLE  # the RDS default above: the bundle the CA layer ships
    problem = tls_problem(sslmode, sslrootcert, iam_auth)
    if problem is not None:
        env.problem("PG_SSLMODE" if iam_auth else "PG_SSLROOTCERT", problem)
    from_secret = frozenset(
        name
        for name, variable in (
            ("host", "PG_DATABASE"),
            ("port", "PG_PORT"),
            ("dbname", "PG_DBNAME"),
        )
        if secret_arn is not None and not env.has(variable)
    )
    return replace(
        defaults,
        target_name=target_name,
        host=host,
        port=env.port("PG_PORT", 5432),
        user=user,
        password=env.secret("PG_PWD") or "",
        database=env.text("PG_DBNAME", "postgres") or "postgres",
        sslmode=sslmode,
        sslrootcert=sslrootcert,
        rds_id=rds_id,
        rds_type=rds_type,
        secret_arn=secret_arn,
        from_secret=from_secret,
        iam_auth=iam_auth,
    )
