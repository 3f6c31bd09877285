"""What a pass costs and how it is bounded (SPEC 19).

``CORE_SERIES`` is the older exporter's series (SPEC 3): the EMF sink's default set of
CloudWatch metrics (beside the collector's health), and the first series a budget keeps.

``SeriesBudget`` applies SERIES_BUDGET, the series a pass may send. Over it, the pass sends
the collector's own series, then the rest in a fixed order of classes, each class in a
stable order (family name, target, labels), until the budget is spent:

0. the collector's own series (every series of the collector's group, and each target's
   ``middleware_*`` series): always sent, even when they alone exceed the budget;
1. each target's up (``pg_up``, ``mongo_up``, ``redis_up``);
2. the rest of the older exporter's series (``CORE_SERIES``: connections, QPS, sizes,
   CloudWatch's);
3. every other series of a target (health, engine INFO, discovery's inventory);
4. per-table series (``pg_table_*``);
5. statement-level series (labelled with a ``queryid`` or ``query``).

The same configuration and the same servers leave out the same series on every pass: what
is left out is logged once (again only when it changes), and counted in
``middleware_series_dropped``. ``middleware_series_sent{sink}`` is added to every pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from itertools import repeat
from operator import attrgetter
from typing import Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from .model import PassResult, TargetResult

logger = logging.getLogger(__name__)

SENT: Final = "middleware_series_sent"
DROPPED: Final = "middleware_series_dropped"
HEALTH_PREFIX: Final = "middleware_"
# The Pushgateway's bookkeeping (which deployment owns a group), not health: no EMF metric.
NOT_HEALTH: Final = frozenset({"middleware_collector_info"})
UP_SERIES: Final = frozenset({"pg_up", "mongo_up", "redis_up"})
STATEMENT_LABELS: Final = frozenset({"queryid", "query"})
TABLE_PREFIX: Final = "pg_table_"
# A 30-day month, as the benchmark's cost section counts it.
MINUTES_PER_MONTH: Final = 30 * 24 * 60

# The older exporter's series (SPEC 3), and for each the labels that stay CloudWatch
# dimensions under EMF beside ``instance`` (None: all of them, for series whose labels are the
# target's own resource ids). A label not kept is a property of the sample's EMF line: one
# database's size is one sample of pg_database_size_bytes{instance}, database_name beside it.
_ONE: Final[frozenset[str]] = frozenset()
CORE_SERIES: Final[Mapping[str, frozenset[str] | None]] = {
    # SPEC 3.1
    **dict.fromkeys(
        (
            "pg_up",
            "pg_database_size_bytes",
            "pg_user_connection_count",
            "pg_total_connections",
            "pg_active_connections",
            "pg_idle_connections",
            "pg_uptime_seconds",
            "pg_qps_all",
            "pg_qps_read",
            "pg_qps_write",
            "pg_wait_session_sec",
            "pg_wait_session_five_sec",
        ),
        _ONE,
    ),
    # SPEC 3.3, 3.5, 3.6: CloudWatch's own, one per resource id of the target.
    **dict.fromkeys(
        (
            "pg_storage_disk_space",
            "pg_cpu_utilization",
            "pg_memory_utilization",
            "pg_network_throughput",
            "pg_read_iops",
            "pg_volume_bytes_used",
            "mongo_cpu_utilization",
            "mongo_freeable_memory",
            "mongo_network_throughput",
            "mongo_read_latency",
            "mongo_write_latency",
            "mongo_volume_bytesused",
            "mongo_volume_readiops",
            "mongo_volume_wriateiops",
            "redis_network_bandwidth_inallowance_exceeded",
            "redis_network_bandwidthOut_allowance_exceeded",
            "redis_network_conntrack_allowance_exceeded",
            "redis_network_packetsPerSecond_allowance_exceeded",
        ),
        None,
    ),
    # SPEC 3.4 (mongo_version_info's version is a property: an upgrade is not a new metric).
    **dict.fromkeys(
        (
            "mongo_up",
            "mongo_version_info",
            "mongo_uptime_seconds",
            "mongo_current_connections",
            "mongo_available_connections",
            "mongo_totalCreated_connections",
            *(
                f"mongo_opcounters_{name}"
                for name in ("insert", "query", "update", "delete", "getmore", "command")
            ),
            *(f"mongo_document_{name}" for name in ("deleted", "inserted", "returned", "updated")),
        ),
        _ONE,
    ),
    # SPEC 13: an ElastiCache node's up, like pg_up and mongo_up.
    "redis_up": _ONE,
}


def is_health(family: str) -> bool:
    """The collector's health: every ``middleware_*`` family but the Pushgateway's bookkeeping."""
    return family.startswith(HEALTH_PREFIX) and family not in NOT_HEALTH


def series_class(family: str, labels: Mapping[str, str]) -> int:
    """The budget's order (module docstring): 0 is always sent, then 1 to 5."""
    if family.startswith(HEALTH_PREFIX):
        return 0
    if family in UP_SERIES:
        return 1
    if family in CORE_SERIES:
        return 2
    if STATEMENT_LABELS & labels.keys():
        return 5
    if family.startswith(TABLE_PREFIX):
        return 4
    return 3


SeriesId = tuple[str, str, tuple[tuple[str, str], ...]]  # sample name, target, labels


def _series(group: TargetResult) -> Iterator[tuple[Metric, SeriesId]]:
    for family in group.families:
        for sample in family.samples:
            yield family, (sample.name, group.target, tuple(sorted(sample.labels.items())))


_name: Final = attrgetter("name")
_labels: Final = attrgetter("labels")


def count_series(result: PassResult) -> int:
    """Distinct series of the pass (a CloudWatch series with several points counts once),
    each sample's identity made in C (map and zip, no Python frame a sample; its labels as a
    frozenset, a quarter quicker than a sorted tuple and equal when the labels are): this
    runs once per series of every pass."""
    seen: set[tuple[str, str, frozenset[tuple[str, str]]]] = set()
    for group in result.groups():
        for family in group.families:
            samples = family.samples
            seen.update(
                zip(
                    map(_name, samples),
                    repeat(group.target),
                    map(frozenset, map(dict.items, map(_labels, samples))),
                )
            )
    return len(seen)


class SeriesBudget:
    """One per function instance: remembers what it last said was left out."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self._logged: dict[str, int] | None = None

    def apply(self, result: PassResult, sink: str) -> tuple[PassResult, int]:
        """The pass to send: ``result`` cut to the budget, with the budget's own series in the
        collector's group, and the series it holds. ``result`` itself is left whole (the
        Kafka stream reads its statements from it)."""
        own_extra = 1 if self.budget is None else 2  # sent, and dropped when a budget is set
        if self.budget is None:
            # Nothing is cut: the series are only counted (no class, no order), and the
            # pass is copied without looking at each sample (a warm pass of 20 PostgreSQL
            # targets spent a fifth of its invocation's CPU ranking series it then kept).
            cut = _cut(result, set())
            sent = count_series(result) + own_extra
            cut.collector.families.extend(self._families(sink, sent, 0))
            return cut, sent
        ranked: list[tuple[int, str, SeriesId]] = []
        for group in result.groups():
            own_group = group is result.collector
            for family, series in _series(group):
                kind = 0 if own_group else series_class(family.name, dict(series[2]))
                ranked.append((kind, family.name, series))
        distinct = {series: (kind, name) for kind, name, series in ranked}
        dropped: set[SeriesId] = set()
        if self.budget is not None:
            own = sum(1 for kind, _ in distinct.values() if kind == 0) + own_extra
            room = max(0, self.budget - own)
            rest = sorted(
                (kind, name, series[1], series[2], series)
                for series, (kind, name) in distinct.items()
                if kind > 0
            )
            dropped = {entry[-1] for entry in rest[room:]}
        cut = _cut(result, dropped)
        self._say(len(distinct) + own_extra, distinct, dropped)
        sent = len(distinct) - len(dropped) + own_extra
        cut.collector.families.extend(self._families(sink, sent, len(dropped)))
        return cut, sent

    def _families(self, sink: str, sent: int, dropped: int) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            SENT,
            "Series this pass sent (these two series included), by sink.",
            labels=["sink"],
        )
        family.add_metric([sink], sent)
        yield family
        if self.budget is not None:
            yield GaugeMetricFamily(
                DROPPED,
                "Series this pass left out to keep within SERIES_BUDGET.",
                value=dropped,
            )

    def _say(
        self, total: int, distinct: Mapping[SeriesId, tuple[int, str]], dropped: set[SeriesId]
    ) -> None:
        """Log what was left out when it changed; ``total``: the pass's series, uncut."""
        left_out: dict[str, int] = {}
        for series in dropped:
            name = distinct[series][1]
            left_out[name] = left_out.get(name, 0) + 1
        if left_out == (self._logged or {}):
            return
        self._logged = left_out
        if not left_out:
            logger.info("series budget met again", extra={"budget": self.budget})
            return
        logger.warning(
            "series budget exceeded",
            extra={
                "budget": self.budget,
                "series": total,
                "dropped": len(dropped),
                "left_out": dict(sorted(left_out.items())),
            },
        )


def _cut(result: PassResult, dropped: set[SeriesId]) -> PassResult:
    """A copy of ``result`` without the ``dropped`` series (families not cut are shared)."""

    def kept(group: TargetResult) -> TargetResult:
        if not dropped:  # only the families without samples go
            return replace(group, families=[family for family in group.families if family.samples])
        families: list[Metric] = []
        for family in group.families:
            samples = [
                s
                for s in family.samples
                if (s.name, group.target, tuple(sorted(s.labels.items()))) not in dropped
            ]
            if not samples:
                continue
            if len(samples) != len(family.samples):
                copy = Metric(family.name, family.documentation, family.type, family.unit)
                copy.samples = samples
                family = copy
            families.append(family)
        return replace(group, families=families)

    return replace(
        result,
        targets=[kept(group) for group in result.targets],
        collector=kept(result.collector),
    )


def log_projected_cost(sink: object, name: str, series: int, schedule_minutes: int) -> None:
    """The one line a cold start logs after its first pass is sent (SPEC 19)."""
    custom = getattr(sink, "last_custom_metrics", None)
    logger.info(
        "projected cost",
        extra=projected_cost(name, series, schedule_minutes, custom if name == "emf" else None),
    )


def projected_cost(
    sink: str, series: int, schedule_minutes: int, custom_metrics: int | None
) -> dict[str, object]:
    """The cold start's projection (SPEC 19): series per pass and, for the sink chosen, the
    monthly figure its bill counts: CloudWatch custom metrics (EMF: each distinct metric the
    pass made, all month), or samples ingested (remote write: every series every pass)."""
    passes = MINUTES_PER_MONTH // schedule_minutes
    figures: dict[str, object] = {
        "sink": sink,
        "series_per_pass": series,
        "passes_per_month": passes,
    }
    if sink == "emf" and custom_metrics is not None:
        figures["monthly_custom_metrics"] = custom_metrics
    if sink == "remote_write":
        figures["monthly_samples"] = series * passes
    return figures
