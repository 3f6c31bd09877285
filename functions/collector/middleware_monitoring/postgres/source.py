"""The PostgreSQL source: every SPEC 3.1, 3.2 and 11 series from one connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.samples import Sample

from ..config import PostgresSettings
from ..model import Later, SourceFailure, in_place, seconds_left
from . import statements as sql
from .capabilities import CapabilityCache
from .connection import PgConnection, QueryFailure
from .databases import Databases
from .health import Health
from .qps import (
    Kinds,
    PackedCalls,
    Server,
    Snapshot,
    not_comparable,
    rates,
)

logger = logging.getLogger(__name__)

ACTIVITY_SQL = f"""{sql.MARKER} SELECT
  count(*),
  count(*) FILTER (WHERE state = 'active'),
  count(*) FILTER (WHERE state = 'idle'),
  count(*) FILTER (WHERE waiting AND waited >= 1),
  count(*) FILTER (WHERE waiting AND waited >= 5),
  extract(epoch FROM clock_timestamp() - pg_postmaster_start_time())::float8
FROM (
  SELECT state,
         wait_event IS NOT NULL AND state NOT LIKE 'idle%' AS waiting,
         extract(epoch FROM clock_timestamp() - state_change) AS waited
  FROM pg_stat_activity
  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
) AS sessions"""

CONNECTIONS_BY_USER_SQL = f"""{sql.MARKER} SELECT coalesce(usename, ''), count(*)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1"""

# Databases the login may not connect to (rdsadmin on RDS) make pg_database_size fail.
DATABASE_SIZES_SQL = f"""{sql.MARKER} SELECT datname, pg_database_size(oid)
FROM pg_database
WHERE NOT datistemplate AND has_database_privilege(oid, 'CONNECT')"""

# More than the collector's own distinct statements, so they never push others out of the top N.
TOP_SLACK = 16
PG_UP_HELP: Final = "1 if a connection and a trivial query succeeded this pass, else 0."
STATEMENT_LABELS: Final = ("query", "queryid", "database", "user")
# SPEC 3.2, in its order, then the SPEC 11 details (PG_COLLECTORS group statement_details;
# WAL and planning from extension 1.8). The Kafka stream's messages follow this order too.
_SPEC_3_2_SERIES: Final = (
    ("pg_query_calls", "Times the statement was executed."),
    ("pg_query_total_exec_time", "Total execution time of the statement, ms."),
    ("pg_query_min_exec_time", "Minimum execution time of the statement, ms."),
    ("pg_query_max_exec_time", "Maximum execution time of the statement, ms."),
    ("pg_query_mean_exec_time", "Mean execution time of the statement, ms."),
    ("pg_query_blk_read_time", "Time the statement spent reading blocks, ms."),
    ("pg_query_blk_write_time", "Time the statement spent writing blocks, ms."),
    ("pg_query_rows", "Rows retrieved or affected by the statement."),
    ("pg_query_hit_percent", "Shared buffer hit percentage of the statement."),
)
_DETAIL_SERIES: Final = (
    ("pg_query_shared_blks_hit", "Shared buffer blocks the statement found in the cache."),
    ("pg_query_shared_blks_read", "Shared buffer blocks the statement read."),
    ("pg_query_temp_blks_written", "Temporary file blocks the statement wrote."),
    ("pg_query_wal_bytes", "WAL the statement generated, bytes."),
    (
        "pg_query_total_plan_time",
        "Total planning time of the statement, ms (0 unless pg_stat_statements.track_planning).",
    ),
)
STATEMENT_SERIES: Final = _SPEC_3_2_SERIES + _DETAIL_SERIES
# Time kept for the second snapshot of a cold-start QPS window, on top of twice what the
# first took; a window shorter than MIN_SAMPLE_SECONDS is not worth a rate.
SNAPSHOT_MARGIN_SECONDS: Final = 0.1
MIN_SAMPLE_SECONDS: Final = 0.05

_EXTENSION_HINT = (
    "pg_stat_statements is not available in database {database}: pg_query_* and pg_qps_* are "
    "not collected. To enable it add pg_stat_statements to shared_preload_libraries (on RDS and "
    "Aurora: in the DB parameter group, then reboot) and run "
    "CREATE EXTENSION pg_stat_statements; in database {database}."
)
_PRIVILEGE_HINT = (
    "other users' statements are hidden from {user} (no text, no queryid): they stay out of "
    "pg_qps_* (their entries cannot be told apart) and of the pg_query_* top N. "
    "GRANT pg_read_all_stats TO {user}; (pg_monitor includes it)"
)
_NOT_LOADED_STATE = "55000"  # "pg_stat_statements must be loaded via shared_preload_libraries"


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class PostgresSource:
    name = "postgres"

    def __init__(
        self,
        settings: PostgresSettings,
        connection: PgConnection | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._db = connection or PgConnection(settings)
        self._sleep = sleep
        self._clock = clock
        # Kept across warm passes: QPS needs the previous snapshot, and kinds and texts of
        # statements change only when statements come and go.
        self._previous: Snapshot | None = None
        self._kinds = Kinds()
        self._texts: dict[int, str] = {}
        # pg_stat_statements' version as the last pass read it (confirmed by each snapshot).
        self._version: str | None = None
        self._hint_given = False
        self._privilege_hint_given = False
        self._capabilities = CapabilityCache(self._db)
        self._control_refused_on = -1  # the connection (PgConnection.opened) that refused it
        self._control_refusal_logged = False
        self._health = Health(settings, self._db, self._capabilities)
        self._databases = Databases(settings, self._db)

    def close(self) -> None:
        self._db.close()
        self._databases.close()

    def down_families(self) -> Iterator[Metric]:
        yield _gauge("pg_up", PG_UP_HELP, 0)

    def collect(self) -> Iterator[Metric]:
        """Every series, a cold-start QPS window waited for in place (``sleep``)."""
        return in_place(self.steps(), self._sleep)

    def steps(self) -> Iterator[Metric | Later]:
        """Every series; a cold-start QPS window is a ``Later`` (the second snapshot), so
        the runner holds no worker while it runs and the other series go out meanwhile."""
        try:
            self._db.ensure_alive()
        except SourceFailure:
            yield from self.down_families()
            raise
        yield _gauge("pg_up", PG_UP_HELP, 1)

        failures: list[SourceFailure] = []
        sections: Iterable[Callable[[], Iterator[Metric | Later]]] = (
            self._activity,
            self._connections_by_user,
            self._database_sizes,
            self._health.collect,
            self._statements_and_qps,
        )
        if not self._settings.server_wide:
            # Another target of the same server (host and port) reads and sends these.
            sections = ()
        sections = (*sections, self._per_database)
        for section in sections:
            try:
                yield from section()
            except SourceFailure as failure:
                failures.append(failure)
                if not self._db.is_open:
                    break  # the connection is gone: further sections would each wait for a timeout
        if failures:
            raise SourceFailure(
                failures[0].reason, "; ".join(failure.detail for failure in failures)
            )

    def _activity(self) -> Iterator[Metric]:
        total, active, idle, wait_1s, wait_5s, uptime = self._db.run(ACTIVITY_SQL)[0]
        yield _gauge("pg_total_connections", "Client connections.", total)
        yield _gauge("pg_active_connections", "Client connections in state active.", active)
        yield _gauge("pg_idle_connections", "Client connections in state idle.", idle)
        yield _gauge(
            "pg_wait_session_sec",
            "Client sessions, not idle, with a wait event, in their current state for at "
            "least 1 s (PostgreSQL does not record when a wait began).",
            wait_1s,
        )
        yield _gauge(
            "pg_wait_session_five_sec",
            "Client sessions, not idle, with a wait event, in their current state for at "
            "least 5 s (PostgreSQL does not record when a wait began).",
            wait_5s,
        )
        yield _gauge("pg_uptime_seconds", "Seconds since the postmaster started.", uptime)

    def _connections_by_user(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "pg_user_connection_count", "Client connections per user.", labels=["username"]
        )
        for username, count in self._db.run(CONNECTIONS_BY_USER_SQL):
            family.add_metric([username], count)
        yield family

    def _database_sizes(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "pg_database_size_bytes",
            "Size of each non-template database.",
            labels=["database_name"],
        )
        for name, size in self._db.run(DATABASE_SIZES_SQL):
            family.add_metric([name], size)
        yield family

    def _per_database(self) -> Iterator[Metric]:
        yield from self._databases.collect(lambda: self._capabilities.get().server_version)

    # --- pg_stat_statements -------------------------------------------------------------

    def _extension_version(self) -> str | None:
        rows = self._db.run(sql.EXTENSION_VERSION_SQL)
        version = str(rows[0][0]) if rows else None
        if version is None:
            self._hint_once()
        return version

    def _hint_once(self) -> None:
        if not self._hint_given:
            self._hint_given = True
            logger.warning(
                _EXTENSION_HINT.format(database=self._settings.database),
                extra={"target": self._settings.target_name, "source": self.name},
            )

    def _header(self, version: str) -> list[Any]:
        """The snapshot's server identity and reset time (statements.snapshot_header_sql).
        A server may grant pg_control_system() and still refuse to run it (Aurora refuses
        several WAL and control functions): then, on this connection, the postmaster's start
        time alone identifies the server."""
        refused = self._control_refused_on == self._db.opened
        control = self._capabilities.get().control_readable and not refused
        try:
            return self._db.run(sql.snapshot_header_sql(version, control_readable=control))[0]
        except QueryFailure as failure:
            if not control or not failure.unsupported:
                raise
            # Without it the statement fails too when the trouble is elsewhere (e.g. the
            # extension not preloaded): then that failure is raised and nothing is concluded.
            row = self._db.run(sql.snapshot_header_sql(version, control_readable=False))[0]
            self._control_refused_on = self._db.opened
            if not self._control_refusal_logged:
                self._control_refusal_logged = True
                logger.info(
                    f"pg_control_system() refused ({failure.detail}): the server is told apart "
                    "from another by its start time only",
                    extra={"target": self._settings.target_name, "source": self.name},
                )
            return row

    def _snapshot(self, version: str, header: list[Any] | None = None) -> Snapshot:
        system_identifier, started_at, extversion, reset_at = header or self._header(version)
        earlier = self._previous.calls if self._previous is not None else None
        held = earlier if isinstance(earlier, PackedCalls) else None
        digest, keys, calls_column, hidden = self._db.run(
            sql.calls_sql(version), known=held.digest if held is not None else None
        )[0]
        if keys is None and digest is not None and held is not None and digest == held.digest:
            calls = held.with_calls(calls_column)  # the same entries: their keys were not sent
        else:
            calls = PackedCalls.from_columns(keys, calls_column, digest)
        snapshot = Snapshot(
            self._clock(),
            calls,
            reset_at,
            Server(system_identifier, started_at, extversion),
            hidden=hidden,
        )
        if not (held is not None and calls.same_queryids(held)):
            # The same entries as the last snapshot (most warm passes) were classified and
            # trimmed to then: only kinds and texts of entries the top N met since may be
            # kept a pass longer, as true as they were. Sets of thousands of queryids per
            # pass otherwise.
            queryids = calls.queryids()
            self._classify(queryids)
            self._forget_gone(queryids)
        if not self._privilege_hint_given and hidden:
            # Without pg_read_all_stats, other users' entries come without queryid and text.
            self._privilege_hint_given = True
            logger.warning(
                _PRIVILEGE_HINT.format(user=self._settings.user or "the login"),
                extra={"target": self._settings.target_name, "source": self.name},
            )
        return snapshot

    def _classify(self, queryids: set[int]) -> None:
        unknown = self._kinds.unknown(queryids)
        if unknown:
            packed_ids, codes = self._db.run(
                sql.CLASSIFY_SQL, queryids=sql.bigint_array(sorted(unknown))
            )[0]
            self._kinds.add_packed(packed_ids, codes)

    def _forget_gone(self, present: set[int]) -> None:
        """Keep caches as small as pg_stat_statements itself (entries get evicted)."""
        self._kinds.keep(present)
        for queryid in [q for q in self._texts if q not in present]:
            del self._texts[queryid]

    def _statements_and_qps(self) -> Iterator[Metric | Later]:
        try:
            window_started = self._clock()
            snapshot_started = time.monotonic()
            known = self._snapshot_of_known_version()
            if known is None:
                version = self._version = self._extension_version()
                if version is None:
                    return
                window_started = self._clock()
                snapshot_started = time.monotonic()
                first = self._snapshot(version)
            else:
                version, first = known
            snapshot_seconds = time.monotonic() - snapshot_started
        except SourceFailure as failure:
            if _NOT_LOADED_STATE in failure.detail:
                self._hint_once()
                return
            raise
        self._hint_given = False

        yield from self._top_statements(version)

        before = self._previous
        if before is not None and (why := not_comparable(before, first)) is not None:
            # A failover, a moved endpoint or an extension upgrade: the counters are another
            # server's (or kept differently); rating across would invent thousands of calls.
            logger.info(
                f"pg_stat_statements: no rate against the previous pass: {why}",
                extra={"target": self._settings.target_name, "source": self.name},
            )
            before = None
        # Also the rate's start next pass when the window below is dropped.
        self._previous = first
        if before is not None:
            yield from self._qps(before, first)
        elif self._settings.qps_sample_seconds > 0:
            margin = SNAPSHOT_MARGIN_SECONDS + 2 * snapshot_seconds
            window = self._sample_window(window_started, margin)
            if window is not None:
                yield Later(
                    window,
                    partial(self._window_end, version, first, margin),
                    partial(self._no_window, margin),
                )

    def _snapshot_of_known_version(self) -> tuple[str, Snapshot] | None:
        """A warm pass's snapshot without reading the extension version first: the snapshot
        header reads it too, so the version of the last pass is used and confirmed by it (a
        round trip less in every warm pass). None when there is none yet, or the header
        says another version or fails: then the version is read first, as on a cold pass,
        and what happens then (the hint of a missing extension, the failure) is the same."""
        version = self._version
        if version is None:
            return None
        try:
            header = self._header(version)
        except QueryFailure:
            return None
        if header[2] != version:
            return None
        return version, self._snapshot(version, header)

    def _window_end(self, version: str, first: Snapshot, margin: float) -> Iterator[Metric]:
        """The second snapshot of a cold-start window, and the rates over it."""
        left = seconds_left()
        # Started late (every worker was busy) with less left than twice what the first
        # snapshot took: the second would risk the deadline, and the whole source with it.
        if left is not None and left < margin - SNAPSHOT_MARGIN_SECONDS:
            self._no_window(margin)
            return
        if not self._db.is_open:
            return  # lost during the first step, whose failure says so
        latest = self._snapshot(version)
        self._previous = latest
        yield from self._qps(first, latest)

    def _qps(self, before: Snapshot, latest: Snapshot) -> Iterator[Metric]:
        measured = rates(before, latest, self._kinds)
        if measured is None:
            return
        yield _gauge("pg_qps_all", "Statements per second, all kinds.", measured.all)
        yield _gauge("pg_qps_read", "Statements per second that read.", measured.read)
        yield _gauge("pg_qps_write", "Statements per second that write.", measured.write)

    def _sample_window(self, window_started: float, margin: float) -> float | None:
        """How long to wait before the second snapshot of a cold-start window: the rest of
        PG_QPS_SAMPLE_SECONDS (the work since the first snapshot counts), but never past the
        pass's deadline, less ``margin`` for the second snapshot. None: too little time is
        left."""
        window = max(0.0, self._settings.qps_sample_seconds - (self._clock() - window_started))
        left = seconds_left()
        if left is None:
            return window
        room = left - margin
        if room < 0 or (window > room and room < MIN_SAMPLE_SECONDS):
            self._no_window(margin)
            return None
        return min(window, room)

    def _no_window(self, margin: float) -> None:
        logger.debug(
            f"no QPS sampling window this pass: {seconds_left(0.0):.3f} s left before the "
            f"pass deadline, {margin:.3f} s kept for the second snapshot",
            extra={"target": self._settings.target_name, "source": self.name},
        )

    def _excluded_from_top(self) -> frozenset[int]:
        return self._kinds.excluded_from_top()

    def _top_statements(self, version: str) -> Iterator[Metric]:
        limit = self._settings.statements_top_n
        if limit == 0:
            return
        excluded = sorted(self._excluded_from_top())
        # Entries created since the last classification (the collector's own statements of
        # this pass among them) are not excluded yet: ask for a few more, classify, drop.
        [[rows]] = self._db.run(sql.top_sql(version), excluded=excluded, limit=limit + TOP_SLACK)
        self._classify({row[0] for row in rows})
        excluded_now = self._excluded_from_top()
        rows = [row for row in rows if row[0] not in excluded_now][:limit]
        missing = [row[0] for row in rows if row[0] not in self._texts]
        if missing:
            for queryid, text in self._db.run(
                sql.TEXT_SQL, queryids=missing, max_length=self._settings.query_max_length
            ):
                self._texts[queryid] = text
        details = "statement_details" in self._settings.collectors
        series: tuple[tuple[str, str], ...] = STATEMENT_SERIES if details else _SPEC_3_2_SERIES
        families = [GaugeMetricFamily(name, doc, labels=STATEMENT_LABELS) for name, doc in series]
        # Samples made here rather than by add_metric, the one label dict of a statement
        # shared by its samples: these are most of a PostgreSQL target's series, and
        # add_metric zipped a dict per sample.
        outputs = [(family.name, family.samples.append) for family in families]
        texts = self._texts
        for (
            queryid,
            database,
            user,
            calls,
            total,
            minimum,
            maximum,
            rows_,
            blk_read,
            blk_write,
            hit,
            read,
            temp_written,
            wal_bytes,
            plan_time,
        ) in rows:
            labels = {
                "query": texts.get(queryid, ""),
                "queryid": str(queryid),
                "database": database or "",
                "user": user or "",
            }
            values = (
                calls,
                total,
                minimum,
                maximum,
                total / calls if calls else None,
                blk_read,
                blk_write,
                rows_,
                100.0 * hit / (hit + read) if hit + read else None,
                hit,
                read,
                temp_written,
                wal_bytes,
                plan_time,
            )
            # Without statement_details, the families are the SPEC 3.2 ones, the first nine.
            for (name, append), value in zip(outputs, values, strict=False):
                if value is not None:
                    append(Sample(name, labels, float(value)))
        yield from families
