"""`bench/enhanced_monitoring.py` on its quick size, so it cannot rot: one GetLogEvents per
instance and pass, every instance's series, the section's scenarios and goal (no timing is
asserted: that is the bench's job)."""

from __future__ import annotations

import pytest

from bench.enhanced_monitoring import GOAL_OVER_FLOOR, QUICK_INSTANCES, measure, section

pytestmark = pytest.mark.bench


def test_quick_enhanced_monitoring_bench() -> None:
    figures = measure(quick=True)
    assert figures["command"] == ".venv/bin/python -m bench.enhanced_monitoring --quick"
    assert figures["instances"] == QUICK_INSTANCES
    assert figures["getlogevents_calls_per_pass"] == QUICK_INSTANCES
    # The RDS event of tests/standins/rdsosmetrics.py makes 53 series per instance.
    assert figures["series_per_pass"] == 53 * QUICK_INSTANCES
    assert figures["warm_pass_ms"] > 0 and figures["floor_ms"] > 0
    made = section(figures)
    assert made.question == (
        f"What does Enhanced Monitoring cost a warm pass of {QUICK_INSTANCES} instances?"
    )
    assert [row[0] for row in made.table.rows] == [
        f"{QUICK_INSTANCES} instances, warm pass",
        "the same calls made directly",
    ]
    assert [(g.limit, g.unit) for g in made.goals] == [(GOAL_OVER_FLOOR, "x")]
