"""`bench/remote_write.py` on its smallest size (the reference fleet over 10 simulated
minutes), so it cannot rot: the counted figures are exact for that fleet; times are only
reported (speed is what the bench is for)."""

from __future__ import annotations

import logging

import pytest

from bench.remote_write import measure, section

pytestmark = pytest.mark.bench


def test_reference_fleet_cost_and_delivery() -> None:
    package = logging.getLogger("middleware_monitoring")
    level = package.level
    figures = measure(quick=True)
    # Quiet while it measured, as it was afterwards (later tests read the warnings).
    assert package.level == level
    (reference,) = figures["cost"]
    # The product's declarations for the mix: the RDS instance 9 (5 of SPEC 3, BurstBalance,
    # DBLoad, DBLoadCPU, DBLoadNonCPU), 2 DocumentDB instances x 6 (5 and DBInstanceReplicaLag),
    # the DocumentDB cluster's 3 Volume* and the ElastiCache node's 14.
    assert (reference["targets"], reference["metrics"], reference["passes"]) == (6, 38, 11)
    # Before this change: all 38 metrics every minute. Now, every minute: 35 one-minute
    # metrics and the 3 Volume* ones every fifth pass. Every 5 minutes: 38 per 5 passes.
    assert reference["per_minute_before_this_change"] == {
        "metrics_per_pass": 38.0,
        "monthly_usd": 16.42,
    }
    assert reference["per_minute_now"] == {"metrics_per_pass": 35.6, "monthly_usd": 15.38}
    rw = reference["five_minute_remote_write"]
    assert (rw["metrics_per_pass"], rw["monthly_usd"]) == (7.6, 3.28)
    # Every 1-minute point of the covered windows reached the receiver.
    assert rw["points_delivered"] == rw["points_expected"] > 0
    # 35 one-minute metrics + 3 five-minute ones: 35.6 updates a minute.
    assert reference["metric_streams"] == {"updates_per_month": 1_537_920, "monthly_usd": 4.61}
    assert reference["cheaper_than_per_minute"] == 5.0
    assert reference["cheaper_than_streams"] == 1.41
    send = figures["send"]
    # Every declared CloudWatch metric is a series of the synthetic pass with five 1-minute
    # points: 6 series and 30 samples more than with the 32 metrics before BurstBalance,
    # DBInstanceReplicaLag and DBLoad* were declared.
    assert (send["groups"], send["series"], send["samples"]) == (7, 265, 417)
    assert send["snappy_bytes"] < send["protobuf_bytes"]
    made = section(figures)
    assert [row[0] for row in made.table.rows] == ["reference fleet (6 targets)"]
    assert [(g.measured, g.limit, g.met) for g in made.goals] == [
        (3.28, 3.28, True),
        (rw["points_delivered"], rw["points_expected"], True),
    ]
