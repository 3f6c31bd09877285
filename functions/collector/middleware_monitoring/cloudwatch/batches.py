"""Every CloudWatch batch of a function instance: one per location (region, and role of
another account), since GetMetricData answers for one account and region per call.

As the pass's prefetch it starts the batches the pass's own sources need, each with just
their statistics (a shard's targets, the fleet as it is now), and reports the pass-wide
self-metrics summed over them: what CloudWatch bills is the total.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from prometheus_client import Metric

from ..aws import AwsSessions
from ..config import AwsLocation, CloudWatchSettings
from .client import make_client
from .declarations import Declaration, Stat
from .source import SOURCE_NAME, CloudWatchBatch, CloudWatchSource

_Key = tuple[str | None, str | None]  # (region, role)
_NO_LOCATION: Final = AwsLocation()


class CloudWatchBatches:
    name = SOURCE_NAME

    def __init__(
        self,
        settings: CloudWatchSettings,
        sessions: AwsSessions,
        *,
        batch_factory: Callable[[AwsLocation], CloudWatchBatch] | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._batch_factory = batch_factory or self._new_batch
        # Wall-clock time the batches plan their windows and intervals by (time.time).
        self.clock: Callable[[], float] = time.time
        self._batches: dict[_Key, CloudWatchBatch] = {}
        self._lock = threading.Lock()
        self._planned: list[tuple[CloudWatchBatch, list[Stat]]] = []

    def batch(self, location: AwsLocation = _NO_LOCATION) -> CloudWatchBatch:
        key = (location.region or self._settings.region, location.role_arn)
        with self._lock:
            batch = self._batches.get(key)
            if batch is None:
                batch = self._batches[key] = self._batch_factory(AwsLocation(key[0], key[1]))
            return batch

    def _new_batch(self, location: AwsLocation) -> CloudWatchBatch:
        return CloudWatchBatch(
            self._settings,
            client_factory=lambda: make_client(self._settings, self._sessions, location),
            clock=lambda: self.clock(),
        )

    def source(
        self, declarations: Iterable[Declaration], location: AwsLocation = _NO_LOCATION
    ) -> CloudWatchSource:
        return self.batch(location).source(declarations)

    def plan(self, sources: Iterable[CloudWatchSource]) -> None:
        """What the next pass fetches: the statistics of ``sources``, by batch."""
        by_batch: dict[int, tuple[CloudWatchBatch, list[Stat]]] = {}
        for source in sources:
            entry = by_batch.setdefault(id(source.batch), (source.batch, []))
            entry[1].extend(d.stat for d in source.declarations)
        self._planned = list(by_batch.values())

    # --- model.Prefetch -------------------------------------------------------------------

    def start(self, deadline: float) -> None:
        for batch, stats in self._planned:
            batch.start(deadline, stats)

    def families(self) -> Iterator[Metric]:
        """Each self-metric once, summed over the batches of the pass."""
        merged: dict[str, Metric] = {}
        totals: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for batch, _ in self._planned:
            for family in batch.families():
                merged.setdefault(family.name, family)
                for sample in family.samples:
                    key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                    totals[key] = totals.get(key, 0.0) + sample.value
        for name, family in merged.items():
            summed = Metric(family.name, family.documentation, family.type, family.unit)
            for (family_name, sample_name, labels), value in totals.items():
                if family_name == name:
                    summed.add_sample(sample_name, dict(labels), value)
            yield summed
