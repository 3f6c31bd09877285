"""Time of a warm pass of the PostgreSQL source over a server whose pg_stat_statements holds
thousands of distinct statements (the older exporter slept 1 s in every pass).

    .venv/bin/python -m bench.pg_warm_pass [--version 17] [--statements 5000] [--passes 10]

Starts its own throwaway PostgreSQL (tests/standins), fills pg_stat_statements with distinct
statements (each selects a different column of a different table, so each has its own
queryid), runs one cold pass, then the warm passes, and prints the figures. Not a test: the
numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

from middleware_monitoring.config import load_settings
from middleware_monitoring.postgres.source import PostgresSource
from tests.standins.postgres import PostgresServer

COLUMNS_PER_TABLE = 1000  # PostgreSQL allows 1600 columns per table


def long_select(t: int, c: int, chars: int) -> str:
    """A distinct statement whose stored text is about ``chars`` long: a select list of
    aliased columns (aliases are kept in the text, they do not change the queryid)."""
    items: list[str] = []
    size = 0
    k = 0
    while size < chars:
        item = f"c{k % COLUMNS_PER_TABLE} AS long_column_alias_{k:05d}"
        items.append(item)
        size += len(item) + 2
        k += 1
    return f"SELECT c{c}, {', '.join(items)} FROM bench_t{t} WHERE c{c} > 0"


def fill(
    server: PostgresServer, statements: int, *, long_every: int = 0, long_chars: int = 10_000
) -> int:
    """Run ``statements`` distinct statements; returns the entries pg_stat_statements holds.
    With ``long_every`` = k, every k-th statement has a text of ``long_chars`` characters."""
    conn = server.connect()
    try:
        conn.run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        tables = -(-statements // COLUMNS_PER_TABLE)
        for t in range(tables):
            columns = ", ".join(f"c{c} int" for c in range(COLUMNS_PER_TABLE))
            conn.run(f"CREATE TABLE IF NOT EXISTS bench_t{t} ({columns})")
        conn.run("SELECT pg_stat_statements_reset()")
        for n in range(statements):
            t, c = divmod(n, COLUMNS_PER_TABLE)
            if long_every and n % long_every == 0:
                conn.run(long_select(t, c, long_chars))
            else:
                conn.run(f"SELECT c{c} FROM bench_t{t} WHERE c{c} > 0")
        return int(conn.run("SELECT count(*) FROM pg_stat_statements")[0][0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", type=int, default=17, choices=(15, 17, 18))
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args()

    server = PostgresServer(
        args.version, settings={"pg_stat_statements.max": max(10000, 2 * args.statements)}
    )
    with server:
        started = time.perf_counter()
        entries = fill(server, args.statements)
        print(
            f"PostgreSQL {args.version}: pg_stat_statements holds {entries} entries "
            f"(filled in {time.perf_counter() - started:.1f} s)"
        )
        settings = load_settings({**server.collector_env(), "PG_QPS_SAMPLE_SECONDS": "0"})
        assert settings.postgres is not None
        source = PostgresSource(settings.postgres)
        try:
            started = time.perf_counter()
            families = list(source.collect())
            cold = time.perf_counter() - started
            warm: list[float] = []
            for _ in range(args.passes):
                started = time.perf_counter()
                families = list(source.collect())
                warm.append(time.perf_counter() - started)
        finally:
            source.close()
        series = sum(len(family.samples) for family in families)
        print(f"cold pass (connect, classify every entry, no QPS window): {cold * 1000:.0f} ms")
        print(
            f"warm pass over {args.passes} passes: median {statistics.median(warm) * 1000:.1f} ms, "
            f"min {min(warm) * 1000:.1f} ms, max {max(warm) * 1000:.1f} ms ({series} series)"
        )


if __name__ == "__main__":
    main()
