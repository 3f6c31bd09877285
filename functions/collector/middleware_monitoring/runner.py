"""One collection pass: every source of every target, concurrently, bounded by a deadline.

Sources are independent of each other, also within one target: a PostgreSQL that hangs
past the deadline (and is ``busy`` on the next pass) never hides the same instance's
CloudWatch values, which are what matter most then. Passive sources (they read a prefetch,
like CloudWatch's one batched call per pass) are read on the pass's own thread, so waiting
for the batch never holds a worker that an active source could use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Final

from prometheus_client import Metric

from .health import health_families, pass_families, target_success_family
from .model import (
    PassResult,
    Prefetch,
    Source,
    SourceFailure,
    SourceOutcome,
    SourceResult,
    Target,
    TargetResult,
    pass_deadline,
)

logger = logging.getLogger(__name__)

DEADLINE_REASON: Final = "deadline"
DEADLINE_DETAIL: Final = "not finished before the pass deadline"
BUSY_REASON: Final = "busy"
BUSY_DETAIL: Final = "an earlier pass is still collecting it (stuck past its deadline)"


def is_passive(source: Source) -> bool:
    return bool(getattr(source, "passive", False))


def is_ready(source: Source) -> bool:
    """A passive source that says reading it now will not wait (``ready()``); one that
    does not say is read after those that are."""
    ready = getattr(source, "ready", None)
    return bool(ready()) if ready is not None else False


def collect_source(
    target: str,
    source: Source,
    deadline: float,
    abandoned: threading.Event | None = None,
) -> SourceResult:
    """Run one source; its failure is an outcome, never an exception. ``abandoned`` is set
    when the pass gave up waiting and already logged the source down: a failure met
    afterwards is that same failure, so it is not logged a second time (in Lambda it would
    show up in a later invocation's log). ``deadline`` is visible to the source through
    ``model.seconds_left()``."""
    started = time.monotonic()
    families: list[Metric] = []
    reason: str | None = None
    detail: str | None = None
    unforeseen: Exception | None = None
    with pass_deadline(deadline):
        try:
            for family in source.collect():
                families.append(family)
        except SourceFailure as failure:
            reason, detail = failure.reason, failure.detail
        except Exception as exc:  # a bug or an unforeseen error must not cost the other sources
            reason, detail, unforeseen = "error", f"{type(exc).__name__}: {exc}", exc
    duration = time.monotonic() - started
    finished = time.time()
    if reason is None:
        return SourceResult(
            families, SourceOutcome(source.name, True, duration), finished, finished
        )
    (logger.debug if abandoned is not None and abandoned.is_set() else logger.warning)(
        "source down",
        extra={"target": target, "source": source.name, "reason": reason, "detail": detail},
        # The traceback of an unforeseen error goes in the same single line.
        exc_info=unforeseen,
    )
    outcome = SourceOutcome(source.name, False, duration, reason, detail)
    return SourceResult(families, outcome, None, finished)


def _given_up(target: str, source: Source, reason: str, detail: str, waited: float) -> SourceResult:
    """A source not (fully) collected this pass, in one log line; with the series it always
    sends (``pg_up 0``...) and the time the pass waited for it."""
    down_families = getattr(source, "down_families", None)
    families: list[Metric] = list(down_families()) if down_families is not None else []
    logger.warning(
        "source down",
        extra={"target": target, "source": source.name, "reason": reason, "detail": detail},
    )
    return SourceResult(families, SourceOutcome(source.name, False, waited, reason, detail))


def _target_result(target: Target, results: list[SourceResult]) -> TargetResult:
    families = [family for result in results for family in result.families]
    outcomes = [result.outcome for result in results]
    succeeded_at = {
        result.outcome.source: result.succeeded_at
        for result in results
        if result.succeeded_at is not None
    }
    families.extend(health_families(outcomes, {**target.last_success, **succeeded_at}))
    collected = [r.collected_at for r in results if r.collected_at is not None]
    collected_at = max(collected, default=time.time())
    target_succeeded_at = (
        collected_at if all(outcome.up for outcome in outcomes) else target.succeeded_at
    )
    families.extend(target_success_family(target_succeeded_at))
    return TargetResult(
        target.name, families, outcomes, succeeded_at, collected_at, target_succeeded_at
    )


class Workers:
    """The worker threads of a function instance's passes: one pool, made once, not one per
    pass (starting its threads again was 12% of a warm pass's interpreter time). A pass
    that left a worker stuck (a server gone silent past the deadline) hands the next pass a
    new pool, so stuck threads never take the next pass's workers; the old pool is left to
    its threads' socket timeouts."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._last: list[Future[SourceResult]] = []
        self.pools_made = 0

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None or not all(future.done() for future in self._last):
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="collect"
            )
            self.pools_made += 1
        return self._pool

    def ran(self, futures: list[Future[SourceResult]]) -> None:
        self._last = futures

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _prefetch_families(prefetch: Prefetch) -> list[Metric]:
    try:
        return list(prefetch.families())
    except Exception:  # its self-metrics are not worth the pass
        logger.exception("prefetch self-metrics failed", extra={"prefetch": prefetch.name})
        return []


def run_pass(
    targets: list[Target],
    *,
    deadline: float,
    max_workers: int,
    collector_instance: str,
    prefetches: Sequence[Prefetch] = (),
    workers: Workers | None = None,
) -> PassResult:
    """Collect every target; ``deadline`` is a ``time.monotonic()`` value after which
    unfinished sources are reported down instead of waited for. ``prefetches`` start first
    and run alongside the sources (e.g. one CloudWatch batch that several targets read).
    ``workers``: the function instance's pool (None: one for this pass alone)."""
    started = time.monotonic()
    for prefetch in prefetches:
        prefetch.start(deadline)
    own = workers is None
    workers = workers or Workers(max_workers)
    pool = workers.pool()
    # Keyed by (target index, source index): names are unique, but positions keep order.
    results: dict[tuple[int, int], SourceResult] = {}
    running: dict[Future[SourceResult], tuple[int, int, threading.Event]] = {}
    active = [
        (t, s, target, source)
        for t, target in enumerate(targets)
        for s, source in enumerate(target.sources)
        if not is_passive(source)
    ]
    # Sources that were down last pass go last (a stable sort keeps the order otherwise).
    active.sort(key=lambda job: job[3].name in job[2].down_last_pass)
    for t, s, target, source in active:
        earlier = target.in_flight.get(source.name)
        if earlier is not None and not earlier.done():
            # Starting it again would stack threads and connections on one stuck server.
            results[t, s] = _given_up(target.name, source, BUSY_REASON, BUSY_DETAIL, 0.0)
            continue
        given_up = threading.Event()
        future = pool.submit(collect_source, target.name, source, deadline, given_up)
        target.in_flight[source.name] = future
        running[future] = (t, s, given_up)
    # Passive sources only wait for their prefetch (bounded by the deadline) and read it.
    # Those that can be read at once go first (the discovery inventory, a prefetch already
    # done): their work then overlaps the prefetches still running instead of following the
    # slowest of them.
    waiting: list[tuple[int, int, Target, Source]] = []
    for t, target in enumerate(targets):
        for s, source in enumerate(target.sources):
            if not is_passive(source):
                continue
            if is_ready(source):
                results[t, s] = collect_source(target.name, source, deadline)
            else:
                waiting.append((t, s, target, source))
    for t, s, target, source in waiting:
        results[t, s] = collect_source(target.name, source, deadline)
    pending = set(running)
    # as_completed, not wait(FIRST_COMPLETED) in a loop: each wait() goes over every pending
    # future again, quadratic in a fleet's sources.
    try:
        for future in as_completed(running, timeout=max(0.0, deadline - time.monotonic())):
            t, s, _ = running[future]
            results[t, s] = future.result()
            pending.discard(future)
    except TimeoutError:
        pass  # the deadline: what is still pending is reported below
    for future in pending:
        t, s, given_up = running[future]
        if future.done():  # finished between the last wait and now: its own result stands
            results[t, s] = future.result()
            continue
        given_up.set()
        results[t, s] = _given_up(
            targets[t].name,
            targets[t].sources[s],
            DEADLINE_REASON,
            DEADLINE_DETAIL,
            time.monotonic() - started,
        )
    # Stuck workers are left to their own socket timeouts; the pass does not wait for them.
    workers.ran(list(running))
    if own:
        workers.close()

    ordered = [
        _target_result(target, [results[t, s] for s in range(len(target.sources))])
        for t, target in enumerate(targets)
    ]
    for target, result in zip(targets, ordered, strict=True):
        target.last_success.update(result.succeeded_at)
        target.succeeded_at = result.target_succeeded_at
        target.down_last_pass = {o.source for o in result.outcomes if not o.up}
    duration = time.monotonic() - started
    up = sum(1 for result in ordered if result.up)
    pass_wide = list(pass_families(duration, up, len(ordered) - up, time.time()))
    for prefetch in prefetches:
        pass_wide.extend(_prefetch_families(prefetch))
    collector = TargetResult(collector_instance, pass_wide, [])
    return PassResult(ordered, duration, collector)
