"""bench/lambda_sizes.py on its quick size, so it cannot rot between benchmark runs. No
timing is asserted (speed is what the bench reports); what the run did and counted is. Where
this machine cannot make a CPU-quota cgroup, the test asserts the module says so instead."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

import bench.lambda_sizes as lambda_sizes
from bench.lambda_sizes import (
    CGROUP_ROOT,
    cgroup_unavailable,
    measure,
    quota_us,
    section,
    slope,
)

pytestmark = pytest.mark.bench

QUESTION = (
    "Which MemorySize and Shards carry 100, 300 and 1,000 targets, with the CPU Lambda gives "
    "256 MB and 1,024 MB?"
)


def our_groups() -> set[str]:
    if not CGROUP_ROOT.is_dir():
        return set()
    return {p.name for p in CGROUP_ROOT.iterdir() if p.name.startswith("mm-bench-")}


def test_quota_is_lambda_share_of_one_vcpu_at_1769_mb() -> None:
    assert quota_us(256) == 14471
    assert quota_us(1024) == 57886
    assert quota_us(1769) == 100_000


def test_slope_is_least_squares() -> None:
    assert slope([(10, 1.0), (20, 1.5)]) == pytest.approx((0.5, 0.05))
    assert slope([(4, 2.0)]) == (0.0, 0.5)


def test_without_a_cpu_controller_says_so_and_measures_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lambda_sizes, "CGROUP_ROOT", tmp_path)
    reason = f"{tmp_path} is not a cgroup v1 CPU controller (no cpu.cfs_quota_us there)"
    assert cgroup_unavailable() == reason
    figures = measure(quick=True)
    assert figures["cgroup"] == "unavailable"
    assert figures["reason"] == reason
    assert "sizes" not in figures["memory_mb"]["256"]
    made = section(figures)
    assert made.question == QUESTION
    assert not made.goals
    assert made.no_goal == f"Not measured here: {reason}."
    assert [row[0] for row in made.table.rows] == ["256 MB", "1,024 MB"]


def test_measure_quick() -> None:
    before = our_groups()
    figures = measure(quick=True)
    reason = cgroup_unavailable()
    if reason:
        # This machine cannot limit the CPU share: the figures and the section say why.
        assert figures["cgroup"] == "unavailable"
        assert figures["reason"] == reason
        assert section(figures).no_goal == f"Not measured here: {reason}."
        return
    assert figures["cgroup"] == "limited"
    assert figures["passes"] == 2
    assert {mb: m["quota_us"] for mb, m in figures["memory_mb"].items()} == {
        "256": 14471,
        "1024": 57886,
    }
    for memory in figures["memory_mb"].values():
        assert set(memory["sizes"]) == {"3"}
        measured = memory["sizes"]["3"]
        assert measured["targets_up"] == 3
        assert measured["cold_start_s"] > measured["import_s"] > 0
        assert measured["warm_invocation_s"] >= measured["warm_pass_s"] > 0
        # One size: the slope is that size's warm invocation per target.
        assert memory["warm_per_target_s"] == round(measured["warm_invocation_s"] / 3, 5)
    assert figures["command"].startswith(
        '/bin/sh -c \'echo $$ > "$0" && exec "$@"\' /sys/fs/cgroup/cpu/<group>/cgroup.procs '
    )
    assert figures["command"].endswith(
        ".venv/bin/python -m bench.worker handler handler-3.json --passes 2"
    )
    # Peak RSS is the worker's own, from /usr/bin/time: a worker forked straight from this
    # process would report at least this process's resident pages at the fork.
    ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss = {mb: m["sizes"]["3"]["peak_rss_mb"] for mb, m in figures["memory_mb"].items()}
    assert all(0 < value < ours for value in rss.values()), (rss, ours)
    # Every group the run made is gone.
    assert our_groups() <= before
    made = section(figures)
    assert made.question == QUESTION
    assert list(made.table.columns) == [
        "fleet",
        "Shards",
        "targets per shard",
        "256 MB warm invocation (s)",
        "256 MB fits",
        "1,024 MB warm invocation (s)",
        "1,024 MB fits",
    ]
    assert [(row[0], row[1], row[2]) for row in made.table.rows[:5]] == [
        ("100 targets", 1, 100),
        ("100 targets", 2, 50),
        ("100 targets", 4, 25),
        ("100 targets", 8, 13),
        ("100 targets", 16, 7),
    ]
    assert len(made.table.rows) == 15
    assert [(g.limit, g.unit) for g in made.goals] == [(50, "s"), (50, "s")]
    assert "The table is derived, not measured" in made.method
