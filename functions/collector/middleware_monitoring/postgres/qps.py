"""Statements per second from two pg_stat_statements snapshots.

Entries come and go (eviction at pg_stat_statements.max, pg_stat_statements_reset()), so the
rate is summed per entry, an entry being what pg_stat_statements keys and evicts on its own:
(userid, dbid, queryid, toplevel). An entry absent from the earlier snapshot was created after
it and all its calls are new. An entry whose count went down was reset, or evicted and
re-created, at an unknown moment: how many of its calls came after the earlier snapshot is
unknown, so it adds nothing this pass (the next pass rates it again). After a full
pg_stat_statements_reset() (seen in pg_stat_statements_info from extension 1.9) every entry
counts from zero. Entries whose
queryid is hidden from the login cannot be paired and are no part of a rate. No delta is
ever negative, and none is more than the entry ran: calls of entries evicted between the
snapshots are lost, so under eviction the rate is a lower bound, never an invented one.

Two snapshots are only compared when they come from the same server and extension version
(a failover or a moved endpoint reaches another server whose counters started elsewhere; an
extension upgrade changes how entries are kept), their reset times are explained (the
same, or a later pg_stat_statements_reset()), and the login sees at least the entries it saw
(after a GRANT pg_read_all_stats every entry hidden before would look new). Otherwise there
is no rate: every call the other server recorded since its own reset would count as
happening in the last interval.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import compress
from typing import Final

EntryKey = tuple[int, int, int, int]  # (userid, dbid, queryid, toplevel 1 or 0)
_WIDTH = 5  # int8 values an entry: its key, then its calls


def _int8s(packed: bytes | None) -> array[int]:
    values = array("q")
    values.frombytes(packed or b"")
    if sys.byteorder == "little":
        values.byteswap()  # int8send is big-endian
    return values


class PackedCalls(Mapping[EntryKey, int]):
    """The call counts of every entry in 40 bytes each, as statements.calls_sql sends
    them: a warm function instance keeps one per PostgreSQL target between passes, and a
    dict of tuples would take about ten times the memory."""

    def __init__(self, packed: bytes | None, digest: str | None = None) -> None:
        self._values = _int8s(packed)
        # The md5 of the keys as the server made it (statements.calls_sql), None if unknown.
        self.digest = digest

    @classmethod
    def from_columns(
        cls, keys: bytes | None, calls: bytes | None, digest: str | None
    ) -> PackedCalls:
        """From statements.calls_sql's two byteas: the keys (four int8 an entry), the calls."""
        key_values, call_values = _int8s(keys), _int8s(calls)
        if len(key_values) != (_WIDTH - 1) * len(call_values):
            raise ValueError(f"{len(key_values)} key values with {len(call_values)} calls")
        values = array("q", bytes(8 * _WIDTH * len(call_values)))
        for i in range(_WIDTH - 1):
            values[i::_WIDTH] = key_values[i :: _WIDTH - 1]
        values[_WIDTH - 1 :: _WIDTH] = call_values
        made = cls(None, digest)
        made._values = values
        return made

    def with_calls(self, calls: bytes | None) -> PackedCalls:
        """These entries (the same keys in the same order) with new calls."""
        call_values = _int8s(calls)
        if len(call_values) != len(self):
            raise ValueError(f"{len(call_values)} calls for {len(self)} entries")
        made = PackedCalls(None, self.digest)
        made._values = self._values[:]
        made._values[_WIDTH - 1 :: _WIDTH] = call_values
        return made

    def __len__(self) -> int:
        return len(self._values) // _WIDTH

    def __iter__(self) -> Iterator[EntryKey]:
        v = self._values
        return zip(v[0::_WIDTH], v[1::_WIDTH], v[2::_WIDTH], v[3::_WIDTH], strict=True)

    def __getitem__(self, key: EntryKey) -> int:
        for entry, calls in self.items():
            if entry == key:
                return calls
        raise KeyError(key)

    def items(self) -> Iterator[tuple[EntryKey, int]]:  # type: ignore[override]
        return zip(iter(self), self._values[_WIDTH - 1 :: _WIDTH], strict=True)

    def queryids(self) -> set[int]:
        return set(self._values[2::_WIDTH])

    def same_queryids(self, other: PackedCalls) -> bool:
        """Whether both hold the same queryids in the same order (compared in C)."""
        mine, theirs = self._values, other._values
        return len(mine) == len(theirs) and mine[2::_WIDTH] == theirs[2::_WIDTH]

    def changed_since(self, before: PackedCalls) -> Iterator[tuple[EntryKey, int, int]] | None:
        """(entry, calls before, calls now) of every entry whose count changed, when both
        hold the same entries in the same order (the common case between two passes), else
        None: the column comparisons run at C speed, only changed entries reach Python."""
        mine, theirs = self._values, before._values
        last = _WIDTH - 1
        if len(mine) != len(theirs) or any(
            mine[i::_WIDTH] != theirs[i::_WIDTH] for i in range(last)
        ):
            return None
        now, then = mine[last::_WIDTH], theirs[last::_WIDTH]
        if now == then:
            return iter(())
        return (
            ((mine[k], mine[k + 1], mine[k + 2], mine[k + 3]), old, new)
            for k, old, new in zip(range(0, len(mine), _WIDTH), then, now, strict=True)
            if old != new
        )


class Kinds(Mapping[int, str]):
    """queryid -> kind (read, write, other, own), and whether the statement stays out of the
    top N, in 9 bytes an entry (a sorted array of queryids, a byte each): kept per target
    while warm for up to pg_stat_statements.max entries, where a dict would take ~100."""

    NAMES = ("other", "read", "write", "own")
    _TRIVIAL = 4

    def __init__(self) -> None:
        self._ids = array("q")
        self._codes = bytearray()
        # What excluded_from_top answers, worked out when the kinds change, not per call.
        self._excluded: frozenset[int] = frozenset()

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __getitem__(self, queryid: int) -> str:
        i = bisect_left(self._ids, queryid)
        if i == len(self._ids) or self._ids[i] != queryid:
            raise KeyError(queryid)
        return self.NAMES[self._codes[i] & 3]

    def unknown(self, queryids: set[int]) -> set[int]:
        ids = self._ids
        if len(queryids) * 16 < len(ids):
            # A few (the top N's): each looked up, rather than all the kinds walked.
            return {q for q in queryids if q not in self}
        return queryids.difference(ids)

    def add(self, rows: Iterable[tuple[int, str, bool]]) -> None:
        """(queryid, kind, trivial) of each statement."""
        codes = dict(zip(self._ids, self._codes, strict=True))
        for queryid, kind, trivial in rows:
            codes[queryid] = self.NAMES.index(kind) | (self._TRIVIAL if trivial else 0)
        self._store(codes)

    def add_packed(self, queryids: bytes | None, codes: bytes | None) -> None:
        """statements.CLASSIFY_SQL's row: big-endian int8 queryids in ascending order and a
        code byte each (NULL, NULL when nothing was classified). A cold target's thousands
        of statements are taken as they come, without a Python object each."""
        ids = _int8s(queryids)
        packed = bytearray(codes or b"")
        if len(packed) != len(ids):
            raise ValueError(f"{len(ids)} queryids with {len(packed)} kinds")
        if not self._ids:
            self._ids, self._codes = ids, packed
            self._excluded = frozenset(compress(ids, packed.translate(_EXCLUDED)))
            return
        merged = dict(zip(self._ids, self._codes, strict=True))
        merged.update(zip(ids, packed, strict=True))
        self._store(merged)

    def keep(self, present: set[int]) -> None:
        """Forget the entries pg_stat_statements no longer holds (evicted, reset)."""
        if len(present) < len(self._ids) or not present.issuperset(self._ids):
            self._store({q: c for q, c in zip(self._ids, self._codes, strict=True) if q in present})

    def excluded_from_top(self) -> frozenset[int]:
        """The collector's own statements and trivial utility ones."""
        return self._excluded

    def _store(self, codes: Mapping[int, int]) -> None:
        ordered = sorted(codes)
        self._ids = array("q", ordered)
        self._codes = bytearray(codes[q] for q in ordered)
        self._excluded = frozenset(compress(self._ids, self._codes.translate(_EXCLUDED)))


# Kinds' code -> 1 when the statement stays out of the top N (trivial, or own: kind 3).
_EXCLUDED: Final = bytes(
    1 if code & Kinds._TRIVIAL or code & 3 == Kinds.NAMES.index("own") else 0 for code in range(256)
)


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
    # Whether some entries' queryids were hidden from the login (left out of ``calls``).
    hidden: bool = False


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
    if before.hidden and not after.hidden:
        # A GRANT pg_read_all_stats between the passes (or every hidden entry gone): entries
        # hidden before would look new, with all their calls.
        return "the login sees entries it could not see before"
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
    same_reset = before.reset_at == after.reset_at
    pairs: Iterable[tuple[EntryKey, int | None, int]] | None = None
    if (
        same_reset
        and isinstance(before.calls, PackedCalls)
        and isinstance(after.calls, PackedCalls)
    ):
        # The same entries as before (no eviction, no new statement): only changed counts
        # are looked at, a few out of thousands.
        pairs = after.calls.changed_since(before.calls)
    if pairs is None:
        earlier = dict(before.calls.items()) if same_reset else {}
        pairs = ((key, earlier.get(key), calls) for key, calls in after.calls.items())
    # A count that went down: the entry was reset or evicted and re-created at an unknown
    # time, so its calls since the earlier snapshot are unknown; it adds nothing this pass.
    deltas = (
        (key, calls if previous is None else max(calls - previous, 0))
        for key, previous, calls in pairs
    )
    return {key: delta for key, delta in deltas if delta}


def rates(before: Snapshot, after: Snapshot, kinds: Mapping[int, str]) -> Rates | None:
    """Rates by statement kind; ``kinds`` maps queryid to read/write/other/own. The
    collector's own statements are left out. None when no time has passed or the snapshots
    cannot be compared (``not_comparable``)."""
    elapsed = after.taken_at - before.taken_at
    if elapsed <= 0 or not_comparable(before, after) is not None:
        return None
    totals = {"read": 0, "write": 0, "all": 0}
    for (_, _, queryid, _), delta in calls_since(before, after).items():
        kind = kinds.get(queryid, "other")
        if kind == "own":
            continue
        totals["all"] += delta
        if kind in totals:
            totals[kind] += delta
    return Rates(totals["all"] / elapsed, totals["read"] / elapsed, totals["write"] / elapsed)
