"""What PostgreSQL shows only inside one database (SPEC 16): its tables, its indexes, the
vacuums running on its tables, its bloat estimate (bloat.py), and the custom queries without
``master``. Every group switched on is one JSON column of one statement, so a database costs
one round trip per pass (plus its custom queries).

The target's own database (PG_DBNAME) is read over the target's connection. With
PG_DATABASES (``all`` or a list) the others are read too, each over a connection of its own:
at most PG_DATABASE_CONNECTIONS of them stay open between passes (the first databases by
name); the databases past those are connected, read and disconnected within the pass, one
at a time, so a target never holds more than PG_DATABASE_CONNECTIONS + 2 connections.
``all`` is the server's databases as they are at each pass (templates, ``rdsadmin`` and
those the login may not connect to left out): one created is read from the next pass, one
dropped is forgotten with its connection.

A database that cannot be read (dropped meanwhile, refused by pg_hba) loses its series for
the pass, said once in the log, never the target. A group its server or login cannot run is
dropped for that database, as Health does for the server-wide groups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..config import PostgresSettings
from ..model import SourceFailure
from .bloat import bloat_column, bloat_families
from .connection import PgConnection, QueryFailure
from .custom_queries import CustomQueries
from .health import _table_families, tables_column
from .statements import MARKER

logger = logging.getLogger(__name__)

# Left out of PG_DATABASES=all: RDS's own database, which the login may not read.
EXCLUDED_DATABASES: Final = ("rdsadmin",)
DATABASES_SQL: Final = f"""{MARKER} SELECT datname FROM pg_database
WHERE NOT datistemplate AND datallowconn AND datname <> ALL(:excluded)
  AND has_database_privilege(oid, 'CONNECT')
ORDER BY datname"""


def _indexes(settings: PostgresSettings) -> str:
    # The size from pg_class.relpages (as of the last VACUUM, ANALYZE or CREATE INDEX):
    # pg_relation_size() would take a lock and wait behind any ACCESS EXCLUSIVE holder.
    return f"""(SELECT coalesce(json_agg(json_build_array(
    schemaname, relname, indexrelname, idx_scan, size)), '[]')
 FROM (SELECT s.schemaname, s.relname, s.indexrelname, s.idx_scan,
              c.relpages::float8 * current_setting('block_size')::int AS size
       FROM pg_stat_user_indexes s JOIN pg_class c ON c.oid = s.indexrelid
       ORDER BY size DESC, s.schemaname, s.indexrelname
       LIMIT {int(settings.indexes_top_n)}) AS i)"""


def _vacuum(settings: PostgresSettings) -> str:
    # The backend's transaction start is when its vacuum of this table began (autovacuum
    # and VACUUM run each table in a transaction of its own).
    return """(SELECT coalesce(json_agg(json_build_array(
    coalesce(c.relname, p.relid::text), p.phase, p.heap_blks_total, p.heap_blks_scanned,
    extract(epoch FROM clock_timestamp() - a.xact_start)::float8)), '[]')
 FROM pg_stat_progress_vacuum p
 LEFT JOIN pg_class c ON c.oid = p.relid
 LEFT JOIN pg_stat_activity a ON a.pid = p.pid
 WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database()))"""


def _index_families(database: str, value: Any) -> Iterator[Metric]:
    labels = ["database_name", "schema", "table", "index"]
    scans = CounterMetricFamily(
        "pg_index_scans",
        "Index scans started on the index (0: never used since statistics were reset); the "
        "top PG_INDEXES_TOP_N indexes by size.",
        labels=labels,
    )
    size = GaugeMetricFamily(
        "pg_index_size_bytes",
        "Size of the index (pg_class.relpages as of its last VACUUM, ANALYZE or build).",
        labels=labels,
    )
    for schema, table, index, scanned, size_bytes in value:
        key = [database, schema, table, index]
        scans.add_metric(key, scanned or 0)
        size.add_metric(key, size_bytes or 0)
    yield scans
    yield size


def _vacuum_families(database: str, value: Any) -> Iterator[Metric]:
    running = GaugeMetricFamily(
        "pg_vacuum_running",
        "1 per vacuum running now (VACUUM or autovacuum), by table and phase.",
        labels=["database_name", "table", "phase"],
    )
    ratio = GaugeMetricFamily(
        "pg_vacuum_progress_ratio",
        "Heap blocks the running vacuum has scanned, over the table's heap blocks.",
        labels=["database_name", "table"],
    )
    seconds = GaugeMetricFamily(
        "pg_vacuum_seconds",
        "How long the running vacuum of the table has been running.",
        labels=["database_name", "table"],
    )
    for table, phase, total, scanned, running_for in value:
        running.add_metric([database, table, phase], 1)
        ratio.add_metric([database, table], (scanned or 0) / total if total else 0.0)
        if running_for is not None:
            seconds.add_metric([database, table], running_for)
    yield running
    yield ratio
    yield seconds


def _table_group_families(database: str, value: Any) -> Iterator[Metric]:
    return _table_families(value)


@dataclass(frozen=True)
class DatabaseGroup:
    name: str  # as in PG_COLLECTORS
    column: Callable[[PostgresSettings], str]
    families: Callable[[str, Any], Iterator[Metric]]


GROUPS: Final = (
    DatabaseGroup("tables", tables_column, _table_group_families),
    DatabaseGroup("indexes", _indexes, _index_families),
    DatabaseGroup("vacuum", _vacuum, _vacuum_families),
    DatabaseGroup("bloat", bloat_column, bloat_families),
)


def database_sql(groups: list[DatabaseGroup], settings: PostgresSettings) -> str:
    return f"{MARKER}\nSELECT\n" + ",\n".join(group.column(settings) for group in groups)


@dataclass
class DatabaseState:
    """What is kept per database between passes."""

    failed: set[str] = field(default_factory=set)  # groups it cannot run (this connection)
    failed_on: int = -1
    custom: CustomQueries | None = None
    unreadable: str | None = None  # why it could not be read last pass (logged once)


class Databases:
    """The per-database series of one target: its own database, and PG_DATABASES."""

    def __init__(self, settings: PostgresSettings, db: PgConnection) -> None:
        self._settings = settings
        self._db = db
        self._groups = [g for g in GROUPS if g.name in settings.collectors]
        self._states: dict[str, DatabaseState] = {}
        self._connections: dict[str, PgConnection] = {}
        self._logged: set[str] = set()

    @property
    def label_custom(self) -> bool:
        """Custom queries carry database_name when several databases are read."""
        return self._settings.all_databases or bool(self._settings.databases)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def names(self) -> list[str]:
        """The databases to read this pass, the target's own first; not those another
        target of the same server reads."""
        own = self._settings.database
        if self._settings.all_read_elsewhere:
            return [own]
        if self._settings.all_databases:
            rows = self._db.run(DATABASES_SQL, excluded=list(EXCLUDED_DATABASES))
            others = [str(row[0]) for row in rows]
        else:
            others = list(self._settings.databases)
        elsewhere = self._settings.databases_read_elsewhere
        return [own, *(name for name in others if name != own and name not in elsewhere)]

    def collect(self, server_version: Callable[[], int]) -> Iterator[Metric]:
        """Each family once, with every database's samples (a name twice in one exposition
        is refused by the Pushgateway)."""
        merged: dict[str, Metric] = {}
        try:
            for family in self._collect(server_version):
                kept = merged.get(family.name)
                if kept is None:
                    merged[family.name] = family
                else:
                    kept.samples.extend(family.samples)
        except SourceFailure:
            # What was read before the failure is still sent, as other sections do.
            yield from merged.values()
            raise
        yield from merged.values()

    def _collect(self, server_version: Callable[[], int]) -> Iterator[Metric]:
        names = self.names() if self.label_custom else [self._settings.database]
        present = set(names)
        for gone in [name for name in self._states if name not in present]:
            del self._states[gone]
        for gone in [name for name in self._connections if name not in present]:
            self._connections.pop(gone).close()
        # The first PG_DATABASE_CONNECTIONS others by name keep their connection.
        kept = set(sorted(names[1:])[: self._settings.database_connections])
        for index, name in enumerate(names):
            state = self._states.setdefault(name, DatabaseState())
            if index == 0:
                yield from self._read(name, self._db, state, server_version)
                continue
            connection = self._connections.get(name)
            if connection is None:
                connection = self._db.for_database(name)
                if name in kept:
                    self._connections[name] = connection
            try:
                yield from self._read_other(name, connection, state, server_version)
            finally:
                if name not in kept:
                    connection.close()

    def _read_other(
        self,
        name: str,
        connection: PgConnection,
        state: DatabaseState,
        server_version: Callable[[], int],
    ) -> Iterator[Metric]:
        """Another database: its failure is its own (logged once), not the target's."""
        families: list[Metric] = []
        try:
            families = list(self._read(name, connection, state, server_version))
        except SourceFailure as failure:
            connection.close()
            if state.unreadable != failure.detail:
                state.unreadable = failure.detail
                logger.warning(
                    f"database {name} not read this pass: {failure.detail}",
                    extra={"target": self._settings.target_name, "source": "postgres"},
                )
            return
        state.unreadable = None
        yield from families

    def _read(
        self,
        name: str,
        connection: PgConnection,
        state: DatabaseState,
        server_version: Callable[[], int],
    ) -> Iterator[Metric]:
        if state.failed_on != connection.opened:
            state.failed, state.failed_on = set(), connection.opened
        groups = [g for g in self._groups if g.name not in state.failed]
        if groups:
            try:
                row = connection.run(database_sql(groups, self._settings))[0]
                values = dict(zip((g.name for g in groups), row, strict=True))
            except QueryFailure as failure:
                if not failure.unsupported:
                    raise
                values = self._one_by_one(name, connection, groups, state)
            for group in groups:
                if group.name in values:
                    yield from group.families(name, values[group.name])
        queries = self._settings.custom_queries
        if queries is not None:
            if state.custom is None:
                state.custom = CustomQueries(
                    queries, self._settings.queries_max_series, self._settings.target_name
                )
            own = name == self._settings.database
            yield from state.custom.collect(
                connection,
                server_version(),
                master=own and self._settings.server_wide,
                database_name=name if self.label_custom else None,
            )

    def _one_by_one(
        self,
        name: str,
        connection: PgConnection,
        groups: list[DatabaseGroup],
        state: DatabaseState,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for group in groups:
            try:
                values[group.name] = connection.run(database_sql([group], self._settings))[0][0]
            except QueryFailure as failure:
                if not failure.unsupported:
                    raise
                state.failed.add(group.name)
                if group.name not in self._logged:
                    self._logged.add(group.name)
                    logger.warning(
                        f"PG_COLLECTORS group {group.name} is not collected in database "
                        f"{name}: this server or login cannot run it ({failure.detail})",
                        extra={"target": self._settings.target_name, "source": "postgres"},
                    )
        return values
