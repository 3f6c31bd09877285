"""`bench/elasticache.py` on its tiny size, so it cannot rot between benchmark runs. No timing
is asserted (speed is what the bench reports); what is knowable is."""

from __future__ import annotations

import pytest

from bench.elasticache import measure, section
from tests.dashboards import REDIS_INFO_ALWAYS

pytestmark = pytest.mark.bench


def test_measure_quick() -> None:
    figures = measure(quick=True)
    assert figures["setup"]["nodes"] == 4
    assert (figures["fleet_pass"]["cold_pass_up"], figures["fleet_pass"]["warm_pass_up_min"]) == (
        4,
        4,
    )
    # Both ends of the replication add their series; the keyspace adds three; each command
    # used adds four counters and a summary of three quantiles, a count and a sum.
    assert figures["series_per_node"] == {
        "primary (1 db, 1 replica)": len(REDIS_INFO_ALWAYS) + 3 + 2,
        "replica (1 db)": len(REDIS_INFO_ALWAYS) + 3 + 6,
        "per command the workload used": 9.0,
    }
    assert figures["client"]["valkey_version"] == "6.2.0"
    assert all(
        value > 0 for group in ("one_node", "fleet_pass") for value in figures[group].values()
    )
    made = section(figures)
    nodes = figures["setup"]["nodes"]
    assert [(g.measured, g.limit, g.met) for g in made.goals] == [(nodes, nodes, True)]
    assert len(made.table.rows) == 4
