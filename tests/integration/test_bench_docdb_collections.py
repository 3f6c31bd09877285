"""`bench/docdb_collections.py` on its tiny size, so it cannot rot between benchmark runs. No
timing is asserted (speed is what the bench reports); what is knowable is."""

from __future__ import annotations

import pytest

from bench.docdb_collections import SCENARIOS, measure, section

pytestmark = pytest.mark.bench


def test_measure_quick() -> None:
    figures = measure(quick=True)
    assert figures["setup"] == {"collections": 50, "databases": 10, "warm_passes": 2}
    bounded = figures["default_bound"]
    every = figures["every_collection"]
    # 50 collections fit the default bound: both read all of them each pass.
    assert bounded["collstats_per_pass"] == every["collstats_per_pass"] == 50
    # The top 20: 3 collection series, 3 operation counters and 2 indexes each, then mongo_up,
    # the version, 14 serverStatus values and the oldest operation (none running: 0).
    assert bounded["series_per_server"] == every["series_per_server"] == 20 * 8 + 17
    assert all(value > 0 for key, value in bounded.items() if key.endswith("_ms"))
    made = section(figures)
    assert made.question == "What does a warm DocumentDB pass cost on a server of 50 collections?"
    assert [row[0] for row in made.table.rows] == list(SCENARIOS.values())
    assert [(g.measured, g.limit, g.unit, g.met) for g in made.goals] == [(50, 100, "calls", True)]
