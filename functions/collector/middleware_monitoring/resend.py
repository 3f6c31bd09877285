"""Timestamped samples a sink has not delivered yet, kept to go out with its next pass.

A CloudWatch datapoint is offered to one pass only: the batch hands each point out once and
afterwards offers only the newest known (cloudwatch/source.py). For the sinks that send
timestamps (remote write, EMF) a point counts as delivered only once the sink has accepted
it, which its ``SentTimestamps`` records; a point a refused send did not deliver (the
receiver down, a 5xx after the retries, the deadline, a print that failed) is kept here and
added to the next pass the sink sends, on the warm function instance. With a 5-minute
CLOUDWATCH_INTERVAL_SECONDS one refused send would otherwise lose four of five 1-minute
points for good.

What is kept is bounded (MAX_KEPT_POINTS): past it the oldest points are dropped and counted
in ``middleware_sink_points_dropped{sink}``, so a long outage of the receiver costs a known
number of points, not the function's memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.samples import Sample

from .model import PassResult, TargetResult
from .sinks import SentTimestamps, SeriesKey

# About 15 minutes of 1-minute points of 20 CloudWatch metrics on each of 50 targets; a kept
# sample costs a few hundred bytes.
MAX_KEPT_POINTS: Final = 20_000
DROPPED: Final = "middleware_sink_points_dropped"
DROPPED_HELP: Final = (
    "Timestamped points (CloudWatch datapoints) the sink had not delivered and dropped "
    "because what it keeps for re-sending was full, since the last report."
)

# The sink's series key of a sample of a target (how its SentTimestamps knows the series).
KeyOf = Callable[[str, Sample], SeriesKey]


@dataclass(frozen=True)
class _Kept:
    target: str
    family: str
    documentation: str
    type: str
    unit: str
    sample: Sample


class ResendBuffer:
    """One per sink and function instance. ``merge`` before a send, ``keep`` after it."""

    def __init__(self, sent: SentTimestamps, key_of: KeyOf, bound: int | None = None) -> None:
        self._sent = sent
        self._key_of = key_of
        self._bound = MAX_KEPT_POINTS if bound is None else bound
        self._kept: dict[tuple[SeriesKey, float], _Kept] = {}
        self._dropped = 0  # not reported yet
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def merge(self, result: PassResult) -> PassResult:
        """The pass with every kept sample not delivered since added to its target's group
        (a group of its own when the target is not in this pass), unless the pass has that
        sample already. The pass given is not changed."""
        with self._lock:
            kept = [k for (key, when), k in self._kept.items() if self._sent.is_new(key, when)]
        if not kept:
            return result
        present = {
            (self._key_of(group.target, s), float(s.timestamp))
            for group in result.groups()
            for family in group.families
            for s in family.samples
            if s.timestamp is not None
        }
        extra: dict[str, dict[str, Metric]] = {}
        for k in kept:
            if (self._key_of(k.target, k.sample), float(k.sample.timestamp or 0)) in present:
                continue
            families = extra.setdefault(k.target, {})
            family = families.get(k.family)
            if family is None:
                family = families[k.family] = Metric(k.family, k.documentation, k.type, k.unit)
            family.samples.append(k.sample)
        if not extra:
            return result

        def merged(group: TargetResult) -> TargetResult:
            added = extra.pop(group.target, None)
            if not added:
                return group
            families: list[Metric] = []
            for family in group.families:
                more = added.pop(family.name, None)
                if more is None:
                    families.append(family)
                    continue
                copy = Metric(family.name, family.documentation, family.type, family.unit)
                copy.samples = [*more.samples, *family.samples]  # older points first
                families.append(copy)
            return replace(group, families=[*families, *added.values()])

        targets = [merged(group) for group in result.targets]
        collector = merged(result.collector)
        targets += [TargetResult(target, list(f.values()), []) for target, f in extra.items()]
        return replace(result, targets=targets, collector=collector)

    def keep(self, result: PassResult) -> None:
        """After a send of ``result`` (as merged), accepted or not: its timestamped samples
        the sink has not delivered are kept, the rest forgotten; past the bound the oldest
        are dropped and counted."""
        kept: dict[tuple[SeriesKey, float], _Kept] = {}
        for group in result.groups():
            for family in group.families:
                for sample in family.samples:
                    if sample.timestamp is None or sample.name.endswith("_created"):
                        continue
                    key = self._key_of(group.target, sample)
                    when = float(sample.timestamp)
                    if self._sent.is_new(key, when):
                        kept[(key, when)] = _Kept(
                            group.target,
                            family.name,
                            family.documentation,
                            family.type,
                            family.unit,
                            sample,
                        )
        dropped = max(0, len(kept) - self._bound)
        if dropped:
            oldest = sorted(kept, key=lambda item: item[1])[:dropped]
            for item in oldest:
                del kept[item]
        with self._lock:
            self._kept = kept
            self._dropped += dropped

    def dropped_family(self, sink: str) -> Metric:
        """``middleware_sink_points_dropped{sink}``: the points dropped since the last call."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        family = GaugeMetricFamily(DROPPED, DROPPED_HELP, labels=["sink"])
        family.add_metric([sink], dropped)
        return family

    def has_dropped(self) -> bool:
        with self._lock:
            return self._dropped > 0
