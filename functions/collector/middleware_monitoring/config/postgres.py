"""PostgreSQL settings (PG_*, AWS_RDS_INSTANCE_ID, AWS_RDS_TYPE; SPEC 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from .env import EnvReader

RDS_TYPES: Final = ("DBInstanceIdentifier", "DBClusterIdentifier")
PG_SSLMODES: Final = ("disable", "prefer", "require", "verify-ca", "verify-full")
# Variables whose presence turns a source on; used to say "X is set, so Y is required".
PG_VARIABLES: Final = (
    "PG_DATABASE",
    "PG_PORT",
    "PG_USER",
    "PG_PWD",
    "PG_DBNAME",
    "PG_SECRET_ARN",
)
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
)
PG_DEFAULT_COLLECTORS: Final = frozenset(PG_COLLECTOR_GROUPS)


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
    # PG_COLLECTORS: the SPEC 11 health groups collected; PG_TABLES_TOP_N: tables in `tables`.
    collectors: frozenset[str] = PG_DEFAULT_COLLECTORS
    tables_top_n: int = 20


def load_collectors(env: EnvReader) -> tuple[frozenset[str], int]:
    """PG_COLLECTORS: group names, comma separated, replacing the default set (all groups);
    names that each start with '-' are taken out of the default set instead; ``none``: no
    group. PG_TABLES_TOP_N: how many tables the ``tables`` group sends."""
    raw = env.text("PG_COLLECTORS")
    tables_top_n = env.integer("PG_TABLES_TOP_N", 20, 0, 1000)
    if raw is None:
        return PG_DEFAULT_COLLECTORS, tables_top_n
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if items == ["none"]:
        return frozenset(), tables_top_n
    removing = [item.startswith("-") for item in items]
    names = [item.removeprefix("-").strip() for item in items]
    unknown = [name for name in names if name not in PG_COLLECTOR_GROUPS]
    if not items or unknown or (any(removing) and not all(removing)):
        env.problem(
            "PG_COLLECTORS",
            "expected 'none' or a comma list of groups from "
            f"{', '.join(PG_COLLECTOR_GROUPS)} (all of them '-name' to leave those out of the "
            f"default set), got {raw!r}",
        )
        return PG_DEFAULT_COLLECTORS, tables_top_n
    if all(removing):
        return PG_DEFAULT_COLLECTORS - set(names), tables_top_n
    return frozenset(names), tables_top_n


def load_postgres(env: EnvReader) -> PostgresSettings | None:
    if not any(env.has(name) for name in PG_VARIABLES):
        return None
    why = (
        "when PostgreSQL is configured ("
        + ", ".join(name for name in PG_VARIABLES if env.has(name))
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
    collectors, tables_top_n = load_collectors(env)
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
        collectors=collectors,
        tables_top_n=tables_top_n,
    )
