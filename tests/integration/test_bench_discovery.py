"""`bench/discovery.py` on its quick size, so it cannot rot between benchmark runs: the fleet
built in the stand-ins, the worker's cold and warm passes, the figures' shape and the exact
counts that do not depend on the machine. No timing is asserted (that is the bench's job)."""

from __future__ import annotations

import math

import pytest

from bench.discovery import QUICK, measure, section
from middleware_monitoring.cloudwatch.fetch import CONCURRENT_CALLS

pytestmark = pytest.mark.bench


def test_quick_discovery_bench() -> None:
    figures = measure(quick=True)
    assert (figures["resources"], figures["targets"]) == (QUICK.resources, QUICK.resources)
    assert figures["postgres_up"] == QUICK.logins
    # Cold: one call per list, the pending maintenance shared, the own account asked once.
    assert figures["cold_discovery_calls"] == {
        "GetCallerIdentity": 1,
        "DescribeDBInstances": 3,
        "DescribeDBClusters": 2,
        "DescribePendingMaintenanceActions": 1,
        "DescribeReplicationGroups": 1,
        "DescribeCacheClusters": 1,
        "GetResources": 1,
    }
    # Warm, within DISCOVER_MAX_AGE_SECONDS: not one discovery call.
    assert figures["warm_discovery_calls"] == [0]
    assert figures["getmetricdata_calls"] == math.ceil(figures["cloudwatch_queries"] / 500)
    # The last warm pass, a minute after the one before: 6 RDS instances x (6 + 3 DBLoad*),
    # the Aurora cluster 4 + 2 instances x (4 + 3 DBLoad*), 2 DocumentDB instances x 6, 2
    # cache nodes x 14; the 5-minute Volume* metrics (the Aurora cluster's and the DocumentDB
    # cluster's 3) are not due again yet.
    assert figures["cloudwatch_queries"] == 6 * (6 + 3) + 4 + 2 * (4 + 3) + 2 * 6 + 2 * 14
    assert figures["peak_rss_mb"] > 0
    # The floor: the warm pass's very GetMetricData requests, replayed after it with a plain
    # client (the same calls and queries), its time beside the pass's.
    warm = figures["passes"][1]
    assert (warm["replayed_calls"], warm["replayed_queries"]) == (
        warm["getmetricdata_calls"],
        warm["cloudwatch_queries"],
    )
    assert figures["replayed_calls"] == figures["getmetricdata_calls"]
    assert figures["replay_s"] > 0
    assert figures["warm_pass_over_replay"] == round(warm["seconds"] / warm["replay_s"], 2)
    assert figures["warm_pass_over_replay_each"] == [figures["warm_pass_over_replay"]]
    assert figures["warm_pass_cpu_s"] > 0 and figures["replay_cpu_s"] > 0
    assert figures["concurrent_calls"] == CONCURRENT_CALLS
    made = section(figures)
    assert made.question == (
        f"How long does a pass over {QUICK.resources:,} discovered resources take, and what "
        "does it ask AWS?"
    )
    ratio = made.goals[0]
    assert (ratio.what, ratio.measured, ratio.limit, ratio.unit, ratio.at_most) == (
        f"warm pass of {QUICK.resources:,} targets over its GetMetricData calls replayed",
        figures["warm_pass_over_replay"],
        1.3,
        "x",
        True,
    )
    assert [(g.what, g.measured, g.met) for g in made.goals][1:3] == [
        ("discovery calls on warm passes", 0, True),
        (
            "GetMetricData calls a warm pass, against ceil(queries / 500)",
            figures["getmetricdata_calls"],
            True,
        ),
    ]
