"""pg_stat_statements SQL, chosen by the installed extension's version (not the server's:
RDS keeps 1.10 after an upgrade to 17 until someone runs ALTER EXTENSION ... UPDATE)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

# Every statement the collector runs starts with this unused common table expression, which
# is how the collector's own statements are kept out of QPS and the top N. Not a comment or
# an alias: the queryid ignores those, so another client running the same text would share
# the collector's queryid and its calls would be dropped with the collector's. A CTE's name is
# part of what PostgreSQL hashes (12 to 18), and an unreferenced CTE of a SELECT is never
# planned or run. Statements with CTEs of their own continue the list: f"{MARKER}, x AS ...".
MARKER: Final = "WITH middleware_monitoring AS (SELECT)"


@dataclass(frozen=True)
class Columns:
    """Column expressions of one extension version, aggregated per (userid, dbid, queryid):
    from 1.9 a statement may have two entries (toplevel true/false)."""

    total_time: str
    min_time: str
    max_time: str
    blk_read_time: str
    blk_write_time: str
    # 1.8 added WAL and planning statistics; before it they do not exist (NULL).
    wal_bytes: str = "NULL::numeric"
    plan_time: str = "NULL::float8"


_PRE_1_8 = Columns(
    "sum(s.total_time)",
    "min(s.min_time)",
    "max(s.max_time)",
    "sum(s.blk_read_time)",
    "sum(s.blk_write_time)",
)
_FROM_1_8 = Columns(
    "sum(s.total_exec_time)",
    "min(s.min_exec_time)",
    "max(s.max_exec_time)",
    "sum(s.blk_read_time)",
    "sum(s.blk_write_time)",
    "sum(s.wal_bytes)",
    "sum(s.total_plan_time)",
)
# 1.11 split blk_*_time into shared_ and local_; their sum is what blk_*_time measured.
_FROM_1_11 = Columns(
    "sum(s.total_exec_time)",
    "min(s.min_exec_time)",
    "max(s.max_exec_time)",
    "sum(s.shared_blk_read_time + s.local_blk_read_time)",
    "sum(s.shared_blk_write_time + s.local_blk_write_time)",
    "sum(s.wal_bytes)",
    "sum(s.total_plan_time)",
)


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def columns_for(extversion: str) -> Columns:
    version = parse_version(extversion)
    if version >= (1, 11):
        return _FROM_1_11
    if version >= (1, 8):
        return _FROM_1_8
    return _PRE_1_8


EXTENSION_VERSION_SQL: Final = (
    f"{MARKER} SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'"
)


# Calls of every entry, without query text (reading texts of thousands of entries is what
# made other exporters' scrapes take tens of seconds), as big-endian int8 in key order, the
# keys (userid, dbid, queryid, toplevel) apart from the calls (calls_sql): a server holds up to
# pg_stat_statements.max (5,000 by default) entries, and decoding them as rows costs the
# client ~50 ms of CPU and a Python object per value; as one value it is an array read at C
# speed and kept in 40 bytes an entry (qps.PackedCalls).
# One quintuple per entry, never a sum of entries: pg_stat_statements keys an entry by
# (userid, dbid, queryid, toplevel) (toplevel from 1.9; before it, one entry per queryid) and
# evicts or resets each on its own, so a sum of several drops when one member goes and a rate
# would read the drop as a reset of all. Entries whose queryid is hidden from the login (no
# pg_read_all_stats: other users' entries come with queryid NULL) cannot be told apart, so
# they are left out; the second column says whether there were any.
def calls_sql(extversion: str) -> str:
    """The calls as two byteas in key order, the keys (userid, dbid, queryid, toplevel: 32
    bytes an entry) and the calls (8), with the keys' md5: ``:known`` is the md5 of the keys
    the collector holds, and when they are the same (most warm passes: no entry came or
    went) the keys are not sent again (NULL), only the calls: a fifth of the bytes that
    cross the wire, TLS and pg8000's hex decoding, for 5,000 entries 80 KB of hex instead of
    400 KB, in every pass of every target. Columns: md5 of the keys, the keys or NULL, the
    calls, whether some entries were hidden."""
    toplevel = "s.toplevel::int4::int8" if has_toplevel(extversion) else "1::int8"
    order = f"ORDER BY s.userid, s.dbid, s.queryid, {toplevel}"
    return (
        f"{MARKER}, packed AS (SELECT string_agg(int8send(s.userid::int8)"
        f" || int8send(s.dbid::int8) || int8send(s.queryid) || int8send({toplevel}), ''::bytea"
        f" {order}) FILTER (WHERE s.queryid IS NOT NULL) AS keys,"
        f" string_agg(int8send(s.calls), ''::bytea {order}) FILTER (WHERE s.queryid IS NOT NULL)"
        " AS calls, coalesce(bool_or(s.queryid IS NULL), false) AS hidden"
        " FROM pg_stat_statements(false) s)"
        " SELECT md5(keys), CASE WHEN md5(keys) = CAST(:known AS text) THEN NULL ELSE keys END,"
        " calls, hidden FROM packed"
    )


def has_toplevel(extversion: str) -> bool:
    """From 1.9 a statement run at top level and nested (track = all) has two entries."""
    return parse_version(extversion) >= (1, 9)


def has_stats_reset(extversion: str) -> bool:
    return parse_version(extversion) >= (1, 9)


def snapshot_header_sql(extversion: str, *, control_readable: bool) -> str:
    """Which server and which counters a snapshot's calls belong to, read with them (a
    reconnect may reach another server): the cluster's system identifier and the
    postmaster's start time (a promoted replica has its primary's identifier, not its start
    time), the extension version (an upgrade changes how counters are kept), and when
    pg_stat_statements_reset() last emptied everything (1.9+; a later value means every entry
    started again from zero). Where pg_control_system() is not granted, NULL."""
    system_identifier = (
        "(SELECT system_identifier FROM pg_control_system())"
        if control_readable
        else "NULL::bigint"
    )
    stats_reset = (
        "(SELECT extract(epoch FROM stats_reset)::float8 FROM pg_stat_statements_info)"
        if has_stats_reset(extversion)
        else "NULL::float8"
    )
    return (
        f"{MARKER} SELECT {system_identifier}, "
        "extract(epoch FROM pg_postmaster_start_time())::float8, "
        "(SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'), "
        f"{stats_reset}"
    )


# Statement kind, computed on the server so only a byte per statement crosses the wire, and
# whether the statement stays out of the top N (trivial utility statements, and statements
# whose text may hold a password): qps.Kinds' code, kind (0 other, 1 read, 2 write, 3 own)
# plus 4 when it stays out. Packed like calls_sql: one row of two byteas in queryid order,
# big-endian int8 queryids and a code byte each; a cold target classifies thousands of
# statements, and a row each cost the collector about 60 ms of CPU for 5,000 (pg8000 makes
# Python objects of every row and of every element of a bigint[] parameter: the queryids
# are sent as the text of an array, see bigint_array).
# Leading comments, blanks and parentheses are stripped; normalised texts have no literals,
# so a DML word inside a WITH is a data-modifying CTE. Row-locking clauses (FOR UPDATE,
# FOR NO KEY UPDATE) are removed first: WITH ... SELECT ... FOR UPDATE is a read that locks
# rows, like SELECT ... FOR UPDATE, not a write.
_BODY = r"lower(regexp_replace(s.query, '^(\s|/\*([^*]|\*+[^*/])*\*+/|--[^\n]*(\n|$)|\()*', ''))"
_UNLOCKED = r"regexp_replace(body, '\mfor\s+(no\s+key\s+)?update\M', '', 'g')"
CLASSIFY_SQL: Final = f"""{MARKER} SELECT
  string_agg(int8send(queryid), ''::bytea ORDER BY queryid),
  string_agg(set_byte('\\x00'::bytea, 0, code), ''::bytea ORDER BY queryid)
FROM (
SELECT queryid,
  CASE
    WHEN own THEN 3
    WHEN body ~ '^(insert|update|delete|merge|truncate)\\M' THEN 2
    WHEN body ~ '^copy\\M' AND body !~ '^copy\\s*\\(' AND body ~ '\\mfrom\\M' THEN 2
    WHEN body ~ '^with\\M' AND {_UNLOCKED} ~ '\\m(insert|update|delete|merge)\\M' THEN 2
    WHEN body ~ '^(select|with|values|table|show|fetch|explain|copy)\\M' THEN 1
    ELSE 0
  END
  + CASE WHEN
  body ~ '^(begin|commit|rollback|start|end|abort|savepoint|release|set|reset|show|discard)\\M'
    OR body ~ '^(deallocate|listen|unlisten|notify|prepare\\s+transaction)\\M'
    -- Role, server and subscription statements keep passwords (a PASSWORD clause, OPTIONS,
    -- a CONNECTION string) in their text, which is not normalised.
    OR body ~ '^(create|alter)\\s+(role|user|group|server|subscription)\\M'
  THEN 4 ELSE 0 END AS code
FROM (
  SELECT DISTINCT ON (s.queryid) s.queryid, {_BODY} AS body,
         starts_with(s.query, '{MARKER}') AS own
  FROM pg_stat_statements(true) s
  WHERE s.queryid = ANY(CAST(:queryids AS bigint[]))
) AS classified
) AS coded"""


def bigint_array(values: Iterable[int]) -> str:
    """A bigint[] parameter as the text of an array literal: pg8000 converts a list element
    by element in Python, a cost that grows with the thousands of queryids a cold target
    classifies; the server casts the text (CAST(:p AS bigint[]))."""
    return "{" + ",".join(map(str, values)) + "}"


TEXT_SQL: Final = (
    f"{MARKER} SELECT DISTINCT ON (s.queryid) s.queryid, "
    r"left(btrim(regexp_replace(s.query, '\s+', ' ', 'g')), :max_length) "
    "FROM pg_stat_statements(true) s WHERE s.queryid = ANY(CAST(:queryids AS bigint[]))"
)


def top_sql(extversion: str) -> str:
    """The N entries with the most total execution time, excluding the given queryids
    (the collector's own and trivial utility statements), with database and user names.
    Ranked on the total alone first, then only the N winners' columns are summed and named:
    summing fourteen columns (numeric sums among them) of every entry was most of the
    statement's server time (28 ms against 12 ms for 5,000 entries, PostgreSQL 17, this
    project's machine). The view is read once, not once per step (a CTE used twice is
    materialised): a quarter less again (21.7 against 16.8 ms, the two run alternately).
    Ties are broken by key, so the same entries win every pass. The answer is one row, the
    entries as one JSON array of arrays (queryid, database, user, then the values, in the
    order the rows had): a row each cost pg8000 a Python decode per column of each of N + 16
    rows, in every warm pass."""
    c = columns_for(extversion)
    return f"""{MARKER}, entries AS (
  SELECT * FROM pg_stat_statements(false) s
  WHERE s.queryid IS NOT NULL AND NOT (s.queryid = ANY(CAST(:excluded AS bigint[])))),
ranked AS (
  SELECT s.queryid, s.dbid, s.userid
  FROM entries s
  GROUP BY 1, 2, 3
  ORDER BY {c.total_time} DESC, 1, 2, 3
  LIMIT :limit),
top AS (
  SELECT s.queryid, s.dbid, s.userid, json_build_array(s.queryid, d.datname, r.rolname,
    sum(s.calls)::bigint, {c.total_time}, {c.min_time}, {c.max_time}, sum(s.rows)::bigint,
    {c.blk_read_time}, {c.blk_write_time},
    sum(s.shared_blks_hit)::bigint, sum(s.shared_blks_read)::bigint,
    sum(s.temp_blks_written)::bigint, {c.wal_bytes}::float8, {c.plan_time}) AS entry,
    {c.total_time} AS total
  FROM entries s
  JOIN ranked USING (queryid, dbid, userid)
  LEFT JOIN pg_database d ON d.oid = s.dbid
  LEFT JOIN pg_roles r ON r.oid = s.userid
  GROUP BY s.queryid, s.dbid, s.userid, d.datname, r.rolname)
SELECT coalesce(json_agg(entry ORDER BY total DESC, queryid, dbid, userid), '[]')
FROM top"""
