"""The built-in sections of `make bench` (bench/run.py, sections 1 to 8) made from stored
figures alone, as bench/render.py makes them from bench/results.json: their goals with the
exact measured values, and a results.json record naming its module's section function."""

from __future__ import annotations

from typing import Any

from bench import render
from bench.pg_fleet import section as fleet_section


def fleet_entry(
    n: int, warm_pass_s: float, warm_invocation_s: float, rss_mb: float
) -> dict[str, Any]:
    """One fleet size as bench/pg_fleet.py stores it."""
    return {
        "warm_pass_s": warm_pass_s,
        "warm_invocation_s": warm_invocation_s,
        "cpu_s": 0.5,
        "servers_cpu_s": 0.7,
        "rss_mb": rss_mb,
        "workers": 32,
        "held": n,
        "up": n,
        "cold_start_s": 2.0,
        "first_pass_s": 1.5,
        "connections_per_server": [n // 2, n - n // 2],
        "servers": 2,
        "databases_per_server": 50,
        "logins_per_server": 2,
        "statements_per_server": 5000,
        "runs": 3,
        "passes": 4,
        "nproc": 2,
        "memory_mb": 256,
        "command": "worker handler",
    }


def test_fleet_section_judges_the_goals_at_100_targets() -> None:
    # Keys as results.json holds them (strings).
    figures = {"10": fleet_entry(10, 0.2, 0.25, 60.0), "100": fleet_entry(100, 1.6, 2.4, 150.0)}
    made = fleet_section(figures)
    assert [(g.what, g.measured, g.limit, g.unit, g.met) for g in made.goals] == [
        ("warm pass of 100 PostgreSQL targets, default workers", 1.6, 2.0, "s", True),
        ("peak RSS per target at 100 targets", 1.5, 2.0, "MB", True),
        (
            "warm invocation (pass + push) of 100 PostgreSQL targets over its warm pass",
            1.5,
            1.3,
            "x",
            False,
        ),
        ("peak RSS growth per added target, 10 to 100 targets", 1.0, 0.5, "MB", False),
    ]
    assert [row[0] for row in made.table.rows] == [
        "10 PostgreSQL targets",
        "100 PostgreSQL targets",
    ]
    assert made.table.rows[1][-1] == "50 + 50 = 100"
    # CPU floor: (0.5 + 0.7) s over 2 CPUs.
    assert any("could not take less than 600 ms here" in note for note in made.notes)


def test_fleet_section_judges_the_first_pass_and_notes_cpu_per_series_when_measured() -> None:
    # Figures stored before the first pass's floor was measured have none of these keys.
    big = fleet_entry(100, 1.6, 1.7, 60.0) | {
        "first_pass_s": 1.8,
        "first_pass_floor_s": 1.2,
        "first_pass_floor_workers": 32,
        "first_pass_floor_connects": 100,
        "first_pass_floor_statements": 42,
        "first_pass_floor_passes": 3,
        "first_pass_floor_qps_windows": 2,
        "first_pass_floor_qps_window_s": 0.97,
        "first_pass_floor_command": "worker first-pass-floor",
        "first_pass_cpu_s": 0.34,
        "warm_invocation_cpu_s": 0.096,
        "series": 2400,
        "cpu_us_per_series": 40.0,
        "warm_floor_cpu_s": 0.048,
        "warm_floor_statements": 201,
    }
    made = fleet_section({"10": fleet_entry(10, 0.2, 0.25, 59.5), "100": big})
    assert [(g.what, g.measured, g.limit, g.unit, g.met) for g in made.goals][3:] == [
        ("peak RSS growth per added target, 10 to 100 targets", 0.01, 0.5, "MB", True),
        (
            "first pass of 100 PostgreSQL targets on 2 servers (a cold function instance) "
            "over its floor",
            1.5,
            2.0,
            "x",
            True,
        ),
    ]
    # CPU per series is a note here, not a goal: the goal is the cold PostgreSQL section's.
    assert not any("per series" in g.what for g in made.goals)
    assert any(
        note.startswith(
            "CPU per series of a warm invocation: 40 µs (0.96 ms per target). "
            "Not a goal in this section:"
        )
        and "`bench/pg_cold.py`" in note
        for note in made.notes
    )
    assert tuple(made.table.rows[1][8:11]) == (1800.0, 340.0, 40.0)
    assert any(
        "First pass: 1,800 ms against a floor of 1,200 ms" in note
        and "100 bare pg8000 connects" in note
        and "a pool of 32 threads" in note
        and "the QPS window between the two snapshots that a cold rate needs, 970 ms at most"
        in note
        for note in made.notes
    )
    assert any(
        "took 48 ms of CPU: 20 µs per series before anything is made of their rows" in note
        and "The statements of a warm pass alone (201:" in note
        for note in made.notes
    )


def test_fleet_section_below_100_targets_states_no_goal() -> None:
    made = fleet_section({"4": fleet_entry(4, 0.05, 0.06, 50.0)})
    assert list(made.goals) == []
    assert made.no_goal == ("The goals are judged at 100 targets; this run's largest size was 4.")


def test_render_uses_the_function_a_builtin_record_declares() -> None:
    figures: dict[str, Any] = {
        "description": "6 targets",
        "ours_warm": [0.02, 0.03, 0.025],
        "base_warm": [0.3, 0.3, 0.3],
        "slept_warm": [1.3, 1.3, 1.3],
        "base_rss_mb": 60.0,
        "runs": 3,
        "passes": 5,
        "sleep_passes": 2,
        "ratios": [15.0, 10.0, 12.0],
        "targets": 6,
        "up": 6,
        "series": 398,
        "max_workers": 32,
        "command": "worker ours",
    }
    record = {
        "number": 1,
        "title": "Warm pass",
        "module": "bench.headline",
        "declare": "reference_section",
        "figures": figures,
    }
    made = render.section_of(record)
    assert made is not None
    assert made.question == (
        "How long does a warm pass of the reference fleet take, against the older approach?"
    )
    assert [tuple(row) for row in made.table.rows] == [
        ("product", 25.0, 1.0),
        ("older approach, without its pg_sleep(1)", 300.0, 12.0),
        ("older approach, with its pg_sleep(1)", 1300.0, 52.0),
    ]
    # A built-in record stored by older code names no module: its stored text is shown.
    assert render.section_of({**record, "module": None}) is None
