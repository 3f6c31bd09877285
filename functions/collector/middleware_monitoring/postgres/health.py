"""PostgreSQL health that operators page on (SPEC 11): wraparound, replication, locks, waits,
vacuum. Every group switched on (PG_COLLECTORS) is one column of one statement, so the whole
lot costs one round trip on the connection the pass already holds.

Each group's column is JSON, whatever its shape (one row or many), which pg8000 hands over
as Python values. The SQL of a group follows the server: its version (pg_locks.waitstart
from 14), whether it is in recovery (which WAL position a slot is measured against) and
whether it is Aurora (aurora_replica_status() instead of pg_stat_replication).

A group the server or the login cannot serve is dropped, never the target:
- the login cannot read other sessions' state (no pg_read_all_stats): the groups reading
  it would count zeros, so they are left out before anything runs;
- a statement fails because a view or function is missing or not granted: each group is
  then run alone once to find which, and only that one is dropped. This happens again
  after a reconnect (it may be another server); the log says it once per function instance.
The collector's own session is never counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..config import PostgresSettings
from .capabilities import Capabilities, CapabilityCache
from .connection import PgConnection, QueryFailure
from .statements import MARKER

logger = logging.getLogger(__name__)

# Client sessions other than the collector's own.
_SESSIONS = """sessions AS (
  SELECT pid, state, wait_event_type, wait_event,
         extract(epoch FROM clock_timestamp() - xact_start)::float8 AS xact_age,
         extract(epoch FROM clock_timestamp() - state_change)::float8 AS state_age
  FROM pg_stat_activity
  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
)"""


def _blocked(caps: Capabilities) -> str:
    """Sessions waiting for a heavyweight lock, who they wait for and since when. Before 14
    PostgreSQL does not record when a wait began: the statement's age is the closest bound."""
    waited = "state_age"
    if caps.server_version >= 140000:
        waited = (
            "coalesce((SELECT extract(epoch FROM clock_timestamp() - min(l.waitstart))::float8"
            " FROM pg_locks l WHERE l.pid = sessions.pid AND NOT l.granted), state_age)"
        )
    return f"""blocked AS (
  SELECT pid, pg_blocking_pids(pid) AS blockers, {waited} AS waited
  FROM sessions
  WHERE wait_event_type = 'Lock'
)"""


def _server(caps: Capabilities, settings: PostgresSettings) -> str:
    return "json_build_array(pg_is_in_recovery(), current_setting('max_connections')::int)"


def _wraparound(caps: Capabilities, settings: PostgresSettings) -> str:
    return """json_build_array(
  current_setting('autovacuum_freeze_max_age')::bigint,
  current_setting('autovacuum_multixact_freeze_max_age')::bigint,
  (SELECT json_agg(json_build_array(datname, age(datfrozenxid), mxid_age(datminmxid)))
   FROM pg_database))"""


def _transactions(caps: Capabilities, settings: PostgresSettings) -> str:
    return """(SELECT json_build_array(
  coalesce(max(xact_age), 0),
  count(*) FILTER (WHERE state LIKE 'idle in transaction%'),
  coalesce(max(state_age) FILTER (WHERE state LIKE 'idle in transaction%'), 0))
 FROM sessions)"""


def _locks(caps: Capabilities, settings: PostgresSettings) -> str:
    return """(SELECT json_build_array(
  count(*) FILTER (WHERE cardinality(blockers) > 0),
  (SELECT count(DISTINCT blocker) FROM blocked, unnest(blockers) AS blocker),
  coalesce(max(waited) FILTER (WHERE cardinality(blockers) > 0), 0))
 FROM blocked)"""


def _wait_events(caps: Capabilities, settings: PostgresSettings) -> str:
    return """(SELECT coalesce(json_agg(json_build_array(wait_event_type, wait_event, n)), '[]')
 FROM (SELECT wait_event_type, wait_event, count(*) AS n FROM sessions
       WHERE wait_event IS NOT NULL AND state NOT LIKE 'idle%'
       GROUP BY wait_event_type, wait_event) AS waits)"""


def _replication(caps: Capabilities, settings: PostgresSettings) -> str:
    if caps.aurora:
        # Aurora's replicas read the shared volume; pg_stat_replication does not list them.
        return """(SELECT coalesce(json_agg(json_build_array(
    server_id::text, NULL, NULL, NULL, replica_lag_in_msec::float8 / 1000, NULL)), '[]')
 FROM aurora_replica_status()
 WHERE session_id <> 'MASTER_SESSION_ID' AND replica_lag_in_msec IS NOT NULL)"""
    # replay_lag is NULL when a replica has caught up and nothing was written since: no lag.
    # The slot a replica streams through (the slot whose active_pid is its walsender) names
    # it across reconnects; its client_port does not.
    slot = (
        "(SELECT s.slot_name FROM pg_replication_slots s WHERE s.active_pid = r.pid LIMIT 1)"
        if caps.slots_view
        else "NULL::name"
    )
    return f"""(SELECT coalesce(json_agg(json_build_array(
    r.application_name, host(r.client_addr), r.client_port, r.pid,
    CASE WHEN r.replay_lag IS NOT NULL THEN extract(epoch FROM r.replay_lag)::float8
         WHEN r.replay_lsn = r.sent_lsn THEN 0 END,
    {slot})
    ORDER BY r.pid), '[]')
 FROM pg_stat_replication r
 WHERE r.state <> 'backup')"""


def _replication_slots(caps: Capabilities, settings: PostgresSettings) -> str:
    # A replica has no current WAL position of its own (pg_current_wal_lsn() fails there).
    return """(SELECT coalesce(json_agg(json_build_array(slot_name, slot_type, active,
    CASE WHEN restart_lsn IS NULL THEN 0
         ELSE pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery()
                THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                ELSE pg_current_wal_lsn() END,
           restart_lsn)::float8 END)), '[]')
 FROM pg_replication_slots)"""


def _database_stats(caps: Capabilities, settings: PostgresSettings) -> str:
    return """(SELECT coalesce(json_agg(json_build_array(datname, deadlocks, temp_bytes,
    xact_commit, xact_rollback, blks_hit, blks_read)), '[]')
 FROM pg_stat_database WHERE datname IS NOT NULL)"""


def _tables(caps: Capabilities, settings: PostgresSettings) -> str:
    return tables_column(settings)


def tables_column(settings: PostgresSettings) -> str:
    # Ties (many tables without dead tuples) are broken by name, so the N stay the same N.
    return f"""(SELECT coalesce(json_agg(json_build_array(
    current_database(), schemaname, relname, n_dead_tup, n_live_tup,
    extract(epoch FROM last_autovacuum)::float8)), '[]')
 FROM (SELECT * FROM pg_stat_user_tables
       ORDER BY n_dead_tup DESC, schemaname, relname LIMIT {int(settings.tables_top_n)}) AS t)"""


# --- families -------------------------------------------------------------------------------


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _server_families(value: Any) -> Iterator[Metric]:
    in_recovery, max_connections = value
    yield _gauge(
        "pg_in_recovery", "1 on a replica (in recovery), 0 on a primary.", int(in_recovery)
    )
    yield _gauge("pg_max_connections", "The max_connections setting.", max_connections)


def _wraparound_families(value: Any) -> Iterator[Metric]:
    freeze_max_age, multixact_freeze_max_age, databases = value
    yield _gauge(
        "pg_autovacuum_freeze_max_age",
        "The autovacuum_freeze_max_age setting: transaction age at which autovacuum freezes "
        "a table even when vacuuming is off for it.",
        freeze_max_age,
    )
    yield _gauge(
        "pg_autovacuum_multixact_freeze_max_age",
        "The autovacuum_multixact_freeze_max_age setting.",
        multixact_freeze_max_age,
    )
    xid = GaugeMetricFamily(
        "pg_database_xid_age",
        "age(datfrozenxid): transactions since the database was last frozen; PostgreSQL stops "
        "assigning transaction IDs at 2^31 minus 3 million.",
        labels=["database_name"],
    )
    mxid = GaugeMetricFamily(
        "pg_database_mxid_age",
        "mxid_age(datminmxid): multixacts since the database was last frozen (limit 2^31).",
        labels=["database_name"],
    )
    for name, xid_age, mxid_age in databases:
        xid.add_metric([name], xid_age)
        mxid.add_metric([name], mxid_age)
    yield xid
    yield mxid


def _transaction_families(value: Any) -> Iterator[Metric]:
    oldest, idle_in_transaction, oldest_idle = value
    yield _gauge(
        "pg_oldest_xact_seconds",
        "Age of the oldest open transaction of a client session (0 when none).",
        oldest,
    )
    yield _gauge(
        "pg_idle_in_transaction_sessions",
        "Client sessions idle in transaction (aborted ones included).",
        idle_in_transaction,
    )
    yield _gauge(
        "pg_oldest_idle_in_transaction_seconds",
        "How long the longest idle-in-transaction session has been idle (0 when none).",
        oldest_idle,
    )


def _lock_families(value: Any) -> Iterator[Metric]:
    blocked, blocking, oldest = value
    yield _gauge(
        "pg_blocked_sessions", "Client sessions waiting for a lock another session holds.", blocked
    )
    yield _gauge("pg_blocking_sessions", "Distinct sessions that others wait for.", blocking)
    yield _gauge(
        "pg_oldest_blocked_seconds",
        "How long the longest current lock wait has lasted (0 when none; before PostgreSQL 14 "
        "the age of the waiting statement).",
        oldest,
    )


def _wait_event_families(value: Any) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "pg_wait_event_sessions",
        "Non-idle client sessions waiting now, by wait event (only pairs with sessions).",
        labels=["wait_event_type", "wait_event"],
    )
    for event_type, event, sessions in value:
        family.add_metric([event_type, event], sessions)
    yield family


def replica_names(rows: list[list[Any]]) -> list[str]:
    """A label per replica that stays the same when it reconnects (a new label is a new
    series, and under EMF a new billed metric): its application_name (Aurora: its instance
    id) when no other replica has it; replicas sharing one (the default `walreceiver`) add
    the slot they stream through, or else their client address. The client port changes
    at every reconnect: it is added only to tell apart replicas that share name and address
    and have no slot, where nothing stable can."""
    base = [str(name or "") for name, *_ in rows]
    stable = [
        name if name and base.count(name) == 1 else _joined(name, slot or host or "local")
        for name, (_, host, _, _, _, slot) in zip(base, rows, strict=True)
    ]
    return [
        label if stable.count(label) == 1 else f"{label}:{port or pid}"
        for label, (_, _, port, pid, _, _) in zip(stable, rows, strict=True)
    ]


def _joined(name: str, identity: str) -> str:
    return f"{name}@{identity}" if name else identity


def _replication_families(value: Any) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "pg_replica_lag_seconds",
        "Replay lag of each replica: pg_stat_replication.replay_lag on a primary (0 when "
        "caught up), aurora_replica_status() on Aurora.",
        labels=["replica"],
    )
    for name, row in zip(replica_names(value), value, strict=True):
        if row[4] is not None:
            family.add_metric([name], row[4])
    yield family


def _slot_families(value: Any) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "pg_replication_slot_retained_wal_bytes",
        "WAL the server keeps for the slot: current WAL position minus the slot's restart_lsn.",
        labels=["slot_name", "slot_type", "active"],
    )
    for name, slot_type, active, retained in value:
        if retained is not None:
            family.add_metric([name, slot_type, "true" if active else "false"], retained)
    yield family


_DATABASE_COUNTERS: Final = (
    ("pg_database_deadlocks", "Deadlocks detected in the database."),
    ("pg_database_temp_bytes", "Bytes written to temporary files by queries in the database."),
    ("pg_database_xact_commit", "Transactions committed in the database."),
    ("pg_database_xact_rollback", "Transactions rolled back in the database."),
    ("pg_database_blks_hit", "Blocks found in shared buffers in the database."),
    ("pg_database_blks_read", "Blocks read from disk (or the OS cache) in the database."),
)


def _database_families(value: Any) -> Iterator[Metric]:
    families = [
        CounterMetricFamily(name, doc, labels=["database_name"]) for name, doc in _DATABASE_COUNTERS
    ]
    for name, *counters in value:
        for family, counter in zip(families, counters, strict=True):
            family.add_metric([name], counter)
    yield from families


def _table_families(value: Any) -> Iterator[Metric]:
    labels = ["database_name", "schema", "table"]
    dead = GaugeMetricFamily(
        "pg_table_dead_tuples", "Dead tuples of the table (top PG_TABLES_TOP_N).", labels=labels
    )
    live = GaugeMetricFamily("pg_table_live_tuples", "Live tuples of the table.", labels=labels)
    autovacuum = GaugeMetricFamily(
        "pg_table_last_autovacuum_timestamp_seconds",
        "When autovacuum last vacuumed the table (0: never since statistics were reset).",
        labels=labels,
    )
    for database, schema, table, dead_tuples, live_tuples, autovacuumed in value:
        key = [database, schema, table]
        dead.add_metric(key, dead_tuples)
        live.add_metric(key, live_tuples)
        autovacuum.add_metric(key, autovacuumed or 0)
    yield dead
    yield live
    yield autovacuum


@dataclass(frozen=True)
class Group:
    name: str  # as in PG_COLLECTORS
    column: Callable[[Capabilities, PostgresSettings], str]
    families: Callable[[Any], Iterator[Metric]]
    # Common table expressions it reads, in the order they must be defined.
    ctes: tuple[str, ...] = ()
    # Reads other sessions' state or replication positions, which PostgreSQL hides from a
    # login without pg_read_all_stats: it would count zeros or send nothing.
    needs_all_stats: bool = False


GROUPS: Final = (
    Group("server", _server, _server_families),
    Group("wraparound", _wraparound, _wraparound_families),
    Group("transactions", _transactions, _transaction_families, ("sessions",), True),
    Group("locks", _locks, _lock_families, ("sessions", "blocked"), True),
    Group("wait_events", _wait_events, _wait_event_families, ("sessions",), True),
    Group("replication", _replication, _replication_families, (), True),
    Group("replication_slots", _replication_slots, _slot_families),
    Group("database_stats", _database_stats, _database_families),
    Group("tables", _tables, _table_families),
)
# Groups read in each database (databases.py), not in the server-wide statement.
PER_DATABASE: Final = frozenset({"tables"})
_CTES: Final[Mapping[str, Callable[[Capabilities], str]]] = {
    "sessions": lambda caps: _SESSIONS,
    "blocked": _blocked,
}


def health_sql(groups: list[Group], caps: Capabilities, settings: PostgresSettings) -> str:
    """One statement: a column per group, after the common table expressions they read."""
    needed = [name for name in _CTES if any(name in group.ctes for group in groups)]
    ctes = "".join(f",\n{_CTES[name](caps)}" for name in needed)
    columns = ",\n".join(group.column(caps, settings) for group in groups)
    return f"{MARKER}{ctes}\nSELECT\n{columns}"


_STATS_HINT: Final = (
    "PG_COLLECTORS group {group} is not collected: PostgreSQL hides other users' sessions "
    "and replication positions from {user}, so it would count zeros. "
    "GRANT pg_monitor TO {user}; (or pg_read_all_stats)"
)
_DROPPED: Final = (
    "PG_COLLECTORS group {group} is not collected: this server or login cannot run it "
    "({detail}); the other groups still are"
)


class Health:
    """The groups of one target, and which of them the current connection cannot serve."""

    def __init__(
        self, settings: PostgresSettings, db: PgConnection, capabilities: CapabilityCache
    ) -> None:
        self._settings = settings
        self._db = db
        self._capabilities = capabilities
        # Server-wide groups only, and only on the target that carries its server's
        # server-wide series; `tables` is read per database (databases.py).
        self._groups = [
            group
            for group in GROUPS
            if group.name in settings.collectors
            and group.name not in PER_DATABASE
            and settings.server_wide
        ]
        self._failed: set[str] = set()  # groups that failed on the connection `_failed_on`
        self._failed_on = -1
        self._logged: set[str] = set()  # once per function instance

    def collect(self) -> Iterator[Metric]:
        if not self._groups:
            return
        caps = self._capabilities.get()
        if self._failed_on != self._db.opened:
            self._failed, self._failed_on = set(), self._db.opened
        groups = [group for group in self._groups if self._servable(group, caps)]
        if not groups:
            return
        try:
            row = self._db.run(health_sql(groups, caps, self._settings))[0]
            values = dict(zip((group.name for group in groups), row, strict=True))
        except QueryFailure as failure:
            # Anything but a missing view, function or privilege (a timeout, a lost
            # connection) is the source's failure, as for its other statements.
            if not failure.unsupported:
                raise
            values = self._one_by_one(groups, caps)
        for group in groups:
            if group.name in values:
                yield from group.families(values[group.name])

    def _servable(self, group: Group, caps: Capabilities) -> bool:
        if group.name in self._failed:
            return False
        if group.needs_all_stats and not caps.reads_all_stats:
            user = self._settings.user or "the login"
            self._log_once(group.name, _STATS_HINT.format(group=group.name, user=user))
            return False
        return True

    def _one_by_one(self, groups: list[Group], caps: Capabilities) -> dict[str, Any]:
        """Each group alone, to find the ones this server cannot run; those are dropped."""
        values: dict[str, Any] = {}
        for group in groups:
            try:
                values[group.name] = self._db.run(health_sql([group], caps, self._settings))[0][0]
            except QueryFailure as failure:
                if not failure.unsupported:
                    raise
                self._failed.add(group.name)
                self._log_once(group.name, _DROPPED.format(group=group.name, detail=failure.detail))
        return values

    def _log_once(self, group: str, message: str) -> None:
        if group not in self._logged:
            self._logged.add(group)
            logger.warning(
                message, extra={"target": self._settings.target_name, "source": "postgres"}
            )
