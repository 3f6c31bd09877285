"""`bench/remote_write.py` on its smallest size (the reference fleet over 10 simulated
minutes), so it cannot rot: the counted figures are exact for that fleet; times are only
reported (speed is what the bench is for)."""

from __future__ import annotations

import pytest

from bench.remote_write import measure, section

pytestmark = pytest.mark.bench


def test_reference_fleet_cost_and_delivery() -> None:
    figures = measure(quick=True)
    (reference,) = figures["cost"]
    # 22 metrics of SPEC 3.3-3.6 and the 10 ElastiCache metrics of SPEC 13.
    assert (reference["targets"], reference["metrics"], reference["passes"]) == (6, 32, 11)
    # Before this change: all 32 metrics every minute. Now, every minute: 29 one-minute
    # metrics and the 3 Volume* ones every fifth pass. Every 5 minutes: 32 per 5 passes.
    assert reference["per_minute_before_this_change"] == {
        "metrics_per_pass": 32.0,
        "monthly_usd": 13.82,
    }
    assert reference["per_minute_now"] == {"metrics_per_pass": 29.6, "monthly_usd": 12.79}
    rw = reference["five_minute_remote_write"]
    assert (rw["metrics_per_pass"], rw["monthly_usd"]) == (6.4, 2.76)
    # Every 1-minute point of the covered windows reached the receiver.
    assert rw["points_delivered"] == rw["points_expected"] > 0
    # 29 one-minute metrics + 3 five-minute ones: 29.6 updates a minute.
    assert reference["metric_streams"] == {"updates_per_month": 1_278_720, "monthly_usd": 3.84}
    assert reference["cheaper_than_per_minute"] == 5.0
    assert reference["cheaper_than_streams"] == 1.39
    send = figures["send"]
    assert (send["groups"], send["series"], send["samples"]) == (7, 259, 387)
    assert send["snappy_bytes"] < send["protobuf_bytes"]
    made = section(figures)
    assert [row[0] for row in made.table.rows] == ["reference fleet (6 targets)"]
    assert [(g.measured, g.limit, g.met) for g in made.goals] == [
        (2.76, 2.76, True),
        (rw["points_delivered"], rw["points_expected"], True),
    ]
