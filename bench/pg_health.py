"""What the SPEC 11 health collectors cost a warm PostgreSQL pass, and how far the whole warm
pass is from its floor, on a server whose pg_stat_statements holds thousands of entries.

    .venv/bin/python -m bench.pg_health [--quick]

- warm pass: the PostgreSQL source's collect() on a warm function instance, with the default
  PG_COLLECTORS (every group) and with PG_COLLECTORS=none (none of them, no statement
  details); the additions are the median of the differences of passes run one after the
  other (a pair sees the same load), and the health statement's own time in the floor;
- floor: the very statements (and parameters) of one recorded warm pass with every group,
  run back to back over one plain pg8000 connection, rows fetched and dropped: what the
  pass cannot be faster than without changing its SQL.

Starts its own PostgreSQL 17 (tests/standins) and fills pg_stat_statements the way
bench/pg_warm_pass.py does. Passes of the two configurations and the floor alternate, so
a machine busy with something else slows all three alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from bench.pg_warm_pass import fill
from bench.section import Goal, Section, Table, quantity
from middleware_monitoring.config import PostgresSettings, load_settings
from middleware_monitoring.postgres.connection import ALIVE_SQL, PgConnection
from middleware_monitoring.postgres.source import PostgresSource
from tests.standins.postgres import PostgresServer

PG_VERSION = 17


class RecordingConnection(PgConnection):
    """A PgConnection that keeps the statements of a pass while ``recording`` is set."""

    recording = False

    def __init__(self, settings: PostgresSettings) -> None:
        super().__init__(settings)
        self.statements: list[tuple[str, dict[str, Any]]] = []

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        if self.recording:
            self.statements.append((sql, params))
        return super().run(sql, **params)

    def ensure_alive(self) -> None:
        # A kept connection runs the liveness statement on the driver directly.
        if self.recording and self.is_open:
            self.statements.append((ALIVE_SQL, {}))
        super().ensure_alive()


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _collect(source: PostgresSource) -> Callable[[], object]:
    return lambda: list(source.collect())


def measure(quick: bool) -> dict[str, Any]:
    statements, passes = (200, 5) if quick else (5000, 100)
    server = PostgresServer(PG_VERSION, settings={"pg_stat_statements.max": 2 * statements + 1000})
    with server:
        entries = fill(server, statements)
        loaded = load_settings({**server.collector_env(), "PG_QPS_SAMPLE_SECONDS": "0"}).postgres
        assert loaded is not None
        full_db = RecordingConnection(loaded)
        full = PostgresSource(loaded, full_db)
        bare = PostgresSource(replace(loaded, collectors=frozenset()))
        floor_conn = server.connect()
        try:
            for source in (full, bare):  # cold passes: classification of every entry
                for _ in range(2):
                    list(source.collect())
            full_db.recording = True
            series = sum(len(family.samples) for family in full.collect())
            full_db.recording = False
            recorded = list(full_db.statements)
            bare_series = sum(len(family.samples) for family in bare.collect())

            health_sql = [sql for sql, _ in recorded if "sessions AS (" in sql]
            health_times: list[float] = []

            def floor() -> None:
                for sql, params in recorded:
                    started = time.perf_counter()
                    floor_conn.run(sql, **params)
                    if sql in health_sql:
                        health_times.append(time.perf_counter() - started)

            timings: dict[str, list[float]] = {"full": [], "bare": [], "floor": []}
            for _ in range(passes):
                timings["full"].append(_timed(_collect(full)))
                timings["bare"].append(_timed(_collect(bare)))
                timings["floor"].append(_timed(floor))
        finally:
            floor_conn.close()
            full.close()
            bare.close()
    median_ms = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    paired = [f - b for f, b in zip(timings["full"], timings["bare"], strict=True)]
    return {
        "postgres_version": PG_VERSION,
        "pg_stat_statements_entries": entries,
        "passes": passes,
        "warm_pass_ms": round(median_ms["full"], 2),
        "warm_pass_without_health_ms": round(median_ms["bare"], 2),
        "health_additions_ms": round(statistics.median(paired) * 1000, 2),
        "health_statement_floor_ms": round(statistics.median(health_times) * 1000, 2),
        "floor_ms": round(median_ms["floor"], 2),
        "warm_pass_over_floor": round(median_ms["full"] / median_ms["floor"], 2),
        "statements_per_warm_pass": len(recorded),
        "series_per_warm_pass": series,
        "series_per_warm_pass_without_health": bare_series,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 statements, 5 passes")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick), indent=2))


if __name__ == "__main__":
    main()


# --- the report section (bench/section.py) -----------------------------------------------------

# The warm pass against the same statements without the product (as bench/pg_databases.py).
GOAL_OVER_FLOOR = 1.5


def section(figures: Mapping[str, Any]) -> Section:
    """What the health collectors add to a warm PostgreSQL pass, against its floor."""
    entries = figures["pg_stat_statements_entries"]
    return Section(
        question="What do the PostgreSQL health collectors add to a warm pass, and how far "
        "is the pass from its floor?",
        method=(
            f"One PostgreSQL {figures['postgres_version']} target whose pg_stat_statements "
            f"holds {entries:,} entries; {figures['passes']} warm passes of the source's "
            "collect() with every collector group (the default) and with PG_COLLECTORS=none, "
            "alternating with the floor: the statements of one recorded warm pass run back to "
            "back over one plain pg8000 connection. Medians."
        ),
        command=".venv/bin/python -m bench.pg_health",
        table=Table(
            ("pass", "warm pass (ms)", "statements", "series"),
            [
                (
                    "every collector group (default)",
                    figures["warm_pass_ms"],
                    figures["statements_per_warm_pass"],
                    figures["series_per_warm_pass"],
                ),
                (
                    "PG_COLLECTORS=none",
                    figures["warm_pass_without_health_ms"],
                    None,
                    figures["series_per_warm_pass_without_health"],
                ),
                (
                    "floor: the default pass's statements, replayed",
                    figures["floor_ms"],
                    figures["statements_per_warm_pass"],
                    None,
                ),
            ],
        ),
        goals=[
            Goal(
                "warm pass with every group, against its floor",
                figures["warm_pass_over_floor"],
                GOAL_OVER_FLOOR,
                "x",
            )
        ],
        notes=[
            f"The health groups add {quantity(figures['health_additions_ms'], 'ms')} a pass "
            "(median of paired passes), of which the health statement itself takes "
            f"{quantity(figures['health_statement_floor_ms'], 'ms')} at its floor."
        ],
    )
