"""One AWS read per instance per pass, run as the pass's prefetch (``model.Prefetch``).

Enhanced Monitoring and Performance Insights answer per instance (a log stream, a PI
resource): there is no batched call as CloudWatch's GetMetricData. The reads of a pass start
before any target is collected and run concurrently in threads of their own (at most
``concurrency`` at once), so they never hold the workers that SQL and serverStatus use; each
target's source waits for its own read only, at most until the pass deadline.

An API with a per-account request quota (CloudWatch Logs' GetLogEvents: 25 requests per
second per account and region) is paced per location, below the quota, instead of
throttled and retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol, cast

from prometheus_client import Metric

from ..model import SourceFailure, pass_deadline, seconds_left

logger = logging.getLogger(__name__)


class InstanceRead(Protocol):
    """A source whose values come from one read made by the prefetch."""

    name: str

    def read(self) -> list[Metric]: ...


class Pacer:
    """Call starts at most ``per_second`` a second: each caller waits for its slot. A slot
    past ``deadline`` is not waited for (``SourceFailure`` deadline)."""

    def __init__(
        self,
        per_second: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, deadline: float) -> None:
        with self._lock:
            now = self._monotonic()
            slot = max(now, self._next)
            if slot > deadline:
                raise SourceFailure("deadline", "no request slot left before the pass deadline")
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class InstanceReads:
    """The prefetch of one kind of per-instance read (``name``); lives as long as the
    function instance."""

    def __init__(self, name: str, *, concurrency: int) -> None:
        self.name = name
        self._concurrency = concurrency
        self._planned: list[InstanceRead] = []
        self._futures: dict[int, Future[list[Metric]]] = {}
        self._lock = threading.Lock()

    def plan(self, sources: Iterable[object]) -> None:
        """The next pass reads those of ``sources`` (a shard's share of the fleet's sources)
        that read through this prefetch."""
        self._planned = [
            cast(InstanceRead, s) for s in sources if getattr(s, "reads", None) is self
        ]

    @property
    def planned(self) -> bool:
        return bool(self._planned)

    # --- model.Prefetch ---------------------------------------------------------------------

    def start(self, deadline: float) -> None:
        futures: dict[int, Future[list[Metric]]] = {}
        planned = self._planned
        if planned:
            pool = ThreadPoolExecutor(
                max_workers=min(self._concurrency, len(planned)), thread_name_prefix=self.name
            )
            try:
                for source in planned:
                    futures[id(source)] = pool.submit(self._run, source, deadline)
            except RuntimeError as exc:  # no thread to be had: those sources report it
                logger.warning(
                    "reads not started", extra={"prefetch": self.name, "detail": str(exc)}
                )
            # Reads stuck past the deadline end on their own socket timeouts.
            pool.shutdown(wait=False)
        with self._lock:
            self._futures = futures

    @staticmethod
    def _run(source: InstanceRead, deadline: float) -> list[Metric]:
        if time.monotonic() >= deadline:
            raise SourceFailure("deadline", "not started before the pass deadline")
        with pass_deadline(deadline):
            return source.read()

    def families(self) -> Iterator[Metric]:
        return iter(())

    # --- the sources' side ------------------------------------------------------------------

    def collect(self, source: InstanceRead) -> list[Metric]:
        """``source``'s families of this pass; ``SourceFailure`` if its read failed or did
        not end before the pass deadline."""
        with self._lock:
            future = self._futures.get(id(source))
        if future is None:
            raise SourceFailure("error", f"the {self.name} read was not started this pass")
        try:
            return future.result(timeout=seconds_left(0.0))
        except FutureTimeout:
            raise SourceFailure("deadline", "no answer before the pass deadline") from None
