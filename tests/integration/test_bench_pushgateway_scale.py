"""`bench/pushgateway_scale.py` on its smallest size, so it cannot rot: every size pushed to
both gateways, each push accepted (times are only reported)."""

from __future__ import annotations

import pytest

from bench.pushgateway_scale import GOAL_PUSH_S, QUICK_GROUPS, measure, section

pytestmark = pytest.mark.bench


def test_both_gateways_take_every_size() -> None:
    figures = measure(quick=True)
    assert figures["command"] == ".venv/bin/python -m bench.pushgateway_scale --quick"
    assert list(figures["pushes"]) == [f"{n} groups x 20 series" for n in QUICK_GROUPS]
    for row in figures["pushes"].values():
        assert row["push_s_default"] > 0 and row["push_s_consistency_check_off"] > 0
    made = section(figures)
    assert made.question == "How long does a pass take to push N targets to one Pushgateway?"
    assert [row[0] for row in made.table.rows] == [f"{n} targets" for n in QUICK_GROUPS]
    assert [(g.what, g.limit, g.unit) for g in made.goals] == [
        (f"push of {QUICK_GROUPS[-1]} targets, consistency check off", GOAL_PUSH_S, "s")
    ]
