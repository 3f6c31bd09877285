"""Nothing in a CloudWatch pass grows with the square of its queries: a pass of 10,000
statistics (1,000 targets of 10) is counted, not timed. Every comparison and hash of a
statistic is an operation; a lookup in a list instead of a set (what ``_settle`` once did:
9.2 s of a 17.8 s pass at 7,300 queries) makes about n^2 / 2 = 50,000,000 of them."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from middleware_monitoring.cloudwatch import CloudWatchBatch
from middleware_monitoring.cloudwatch import source as source_module
from middleware_monitoring.cloudwatch.declarations import Declaration, Stat
from middleware_monitoring.cloudwatch.source import CloudWatchSource
from middleware_monitoring.model import SourceFailure
from tests.unit.cloudwatch_helpers import (
    WINDOW_END,
    batch_for,
    metric_result,
    settings,
    stubbed_client,
)

QUERIES = 10_000
PER_TARGET = 10
MAX_QUERIES_PER_CALL = 500
_operations = itertools.count()


class CountedStat(Stat):
    """A statistic that counts how often it is compared or hashed."""

    def __eq__(self, other: object) -> bool:
        next(_operations)
        return super().__eq__(other)

    def __hash__(self) -> int:
        next(_operations)
        return super().__hash__()


def declarations(target: int) -> list[Declaration]:
    return [
        Declaration(
            CountedStat(
                "AWS/RDS",
                f"Metric{m}",
                (("DBInstanceIdentifier", f"db-{target:04d}"),),
                "Average",
                60,
            ),
            f"pg_metric_{m}",
            "A metric.",
        )
        for m in range(PER_TARGET)
    ]


def counted(run: Any) -> int:
    before = next(_operations)
    run()
    return next(_operations) - before - 1


def test_a_pass_of_10000_queries_costs_operations_in_proportion_to_them() -> None:
    client, stubber, calls = stubbed_client()
    batch: CloudWatchBatch = batch_for(settings().cloudwatch, client)
    sources: list[CloudWatchSource] = []

    def build() -> None:
        sources.extend(
            batch.source(declarations(target)) for target in range(QUERIES // PER_TARGET)
        )

    built = counted(build)
    for _ in range(QUERIES // MAX_QUERIES_PER_CALL):
        stubber.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    metric_result(i, [(WINDOW_END, float(i))]) for i in range(MAX_QUERIES_PER_CALL)
                ]
            },
        )
    series: list[int] = []

    def one_pass() -> None:
        stats = batch.stats
        batch.start(time.monotonic() + 60, stats)
        batch.result()
        for source in sources:
            series.extend(len(family.samples) for family in source.collect())

    with stubber:
        operations = built + counted(one_pass)
    assert len(calls) == QUERIES // MAX_QUERIES_PER_CALL
    assert sum(series) == QUERIES
    # A few hashes per statistic and step (planning, the call, settling, reading back):
    # 15 per query measured; the bound leaves room, a quadratic step cannot fit (the list
    # lookup in _settle put back fails it).
    assert operations <= 30 * QUERIES, operations


def test_a_source_makes_families_only_for_its_datapoints_in_declaration_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fleet's targets without a datapoint (1,000 discovered resources, most of them
    quiet) cost no metric family each; those with one come out as declared: an output
    declared first keeps its place though only a later declaration of it has a value."""
    made: list[str] = []
    original = source_module.GaugeMetricFamily.__init__

    def counting(self: Any, name: str, *args: Any, **kwargs: Any) -> None:
        made.append(name)
        original(self, name, *args, **kwargs)

    monkeypatch.setattr(source_module.GaugeMetricFamily, "__init__", counting)

    def stat(metric: str, db: str) -> Stat:
        return Stat("AWS/RDS", metric, (("DBInstanceIdentifier", db),), "Average", 60)

    client, stubber, _ = stubbed_client()
    batch: CloudWatchBatch = batch_for(settings().cloudwatch, client)
    quiet = batch.source([Declaration(stat("CPUUtilization", "quiet"), "pg_cpu", "CPU.")])
    busy = batch.source(
        [
            Declaration(stat("ReadIOPS", "busy"), "pg_iops", "IOPS.", (("op", "read"),)),
            Declaration(stat("CPUUtilization", "busy"), "pg_cpu", "CPU."),
            Declaration(stat("WriteIOPS", "busy"), "pg_iops", "IOPS.", (("op", "write"),)),
        ]
    )
    # Queries in declaration order: q0 quiet's CPU, q1 read, q2 busy's CPU, q3 write.
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                metric_result(2, [(WINDOW_END, 50.0)]),
                metric_result(3, [(WINDOW_END, 7.0)]),
            ]
        },
    )
    with stubber:
        batch.start(time.monotonic() + 60)
        batch.result()
    made.clear()
    families = list(busy.collect())
    assert [(f.name, [(s.labels, s.value) for s in f.samples]) for f in families] == [
        ("pg_iops", [({"op": "write"}, 7.0)]),
        ("pg_cpu", [({}, 50.0)]),
    ]
    assert made == ["pg_cpu", "pg_iops"]
    made.clear()
    with pytest.raises(SourceFailure) as failure:
        list(quiet.collect())
    assert failure.value.reason == "no_data"
    assert made == []
