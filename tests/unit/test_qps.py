"""Rates from two pg_stat_statements snapshots: new, reset and evicted entries, the
collector's own statements, and time that did not move."""

from __future__ import annotations

import struct

import pytest

from middleware_monitoring.postgres.qps import (
    Kinds,
    PackedCalls,
    Rates,
    Server,
    Snapshot,
    calls_since,
    not_comparable,
    rates,
)

KINDS = {1: "read", 2: "write", 3: "other", 4: "own", 5: "read"}


def snap(taken_at: float, calls: dict[tuple[int, int, int, int], int]) -> Snapshot:
    return Snapshot(taken_at, calls)


def test_growth_per_entry() -> None:
    before = snap(100.0, {(10, 1, 1, 1): 5, (10, 1, 2, 1): 7})
    after = snap(110.0, {(10, 1, 1, 1): 25, (10, 1, 2, 1): 17})
    assert calls_since(before, after) == {(10, 1, 1, 1): 20, (10, 1, 2, 1): 10}
    assert rates(before, after, KINDS) == Rates(all=3.0, read=2.0, write=1.0)


def test_new_entry_counts_all_its_calls() -> None:
    before = snap(0.0, {(10, 1, 1, 1): 5})
    after = snap(2.0, {(10, 1, 1, 1): 5, (10, 1, 2, 1): 8, (11, 1, 5, 1): 4})
    assert calls_since(before, after) == {(10, 1, 2, 1): 8, (11, 1, 5, 1): 4}
    assert rates(before, after, KINDS) == Rates(all=6.0, read=2.0, write=4.0)


def test_an_entry_whose_count_went_down_adds_nothing_this_pass() -> None:
    # pg_stat_statements_reset() of one entry, or eviction and re-creation, between the
    # snapshots: when that happened is unknown, so how many of the 30 calls came after the
    # earlier snapshot is too. No rate for that entry this pass; the next pass rates it.
    before = snap(0.0, {(10, 1, 1, 1): 1000, (10, 1, 2, 1): 50, (10, 1, 5, 1): 4})
    after = snap(10.0, {(10, 1, 1, 1): 30, (10, 1, 2, 1): 0, (10, 1, 5, 1): 14})
    assert calls_since(before, after) == {(10, 1, 5, 1): 10}
    assert rates(before, after, KINDS) == Rates(all=1.0, read=1.0, write=0.0)
    later = snap(20.0, {(10, 1, 1, 1): 70, (10, 1, 2, 1): 0, (10, 1, 5, 1): 14})
    assert calls_since(after, later) == {(10, 1, 1, 1): 40}


def test_top_level_and_nested_entries_of_one_statement_are_rated_apart() -> None:
    # track = all: 3,000 calls at top level, one nested (toplevel 0). Evicting the nested
    # entry must not make the top-level one look reset.
    before = snap(0.0, {(10, 1, 1, 1): 3000, (10, 1, 1, 0): 1})
    after = snap(10.0, {(10, 1, 1, 1): 3000, (10, 1, 2, 1): 7})
    assert calls_since(before, after) == {(10, 1, 2, 1): 7}
    assert rates(before, after, KINDS) == Rates(all=0.7, read=0.0, write=0.7)


def test_no_rate_when_the_login_comes_to_see_hidden_entries() -> None:
    # GRANT pg_read_all_stats between the passes: entries hidden before would all look new.
    before = Snapshot(0.0, {(10, 1, 1, 1): 5}, server=None, hidden=True)
    after = Snapshot(10.0, {(10, 1, 1, 1): 5, (11, 1, 2, 1): 90_000}, server=None)
    assert not_comparable(before, after) == "the login sees entries it could not see before"
    assert rates(before, after, KINDS) is None
    # Entries hidden before and after, or hidden only now (a REVOKE), invent nothing.
    still = Snapshot(10.0, {(10, 1, 1, 1): 8}, hidden=True)
    assert rates(before, still, KINDS) == Rates(all=0.3, read=0.3, write=0.0)
    assert rates(snap(0.0, {(10, 1, 1, 1): 5}), still, KINDS) == Rates(0.3, 0.3, 0.0)


def test_evicted_entries_are_lost_not_negative() -> None:
    before = snap(0.0, {(10, 1, 1, 1): 1000, (10, 1, 2, 1): 500})
    after = snap(5.0, {})
    assert calls_since(before, after) == {}
    assert rates(before, after, KINDS) == Rates(all=0.0, read=0.0, write=0.0)


def test_same_queryid_for_other_user_or_database_is_its_own_entry() -> None:
    before = snap(0.0, {(10, 1, 1, 1): 100})
    after = snap(1.0, {(10, 1, 1, 1): 100, (11, 1, 1, 1): 3, (10, 2, 1, 1): 4})
    assert calls_since(before, after) == {(11, 1, 1, 1): 3, (10, 2, 1, 1): 4}
    assert rates(before, after, KINDS) == Rates(all=7.0, read=7.0, write=0.0)


def test_own_statements_left_out_and_other_kinds_only_in_all() -> None:
    before = snap(0.0, {(10, 1, 3, 1): 0, (10, 1, 4, 1): 0})
    after = snap(4.0, {(10, 1, 3, 1): 8, (10, 1, 4, 1): 400, (10, 1, 99, 1): 4})
    # queryid 99 was never classified: it counts in all, like "other".
    assert rates(before, after, KINDS) == Rates(all=3.0, read=0.0, write=0.0)


def test_never_negative_under_any_mix() -> None:
    before = snap(0.0, {(1, 1, q, 1): 10 * q for q in range(1, 6)})
    after = snap(1.0, {(1, 1, 1, 1): 0, (1, 1, 2, 1): 19, (1, 1, 3, 1): 31, (1, 1, 6, 1): 2})
    measured = rates(before, after, {**KINDS, 6: "write"})
    # 19 < 20: queryid 2 went down and adds nothing; 3 grew by 1; 6 is new.
    assert measured == Rates(all=3.0, read=0.0, write=2.0)
    assert all(delta > 0 for delta in calls_since(before, after).values())


def test_no_elapsed_time_gives_no_rate() -> None:
    before = snap(50.0, {(10, 1, 1, 1): 1})
    assert rates(before, snap(50.0, {(10, 1, 1, 1): 9}), KINDS) is None
    # A wall clock stepped backwards between passes: no rate rather than a negative one.
    assert rates(before, snap(49.0, {(10, 1, 1, 1): 9}), KINDS) is None


def test_fractional_elapsed() -> None:
    before = snap(0.0, {(10, 1, 2, 1): 1})
    after = snap(0.25, {(10, 1, 2, 1): 3})
    assert rates(before, after, KINDS) == Rates(all=8.0, read=0.0, write=8.0)


def test_full_reset_counts_every_entry_from_zero() -> None:
    # After pg_stat_statements_reset() an entry may climb past its old count before the next
    # pass; stats_reset tells that the old counts no longer apply.
    before = Snapshot(0.0, {(10, 1, 1, 1): 40, (10, 1, 2, 1): 7}, reset_at=1000.0)
    after = Snapshot(10.0, {(10, 1, 1, 1): 60, (10, 1, 2, 1): 7}, reset_at=1005.0)
    assert calls_since(before, after) == {(10, 1, 1, 1): 60, (10, 1, 2, 1): 7}
    assert rates(before, after, KINDS) == Rates(all=6.7, read=6.0, write=0.7)


def test_same_reset_time_keeps_per_entry_deltas() -> None:
    before = Snapshot(0.0, {(10, 1, 1, 1): 40}, reset_at=1000.0)
    after = Snapshot(10.0, {(10, 1, 1, 1): 60}, reset_at=1000.0)
    assert calls_since(before, after) == {(10, 1, 1, 1): 20}


# --- snapshots of different servers -------------------------------------------------------

PRIMARY = Server(system_identifier=7714331894179660031, started_at=1000.5, extversion="1.10")


def test_no_rate_across_two_servers() -> None:
    # A failover or a moved endpoint: the other server's counters started elsewhere.
    other = Server(system_identifier=7714331898507301197, started_at=2000.25, extversion="1.10")
    before = Snapshot(0.0, {(10, 1, 1, 1): 40}, reset_at=900.0, server=PRIMARY)
    after = Snapshot(10.0, {(10, 1, 1, 1): 90_000}, reset_at=1500.0, server=other)
    assert not_comparable(before, after) == (
        "the server changed (system identifier 7714331894179660031, started at 1000.500, "
        "pg_stat_statements 1.10 -> system identifier 7714331898507301197, started at "
        "2000.250, pg_stat_statements 1.10)"
    )
    assert rates(before, after, KINDS) is None


def test_no_rate_across_a_promoted_replica() -> None:
    # A promoted replica has its primary's system identifier, not its start time.
    promoted = Server(PRIMARY.system_identifier, started_at=1200.0, extversion="1.10")
    before = Snapshot(0.0, {(10, 1, 1, 1): 40}, server=PRIMARY)
    after = Snapshot(10.0, {(10, 1, 1, 1): 50}, server=promoted)
    assert not_comparable(before, after) == (
        "the server changed (system identifier 7714331894179660031, started at 1000.500, "
        "pg_stat_statements 1.10 -> system identifier 7714331894179660031, started at "
        "1200.000, pg_stat_statements 1.10)"
    )
    assert rates(before, after, KINDS) is None


def test_no_rate_across_an_extension_upgrade() -> None:
    # 1.8 -> 1.9 brings stats_reset: every entry would look reset, its calls all new.
    # Same server and start time: only the extension version tells the snapshots apart.
    old = Server(PRIMARY.system_identifier, PRIMARY.started_at, extversion="1.8")
    upgraded = Server(PRIMARY.system_identifier, PRIMARY.started_at, extversion="1.9")
    before = Snapshot(0.0, {(10, 1, 1, 1): 40}, server=old)
    after = Snapshot(10.0, {(10, 1, 1, 1): 50}, reset_at=500.0, server=upgraded)
    assert not_comparable(before, after) == (
        "the server changed (system identifier 7714331894179660031, started at 1000.500, "
        "pg_stat_statements 1.8 -> system identifier 7714331894179660031, started at "
        "1000.500, pg_stat_statements 1.9)"
    )
    assert rates(before, after, KINDS) is None
    # Had the version been left out of the comparison, the new stats_reset would have made
    # all 50 calls new: 5 reads a second that never happened.
    unversioned = Snapshot(0.0, {(10, 1, 1, 1): 40}, server=upgraded)
    assert rates(unversioned, after, KINDS) == Rates(all=5.0, read=5.0, write=0.0)


def test_no_rate_when_the_reset_time_goes_back() -> None:
    before = Snapshot(0.0, {(10, 1, 1, 1): 40}, reset_at=1500.0, server=PRIMARY)
    after = Snapshot(10.0, {(10, 1, 1, 1): 50}, reset_at=1400.0, server=PRIMARY)
    assert not_comparable(before, after) == "pg_stat_statements_info.stats_reset went back"
    assert rates(before, after, KINDS) is None
    vanished = Snapshot(10.0, {(10, 1, 1, 1): 50}, reset_at=None, server=PRIMARY)
    assert rates(before, vanished, KINDS) is None


def test_same_server_and_a_later_reset_is_rated() -> None:
    before = Snapshot(0.0, {(10, 1, 1, 1): 40}, reset_at=1500.0, server=PRIMARY)
    after = Snapshot(10.0, {(10, 1, 1, 1): 50}, reset_at=1505.0, server=PRIMARY)
    assert not_comparable(before, after) is None
    assert rates(before, after, KINDS) == Rates(all=5.0, read=5.0, write=0.0)


def test_packed_calls_read_what_the_server_packs() -> None:
    """statements.calls_sql's bytea: big-endian int8 (userid, dbid, queryid, toplevel, calls)
    per entry; a negative queryid (a 64-bit hash) stays negative."""
    entries = [
        (10, 1, -7_000_000_000_000_000_001, 1, 3),
        (10, 1, 42, 0, 1),
        (10, 1, 42, 1, 9),
        (16384, 5, 8, 1, 120),
    ]
    packed = b"".join(struct.pack(">5q", *entry) for entry in entries)
    calls = PackedCalls(packed)
    assert dict(calls.items()) == {(u, d, q, t): c for u, d, q, t, c in entries}
    assert (len(calls), calls[(10, 1, 42, 1)], calls.queryids()) == (
        4,
        9,
        {-7_000_000_000_000_000_001, 42, 8},
    )
    assert dict(PackedCalls(None).items()) == {}  # string_agg of no entry is NULL


def test_kinds_keep_a_byte_per_statement_and_forget_what_left() -> None:
    from middleware_monitoring.postgres.qps import Kinds

    kinds = Kinds()
    kinds.add([(30, "write", False), (-5, "read", False), (7, "own", False), (12, "other", True)])
    assert dict(kinds.items()) == {-5: "read", 7: "own", 12: "other", 30: "write"}
    assert kinds.unknown({-5, 8, 30, 99}) == {8, 99}
    assert kinds.excluded_from_top() == {7, 12}
    kinds.add([(8, "read", False)])
    kinds.keep({8, 30, 12})
    assert dict(kinds.items()) == {8: "read", 12: "other", 30: "write"}
    assert kinds.excluded_from_top() == {12}
    assert kinds.get(-5, "other") == "other"


def test_kinds_taken_packed_as_the_server_classifies() -> None:
    """statements.CLASSIFY_SQL's row: big-endian int8 queryids in ascending order, and a
    code byte each (kind 0 other, 1 read, 2 write, 3 own; plus 4 when out of the top N)."""
    from middleware_monitoring.postgres.qps import Kinds

    def ids(*queryids: int) -> bytes:
        return b"".join(struct.pack(">q", q) for q in queryids)

    kinds = Kinds()
    kinds.add_packed(ids(-5, 7, 12, 30), bytes([1, 3, 4, 2]))
    assert dict(kinds.items()) == {-5: "read", 7: "own", 12: "other", 30: "write"}
    assert kinds.excluded_from_top() == {7, 12}
    # Newcomers merge into what is known; a queryid classified again takes its new code.
    kinds.add_packed(ids(8, 30), bytes([1 | 4, 1]))
    assert dict(kinds.items()) == {-5: "read", 7: "own", 8: "read", 12: "other", 30: "read"}
    assert kinds.excluded_from_top() == {7, 8, 12}
    kinds.add_packed(None, None)  # string_agg of no statement is NULL
    assert len(kinds) == 5
    with pytest.raises(ValueError, match="2 queryids with 1 kinds"):
        kinds.add_packed(ids(1, 2), bytes([1]))


def test_queryids_go_to_the_server_as_the_text_of_an_array() -> None:
    from middleware_monitoring.postgres.statements import bigint_array

    assert bigint_array([-9_000_000_000_000_000_000, 0, 42]) == "{-9000000000000000000,0,42}"
    assert bigint_array([]) == "{}"


def packed(calls: dict[tuple[int, int, int, int], int]) -> PackedCalls:
    """As statements.calls_sql sends them: big-endian int8 quintuples in key order."""
    return PackedCalls(b"".join(struct.pack(">5q", *key, n) for key, n in sorted(calls.items())))


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            {(10, 1, 1, 1): 5, (10, 1, 2, 1): 7, (11, 2, -3, 1): 9},
            {(10, 1, 1, 1): 25, (10, 1, 2, 1): 7, (11, 2, -3, 1): 10},
            {(10, 1, 1, 1): 20, (11, 2, -3, 1): 1},
        ),
        ({(10, 1, 1, 1): 1000, (10, 1, 2, 1): 50}, {(10, 1, 1, 1): 30, (10, 1, 2, 1): 0}, {}),
        (
            {(10, 1, 1, 1): 3000, (10, 1, 1, 0): 1, (10, 1, 2, 1): 4},
            {(10, 1, 1, 1): 3000, (10, 1, 1, 0): 0, (10, 1, 2, 1): 6},
            {(10, 1, 2, 1): 2},
        ),
        ({(10, 1, 1, 1): 5, (10, 1, 2, 1): 7}, {(10, 1, 1, 1): 5, (10, 1, 2, 1): 7}, {}),
        (
            {(10, 1, 1, 1): 5, (10, 1, 2, 1): 7},
            {(10, 1, 1, 1): 6, (10, 1, 3, 1): 4},
            {(10, 1, 1, 1): 1, (10, 1, 3, 1): 4},
        ),
        (
            {(10, 1, 1, 1): 5, (10, 1, 2, 1): 7},
            {(10, 1, 1, 1): 5, (10, 2, 2, 1): 7},
            {(10, 2, 2, 1): 7},
        ),
        ({(10, 1, 1, 1): 5}, {(10, 1, 1, 1): 5, (10, 1, 2, 1): 1}, {(10, 1, 2, 1): 1}),
    ],
    ids=[
        "counts-moved",
        "went-down",
        "nested-went-down",
        "nothing-moved",
        "evicted-and-new",
        "other-entry",
        "one-more",
    ],
)
def test_packed_snapshots_count_as_mappings_do(
    before: dict[tuple[int, int, int, int], int],
    after: dict[tuple[int, int, int, int], int],
    expected: dict[tuple[int, int, int, int], int],
) -> None:
    """Between two passes with the same entries only changed counts are looked at; with
    other entries every one is. Both give what the mapping snapshots give."""
    assert calls_since(snap(0.0, before), snap(1.0, after)) == expected
    assert calls_since(Snapshot(0.0, packed(before)), Snapshot(1.0, packed(after))) == expected


def test_packed_snapshots_after_a_full_reset_count_every_entry_from_zero() -> None:
    before = Snapshot(0.0, packed({(10, 1, 1, 1): 40, (10, 1, 2, 1): 7}), reset_at=1000.0)
    after = Snapshot(10.0, packed({(10, 1, 1, 1): 60, (10, 1, 2, 1): 7}), reset_at=1005.0)
    assert calls_since(before, after) == {(10, 1, 1, 1): 60, (10, 1, 2, 1): 7}


def test_unknown_queryids_of_a_few_and_of_many() -> None:
    """A few queryids (the top N's) are looked up one by one, many are compared at once:
    the same answer either way."""
    kinds = Kinds()
    kinds.add((q, "read", False) for q in range(0, 200, 2))
    assert kinds.unknown({4, 5, -7}) == {5, -7}
    many = set(range(-10, 210))
    assert kinds.unknown(many) == many - set(range(0, 200, 2))


def test_packed_calls_from_keys_and_calls_apart() -> None:
    """statements.calls_sql sends the keys (four big-endian int8 an entry) apart from the
    calls, and the keys only when they changed: the same entries as one quintuple bytea."""
    entries = {(10, 1, -5, 1): 3, (10, 1, 7, 0): 4, (11, 2, 7, 1): 2**40}
    ordered = sorted(entries.items())
    keys = b"".join(struct.pack(">4q", *key) for key, _ in ordered)
    calls = b"".join(struct.pack(">q", n) for _, n in ordered)
    made = PackedCalls.from_columns(keys, calls, "d1")
    whole = PackedCalls(b"".join(struct.pack(">5q", *key, n) for key, n in ordered))
    assert dict(made.items()) == dict(whole.items()) == entries
    assert made.digest == "d1" and made.same_queryids(whole)
    later = made.with_calls(b"".join(struct.pack(">q", n + 1) for _, n in ordered))
    assert dict(later.items()) == {key: n + 1 for key, n in entries.items()}
    assert later.digest == "d1"
    assert dict(made.items()) == entries  # left as it was
    assert dict(PackedCalls.from_columns(None, None, None).items()) == {}
    with pytest.raises(ValueError, match="8 key values with 3 calls"):
        PackedCalls.from_columns(keys[:64], calls, "d2")
    with pytest.raises(ValueError, match="2 calls for 3 entries"):
        made.with_calls(calls[:16])
