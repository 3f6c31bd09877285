"""bench/pg_health.py on a minimal size, so it cannot rot between benchmark runs. No timing
is asserted (speed is what the bench reports); what the run counted is."""

from __future__ import annotations

import pytest

from bench.pg_health import GOAL_OVER_FLOOR, measure, section

pytestmark = pytest.mark.bench


def test_measure_quick() -> None:
    figures = measure(quick=True)
    assert figures["pg_stat_statements_entries"] >= 200
    assert figures["passes"] == 5
    # A warm pass: liveness, activity with users and sizes (one statement), health, snapshot
    # header (which confirms the extension's version), calls, top N, the database's own
    # (tables, indexes, vacuums): seven statements, no classification or text left to fetch.
    assert figures["statements_per_warm_pass"] == 7
    # Every group adds series: the statement details alone are 5 per statement.
    assert figures["series_per_warm_pass"] > figures["series_per_warm_pass_without_health"]
    for name in (
        "warm_pass_ms",
        "warm_pass_without_health_ms",
        "floor_ms",
        "health_statement_floor_ms",
    ):
        assert figures[name] > 0
    assert set(figures) == {
        "postgres_version",
        "pg_stat_statements_entries",
        "passes",
        "warm_pass_ms",
        "warm_pass_without_health_ms",
        "health_additions_ms",
        "health_statement_floor_ms",
        "floor_ms",
        "warm_pass_over_floor",
        "statements_per_warm_pass",
        "series_per_warm_pass",
        "series_per_warm_pass_without_health",
    }
    made = section(figures)
    assert [row[0] for row in made.table.rows] == [
        "every collector group (default)",
        "PG_COLLECTORS=none",
        "floor: the default pass's statements, replayed",
    ]
    assert [(g.measured, g.limit, g.unit) for g in made.goals] == [
        (figures["warm_pass_over_floor"], GOAL_OVER_FLOOR, "x")
    ]
