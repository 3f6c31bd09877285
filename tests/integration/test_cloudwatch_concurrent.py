"""A fleet's GetMetricData calls go out concurrently (a discovered fleet of 1,000
resources needs about ten calls): against moto behind a proxy that holds every request a
while and records how many were in flight at once, with every value still where it
belongs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from middleware_monitoring.cloudwatch import CloudWatchBatch, declarations
from middleware_monitoring.cloudwatch.fetch import CONCURRENT_CALLS, window
from middleware_monitoring.config import load_settings
from middleware_monitoring.model import Target
from middleware_monitoring.runner import run_pass
from tests.faults.injectors import HttpFault
from tests.standins.aws import MotoServer
from tests.standins.cloudwatch import put

pytestmark = pytest.mark.integration

CLUSTERS = 100  # 14 queries each (SPEC 3.6 and 13): 1,400 queries, 3 calls
PER_CLUSTER = len(declarations.elasticache("c"))


@pytest.fixture
def proxy(clean_moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpFault]:
    for name, value in clean_moto.env().items():
        monkeypatch.setenv(name, value)
    with HttpFault(clean_moto.endpoint_url) as fault:
        yield fault


def test_calls_of_one_pass_are_in_flight_together(clean_moto: MotoServer, proxy: HttpFault) -> None:
    now = time.time()
    settings = load_settings(
        {**clean_moto.env(), "AWS_ENDPOINT_URL_CLOUDWATCH": proxy.url, "AWS_REGION": "us-east-1"}
    )
    batch = CloudWatchBatch(settings.cloudwatch, clock=lambda: now)
    targets = [
        Target(f"elasticache:c{i}", [batch.source(declarations.elasticache(f"c{i}"))])
        for i in range(CLUSTERS)
    ]
    end = window(now, lookback=900, end_delay=60, periods={60}).end
    # Each cluster's metrics carry its own number: a value given to another call's query
    # would show.
    put(
        clean_moto.client("cloudwatch"),
        [
            (d.stat, end - 53, float(i))
            for i in range(CLUSTERS)
            for d in declarations.elasticache(f"c{i}")
        ],
    )
    # Long enough that a call one after another could never overlap the others.
    proxy.delay_seconds = 2.0
    result = run_pass(
        targets,
        deadline=time.monotonic() + 60,
        max_workers=4,
        collector_instance="collector",
        prefetches=[batch],
    )
    assert proxy.requests == 3
    assert proxy.max_in_flight == min(3, CONCURRENT_CALLS)
    values = {
        (group.target, sample.name): sample.value
        for group in result.targets
        for family in group.families
        if family.name.startswith("redis_")
        for sample in family.samples
    }
    assert len(values) == PER_CLUSTER * CLUSTERS
    assert all(value == float(target.split(":c")[1]) for (target, _), value in values.items())
    calls = {f.name: f.samples[0].value for f in result.collector.families if f.samples}
    assert calls["middleware_cloudwatch_getmetricdata_calls"] == 3
    assert calls["middleware_cloudwatch_metrics_requested"] == PER_CLUSTER * CLUSTERS
