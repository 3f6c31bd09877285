"""bench/pg_databases.py on its quick size, so it cannot rot between benchmark runs. No
timing is asserted (speed is what the bench reports); what the run counted is."""

from __future__ import annotations

import pytest

from bench.pg_databases import GOAL, measure, section

pytestmark = pytest.mark.bench


def test_measure_quick() -> None:
    figures = measure(quick=True)
    assert figures["databases_read"] == 3
    assert figures["passes"] == 5
    # The six server-wide statements of a warm pass once, the list of databases, then one
    # statement per database read (its tables, indexes and vacuums): postgres and the three.
    assert figures["statements_per_warm_pass"] == 6 + 1 + 4
    assert figures["warm_pass_ms"] > 0 and figures["floor_ms"] > 0
    assert set(figures) == {
        "postgres_version",
        "databases",
        "tables_per_database",
        "databases_read",
        "passes",
        "statements_per_warm_pass",
        "series_per_warm_pass",
        "warm_pass_ms",
        "floor_ms",
        "warm_pass_over_floor",
        "goal_over_floor",
    }
    made = section(figures)
    assert made.question == (
        "How long does a warm pass take over every database of a server (3 databases of 5 tables)?"
    )
    assert [row[0] for row in made.table.rows] == [
        "warm pass, PG_DATABASES=all",
        "the same statements run directly (floor)",
    ]
    assert [(g.measured, g.limit, g.unit) for g in made.goals] == [
        (figures["warm_pass_over_floor"], GOAL, "x")
    ]
