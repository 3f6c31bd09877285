"""bench/pg_cold.py on its quick size, so it cannot rot between benchmark runs. No timing is
asserted (speed is what the bench reports); what the run counted is."""

from __future__ import annotations

import pytest

from bench.pg_cold import (
    FEW_WORKERS,
    GOAL_CPU_MS_PER_TARGET,
    GOAL_CPU_US_PER_SERIES,
    measure,
    section,
)
from bench.section import number

pytestmark = pytest.mark.bench


def test_measure_quick() -> None:
    figures = measure(quick=True)
    # Two servers made from one filled and copied, each target up over verify-full TLS.
    assert (figures["servers"], figures["targets"], figures["up"]) == (2, 2, 2)
    assert (figures["statements_per_server"], figures["sslmode"], figures["runs"]) == (
        200,
        "verify-full",
        1,
    )
    assert figures["first_pass_cpu_ms"] > 0
    assert figures["cpu_ms_per_cold_target"] == pytest.approx(
        figures["first_pass_cpu_ms"] / 2, abs=0.05
    )
    made = section(figures)
    assert made.question == (
        "How much collector CPU does a cold PostgreSQL target take when each target is its "
        "own server (2 servers), and per series of a warm invocation?"
    )
    assert [row[0] for row in made.table.rows] == [
        "first pass of a cold instance, 2 targets",
        "the warm pass after it",
    ]
    # The warm invocation's CPU over the series it sent, each target its own server's.
    assert figures["warm_series"] > 0
    assert figures["warm_invocation_cpu_us_per_series"] > 0
    assert [(g.measured, g.limit, g.unit) for g in made.goals] == [
        (figures["cpu_ms_per_cold_target"], GOAL_CPU_MS_PER_TARGET, "ms"),
        (figures["warm_invocation_cpu_us_per_series"], GOAL_CPU_US_PER_SERIES, "µs"),
    ]
    assert made.goals[1].what == (
        "collector CPU per series of a warm invocation, encoding included, each target its "
        "own server"
    )
    # The same first pass with fewer workers: every target up, its figure in the note.
    assert (figures["few_workers"], figures["few_workers_up"]) == (FEW_WORKERS, 2)
    assert figures["first_pass_s_few_workers"] > 0
    note, floor = made.notes
    # The client CPU of the warm statements alone, replayed: what a series cannot go under.
    assert figures["warm_floor_statements"] > 0 and figures["warm_floor_cpu_ms"] > 0
    assert floor.startswith(
        f"CPU per series: the warm invocation used {number(figures['warm_invocation_cpu_ms'])} "
        f"ms for {figures['warm_series']:,} series ("
    )
    assert f"({figures['warm_floor_statements']}: each target's" in floor
    assert note.startswith(
        f"First pass of the 2 cold targets: {figures['first_pass_s']:.2f} s with the default "
        f"{figures['workers']} workers, {figures['first_pass_s_few_workers']:.2f} s with "
        f"COLLECTOR_MAX_WORKERS={FEW_WORKERS} (2/2 up; "
    )
