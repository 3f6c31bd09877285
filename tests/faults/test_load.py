"""Load: 200 DocumentDB targets (MONGO_INFO, spread over four wire-protocol stand-ins) plus
PostgreSQL in one invocation of the real handler, cold and then warm. Every target must be
pushed, up, with its exact values, within the template's default timeout (50 s) and memory
(256 MB). The figures are printed (pytest -s, or the matrix row) for the README."""

from __future__ import annotations

import json
import resource
import tracemalloc
from collections.abc import Callable, Iterator, Mapping

import pytest

from tests.faults.conftest import PG_TARGET, Row, pg_env, push_env
from tests.faults.harness import DOCDB_EXACT, PG_NAMES, Expect, LambdaFunction, check_recovered
from tests.integration.pg_helpers import MONITOR_PASSWORD
from tests.standins.docdb import DocDBServer

Make = Callable[[Mapping[str, str]], LambdaFunction]
TARGETS = 200
TIMEOUT_SECONDS = 50  # template.yaml FunctionTimeout default
MEMORY_MB = 256  # template.yaml MemorySize default


@pytest.fixture(scope="module")
def servers() -> Iterator[list[DocDBServer]]:
    started = [DocDBServer().start() for _ in range(4)]
    yield started
    for server in started:
        server.stop()


def test_200_targets_in_one_pass(row: Row, pg, servers, pushgateway, job, function: Make) -> None:
    row.fault = f"load: {TARGETS} DocumentDB targets + PostgreSQL in one pass"
    row.expected = f"all {TARGETS + 1} pushed and up; < {TIMEOUT_SECONDS} s; < {MEMORY_MB} MB"
    names = [f"docdb-{i:03d}" for i in range(TARGETS)]
    # Timeouts of a real deployment, not the fault tests' short ones: this measures load, and
    # a loaded 2-core machine must not turn it into a timeout test.
    info = [
        {
            **servers[i % len(servers)].mongo_info(
                serverSelectionTimeoutMS="10000", connectTimeoutMS="5000", socketTimeoutMS="10000"
            ),
            "name": name,
        }
        for i, name in enumerate(names)
    ]
    fn = function(
        {
            **pg_env(pg),
            "MONGO_INFO": json.dumps(info),
            **push_env(pushgateway.url, job),
            "PUSHGATEWAY_TIMEOUT_SECONDS": "10",
            "COLLECTOR_MAX_WORKERS": "32",
        }
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    try:
        cold = fn.invoke(TIMEOUT_SECONDS * 1000)
        _, cold_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        warm = fn.invoke(TIMEOUT_SECONDS * 1000)
        _, warm_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = (
        f"cold {cold.seconds:.1f} s, warm {warm.seconds:.1f} s; Python heap peak "
        f"{cold_peak / 2**20:.0f} MB cold, {warm_peak / 2**20:.0f} MB warm; process max RSS "
        f"{rss_after:.0f} MB (test process, {rss_before:.0f} MB before)"
    )
    print(f"\n{TARGETS} targets: {figures}")
    row.observed = (
        f"{sum(1 for g in warm.pushed.groups if g.startswith('docdb-'))} DocumentDB groups "
        f"pushed; {figures}"
    )
    want = Expect(
        job,
        {},
        {
            **{name: (DOCDB_EXACT, frozenset()) for name in names},
            PG_TARGET: ({("pg_up", frozenset()): 1.0}, PG_NAMES),
        },
        (MONITOR_PASSWORD,),
    )
    for inv in (cold, warm):
        check_recovered(inv, want)  # every target up, exact values, nothing logged
        assert inv.outcome is not None
        assert inv.outcome["targets_up"] == TARGETS + 1
        assert inv.seconds < TIMEOUT_SECONDS
    # Python's own allocations during a pass, well within the function's memory.
    assert max(cold_peak, warm_peak) < MEMORY_MB * 2**20 / 2
