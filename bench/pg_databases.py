"""A warm PostgreSQL pass over every database of a server (PG_DATABASES=all) against its
floor: the very statements of one recorded warm pass, each on its database's own open
pg8000 connection, back to back, rows fetched and dropped.

    .venv/bin/python -m bench.pg_databases [--quick]

Starts its own PostgreSQL 17 (tests/standins) with 50 databases of 100 tables each (quick:
3 of 5), every table with an index. PG_DATABASE_CONNECTIONS covers them all, so the warm
pass, like the floor, runs over open connections. Goal: the warm pass within 1.5x its floor.
Passes and floors alternate, so a machine busy with something else slows both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Mapping
from typing import Any

from bench.section import Goal, Section, Table
from middleware_monitoring.config import PostgresSettings, load_settings
from middleware_monitoring.postgres.connection import ALIVE_SQL, PgConnection
from middleware_monitoring.postgres.source import PostgresSource
from tests.standins.postgres import PostgresServer

PG_VERSION = 17
GOAL = 1.5


class Recording(PgConnection):
    """Keeps (database, statement, parameters) of every connection of the source while
    ``on[0]`` is set; the connections to other databases record into the same list."""

    def __init__(
        self,
        settings: PostgresSettings,
        log: list[tuple[str, str, dict[str, Any]]],
        on: list[bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, **kwargs)
        self.log, self.on = log, on

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        if self.on[0]:
            self.log.append((self._settings.database, sql, params))
        return super().run(sql, **params)

    def ensure_alive(self) -> None:
        if self.on[0] and self.is_open:
            self.log.append((self._settings.database, ALIVE_SQL, {}))
        super().ensure_alive()

    def for_database(self, database: str) -> PgConnection:
        plain = super().for_database(database)
        return Recording(plain._settings, self.log, self.on, login=plain._login)


def make_databases(server: PostgresServer, databases: int, tables: int) -> list[str]:
    names = [f"bench_db_{d:03d}" for d in range(databases)]
    for name in names:
        server.create_database(name)
        conn = server.connect(database=name)
        try:
            for t in range(tables):
                conn.run(f"CREATE TABLE IF NOT EXISTS t{t} (id int PRIMARY KEY, v text)")
                conn.run(f"INSERT INTO t{t} VALUES (1, 'x') ON CONFLICT DO NOTHING")
            conn.run("ANALYZE")
        finally:
            conn.close()
    return names


def measure(quick: bool) -> dict[str, Any]:
    databases, tables, passes = (3, 5, 5) if quick else (50, 100, 20)
    # The source keeps a connection per database open, and so does the floor.
    with PostgresServer(PG_VERSION, settings={"max_connections": 2 * databases + 20}) as server:
        server.create_extension()
        names = make_databases(server, databases, tables)
        loaded = load_settings(
            {
                **server.collector_env(),
                "PG_QPS_SAMPLE_SECONDS": "0",
                "PG_DATABASES": "all",
                "PG_DATABASE_CONNECTIONS": str(databases + 2),
            }
        ).postgres
        assert loaded is not None
        log: list[tuple[str, str, dict[str, Any]]] = []
        on = [False]
        source = PostgresSource(loaded, Recording(loaded, log, on))
        floor_connections: dict[str, Any] = {}
        try:
            for _ in range(2):  # cold: classification, connections to every database
                list(source.collect())
            on[0] = True
            families = list(source.collect())
            on[0] = False
            recorded = list(log)
            series = sum(len(family.samples) for family in families)
            read = {
                s.labels["database_name"]
                for f in families
                if f.name == "pg_table_live_tuples"
                for s in f.samples
            }
            for database in {database for database, _, _ in recorded}:
                floor_connections[database] = server.connect(database=database)

            def floor() -> None:
                for database, sql, params in recorded:
                    floor_connections[database].run(sql, **params)

            warm: list[float] = []
            floors: list[float] = []
            for _ in range(passes):
                started = time.perf_counter()
                list(source.collect())
                warm.append(time.perf_counter() - started)
                started = time.perf_counter()
                floor()
                floors.append(time.perf_counter() - started)
        finally:
            source.close()
            for conn in floor_connections.values():
                conn.close()
    warm_ms = statistics.median(warm) * 1000
    floor_ms = statistics.median(floors) * 1000
    return {
        "postgres_version": PG_VERSION,
        "databases": databases,
        "tables_per_database": tables,
        "databases_read": len(read & set(names)),
        "passes": passes,
        "statements_per_warm_pass": len(recorded),
        "series_per_warm_pass": series,
        "warm_pass_ms": round(warm_ms, 2),
        "floor_ms": round(floor_ms, 2),
        "warm_pass_over_floor": round(warm_ms / floor_ms, 2),
        "goal_over_floor": GOAL,
    }


def section(figures: Mapping[str, Any]) -> Section:
    """The report's section (bench/section.py), from the stored figures only."""
    databases = figures["databases"]
    tables = figures["tables_per_database"]
    return Section(
        question=(
            f"How long does a warm pass take over every database of a server "
            f"({databases} databases of {tables} tables)?"
        ),
        method=(
            f"A PostgreSQL {figures['postgres_version']} with {databases} databases of "
            f"{tables} tables each (every table with an index), read by one target with "
            "PG_DATABASES=all and PG_DATABASE_CONNECTIONS covering them all. The warm pass "
            "(the source's collect()) against its floor: the very statements of one recorded "
            "warm pass, each run on its database's own open pg8000 connection, back to back. "
            f"Median of {figures['passes']} passes, alternating with the floor."
        ),
        command=".venv/bin/python -m bench.pg_databases",
        table=Table(
            ("scenario", "time (ms)", "statements", "series", "databases read"),
            [
                (
                    "warm pass, PG_DATABASES=all",
                    figures["warm_pass_ms"],
                    figures["statements_per_warm_pass"],
                    figures["series_per_warm_pass"],
                    figures["databases_read"],
                ),
                (
                    "the same statements run directly (floor)",
                    figures["floor_ms"],
                    figures["statements_per_warm_pass"],
                    None,
                    figures["databases_read"],
                ),
            ],
        ),
        goals=[
            Goal(
                "warm pass over every database, over the floor of its statements",
                figures["warm_pass_over_floor"],
                figures["goal_over_floor"],
                "x",
            )
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 databases of 5 tables, 5 passes")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick), indent=2))


if __name__ == "__main__":
    main()
