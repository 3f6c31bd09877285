"""`bench/docdb_collections.py` on its tiny size, so it cannot rot between benchmark runs. No
timing is asserted (speed is what the bench reports); what is knowable is."""

from __future__ import annotations

import pytest

from bench.docdb_collections import measure

pytestmark = pytest.mark.bench


def test_measure_quick() -> None:
    figures = measure(quick=True)
    assert figures["setup"] == {"collections": 50, "databases": 10, "warm_passes": 2}
    bounded = figures["default bound (top 20, 100 collStats a pass)"]
    every = figures["every collection every pass"]
    # 50 collections fit the default bound: both read all of them each pass.
    assert bounded["collstats_per_pass"] == every["collstats_per_pass"] == 50
    # The top 20: 3 collection series, 3 operation counters and 2 indexes each, then mongo_up,
    # the version, 14 serverStatus values and the oldest operation (none running: 0).
    assert bounded["series_per_server"] == every["series_per_server"] == 20 * 8 + 17
    assert all(value > 0 for key, value in bounded.items() if key.endswith("_ms"))
