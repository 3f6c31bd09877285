"""CloudWatch data that makes the older exporter's defects show, and the count of values each
approach got wrong.

Every metric of the fleet gets three datapoints, one period apart, put in the order middle,
newest, oldest: neither the order they were put in nor oldest-first (moto's) starts with the
newest. Three kinds of metric, in turn along the declarations:

- ``distinct``: three different non-zero values; the newest is the value.
- ``zero newest``: the newest is 0, the older ones are not; 0 is the value.
- ``all zero``: a quiet counter, 0 at every point; 0 is the value.

The ElastiCache ``...Out...`` series is compared with the Out metric's own newest value.
Each exported value is compared with the seeded newest value of its series: equal (to 1e-9),
wrong, or missing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.fleet import FleetSpec, cloudwatch_declarations

CASES = ("distinct", "zero newest", "all zero")
OUT_SERIES = "redis_network_bandwidthOut_allowance_exceeded"


@dataclass(frozen=True)
class Seeded:
    """The value each exported series must carry (``series/id``), and its kind of data."""

    expected: dict[str, float]
    case: dict[str, str]
    points_per_metric: int


def _values(case: str, i: int) -> tuple[float, float, float]:
    """(newest, middle, oldest)."""
    if case == "distinct":
        return 10.0 + i, 110.0 + i, 210.0 + i
    if case == "zero newest":
        return 0.0, 3.0 + i, 5.0 + i
    return 0.0, 0.0, 0.0


def seed(aws: Any, spec: FleetSpec, *, now: float | None = None, reset: bool = True) -> Seeded:
    """Forget every metric on the moto stand-in (unless ``reset`` is False), then put the
    fleet's datapoints as of ``now``."""
    import boto3

    if reset:
        aws.reset()
    client = boto3.client(
        "cloudwatch",
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    now = time.time() if now is None else now
    # Two minutes back: inside the product's window (it ends a minute back, aligned to the
    # minute) and the older exporter's (the last 10 minutes) for the next few minutes.
    newest_at = int(now) // 60 * 60 - 115
    case_of_stat: dict[Any, str] = {}
    value_of_stat: dict[Any, float] = {}
    expected: dict[str, float] = {}
    case: dict[str, str] = {}
    data: dict[str, list[dict[str, Any]]] = {}
    for declaration in cloudwatch_declarations(spec):
        stat = declaration.stat
        if stat not in case_of_stat:
            i = len(case_of_stat)
            kind = CASES[i % len(CASES)]
            newest, middle, oldest = _values(kind, i)
            case_of_stat[stat] = kind
            value_of_stat[stat] = newest
            for age, value in ((1, middle), (0, newest), (2, oldest)):
                at = dt.datetime.fromtimestamp(newest_at - age * stat.period, dt.UTC)
                data.setdefault(stat.namespace, []).append(
                    {
                        "MetricName": stat.metric,
                        "Dimensions": [{"Name": n, "Value": v} for n, v in stat.dimensions],
                        "Timestamp": at,
                        "Value": value,
                    }
                )
        key = f"{declaration.output}/{','.join(v for _, v in stat.dimensions)}"
        expected[key] = value_of_stat[stat]
        case[key] = case_of_stat[stat]
    for namespace, points in data.items():
        for i in range(0, len(points), 500):  # PutMetricData takes at most 1000 items
            client.put_metric_data(
                Namespace=namespace,
                MetricData=points[i : i + 500],  # type: ignore[arg-type]
            )
    return Seeded(expected, case, 3)


@dataclass(frozen=True)
class Score:
    right: int
    wrong: int
    missing: int


def score(seeded: Seeded, got: Mapping[str, float], keys: list[str] | None = None) -> Score:
    counts: Counter[str] = Counter()
    for key in keys if keys is not None else list(seeded.expected):
        if key not in got:
            counts["missing"] += 1
        elif abs(got[key] - seeded.expected[key]) > 1e-9:
            counts["wrong"] += 1
        else:
            counts["right"] += 1
    return Score(counts["right"], counts["wrong"], counts["missing"])


def by_case(seeded: Seeded, got: Mapping[str, float]) -> dict[str, Score]:
    """Scores per kind of data, and for the ElastiCache Out series alone."""
    scores = {
        kind: score(seeded, got, [k for k, c in seeded.case.items() if c == kind]) for kind in CASES
    }
    scores[OUT_SERIES] = score(
        seeded, got, [k for k in seeded.expected if k.startswith(OUT_SERIES)]
    )
    return scores
