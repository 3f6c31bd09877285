"""`bench/pushgateway_scale.py` on its smallest sizes, so it cannot rot: every push accepted
by a real Pushgateway (the sink's and the plain PUT of the same body), the encoders run on
the same pass, the growth rows made; times are only reported."""

from __future__ import annotations

import pytest

from bench.pushgateway_scale import (
    GOAL_ENCODE_MS_PER_1000,
    GOAL_GROWTH_RATIO,
    GOAL_PUSH_RATIO,
    GROWTH_MIN_PASSES,
    GROWTH_SERIES_QUICK,
    QUICK_GROWTH,
    QUICK_TARGETS,
    measure,
    section,
)

pytestmark = pytest.mark.bench


def test_every_size_is_pushed_encoded_and_grown() -> None:
    figures = measure(quick=True)
    assert figures["command"] == ".venv/bin/python -m bench.pushgateway_scale --quick"
    assert list(figures["pushes"]) == [f"{n} targets" for n in QUICK_TARGETS]
    for n, row in zip(QUICK_TARGETS, figures["pushes"].values(), strict=True):
        # 20 series a target: 2 families of 10 databases.
        assert row["series"] == 20 * n
        assert row["push_s"] > 0 and row["one_put_s"] > 0
    assert figures["encoding"]["series"] == 20 * QUICK_TARGETS[-1]
    assert set(figures["encoding"]) == {
        "series",
        "push_body_ms_per_1000",
        "generate_latest_ms_per_1000",
        "remote_write_ms_per_1000",
    }
    assert [row["targets"] for row in figures["growth"].values()] == list(QUICK_GROWTH)
    for row in figures["growth"].values():
        assert row["kb_per_target"] > 0
        assert row["cpu_ms_per_target"] > 0 and row["ms_per_target"] > 0
        # Each size measures at least GROWTH_SERIES_QUICK series (20 a target).
        assert row["passes"] >= max(GROWTH_MIN_PASSES, GROWTH_SERIES_QUICK // (20 * row["targets"]))
    assert figures["empty_pass_cpu_ms"] > 0
    made = section(figures)
    assert made.question.endswith("?")
    assert [row[0] for row in made.table.rows] == [
        f"push of {n} targets ({20 * n} series)" for n in QUICK_TARGETS
    ]
    assert [(g.limit, g.unit) for g in made.goals] == [
        *[(GOAL_PUSH_RATIO, "x")] * len(QUICK_TARGETS),
        (GOAL_ENCODE_MS_PER_1000, "ms"),
        (GOAL_ENCODE_MS_PER_1000, "ms"),
        (GOAL_GROWTH_RATIO, "x"),
        (GOAL_GROWTH_RATIO, "x"),
    ]
