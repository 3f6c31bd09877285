"""Statements per second from two pg_stat_statements snapshots.

Entries come and go (eviction at pg_stat_statements.max, pg_stat_statements_reset()), so the
rate is summed per entry: an entry absent from the earlier snapshot was created after it and
all its calls are new; an entry whose count went down was reset or evicted and re-created,
and its current count is what happened since; after a full pg_stat_statements_reset()
(seen in pg_stat_statements_info from extension 1.9) every entry counts from zero. No delta
is ever negative. Calls of entries
evicted between the snapshots are lost, so under heavy eviction the rate is a lower bound.

Two snapshots are only compared when they come from the same server and extension version
(a failover or a moved endpoint reaches another server whose counters started elsewhere; an
extension upgrade changes how entries are kept) and their reset times are explained (the
same, or a later pg_stat_statements_reset()). Otherwise there is no rate: every call the
other server recorded since its own reset would count as happening in the last interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EntryKey = tuple[int, int, int]  # (userid, dbid, queryid)


@dataclass(frozen=True)
class Server:
    """Which server a snapshot was taken on. ``system_identifier`` is None where
    pg_control_system() is not granted; the postmaster's start time still tells servers
    (and restarts) apart."""

    system_identifier: int | None
    started_at: float
    extversion: str | None


@dataclass(frozen=True)
class Snapshot:
    taken_at: float  # wall-clock seconds; Lambda may freeze monotonic clocks between invocations
    calls: Mapping[EntryKey, int]
    # pg_stat_statements_info.stats_reset (extension 1.9+), None where unknown.
    reset_at: float | None = None
    server: Server | None = None


@dataclass(frozen=True)
class Rates:
    all: float
    read: float
    write: float


def not_comparable(before: Snapshot, after: Snapshot) -> str | None:
    """Why ``after`` cannot be rated against ``before`` (a sentence for the log), or None."""
    if before.server != after.server:
        return f"the server changed ({_describe(before.server)} -> {_describe(after.server)})"
    if before.reset_at is not None and (after.reset_at is None or after.reset_at < before.reset_at):
        return "pg_stat_statements_info.stats_reset went back"
    return None


def _describe(server: Server | None) -> str:
    if server is None:
        return "unknown"
    return (
        f"system identifier {server.system_identifier}, started at {server.started_at:.3f}, "
        f"pg_stat_statements {server.extversion}"
    )


def calls_since(before: Snapshot, after: Snapshot) -> dict[EntryKey, int]:
    # After a full reset every entry restarted from zero, even one whose count has since
    # climbed past its old value: the earlier counts say nothing any more.
    earlier = {} if before.reset_at != after.reset_at else before.calls
    deltas: dict[EntryKey, int] = {}
    for key, calls in after.calls.items():
        previous = earlier.get(key)
        delta = calls if previous is None or calls < previous else calls - previous
        if delta:
            deltas[key] = delta
    return deltas


def rates(before: Snapshot, after: Snapshot, kinds: Mapping[int, str]) -> Rates | None:
    """Rates by statement kind; ``kinds`` maps queryid to read/write/other/own. The
    collector's own statements are left out. None when no time has passed or the snapshots
    cannot be compared (``not_comparable``)."""
    elapsed = after.taken_at - before.taken_at
    if elapsed <= 0 or not_comparable(before, after) is not None:
        return None
    totals = {"read": 0, "write": 0, "all": 0}
    for (_, _, queryid), delta in calls_since(before, after).items():
        kind = kinds.get(queryid, "other")
        if kind == "own":
            continue
        totals["all"] += delta
        if kind in totals:
            totals[kind] += delta
    return Rates(totals["all"] / elapsed, totals["read"] / elapsed, totals["write"] / elapsed)
