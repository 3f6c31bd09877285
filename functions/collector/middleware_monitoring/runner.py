"""One collection pass: every source of every target, concurrently, bounded by a deadline.

Sources are independent of each other, also within one target: a PostgreSQL that hangs
past the deadline (and is ``busy`` on the next pass) never hides the same instance's
CloudWatch values, which are what matter most then. Passive sources (they read a prefetch,
like CloudWatch's one batched call per pass) are read off the workers (on the pass's own
thread, or one reader thread for those waiting for a prefetch), so waiting for the batch
never holds a worker that an active source could use. Likewise a source's
wait on purpose (``model.Later``: a cold-start QPS window) is kept on a timer heap by the
pass's thread, and its rest is submitted to the pool when due: the windows of many cold
targets overlap while the workers serve other targets.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import Metric

from .gc_pause import gc_paused
from .health import health_families, pass_families, target_success_family
from .model import (
    Later,
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
    if ready is None:
        return False
    try:
        return bool(ready())
    except Exception:  # a bug here must not cost the pass: read it in its turn, as before
        logger.exception("passive source readiness failed", extra={"source": source.name})
        return False


def collect_source(
    target: str,
    source: Source,
    deadline: float,
    abandoned: threading.Event | None = None,
    steps: Callable[[], Iterable[Metric | Later]] | None = None,
) -> SourceResult:
    """Run one source (its ``steps()`` when it has them, else ``collect()``), or one
    ``Later`` of it (``steps``: its ``then``); its failure is an outcome, never an
    exception, and what it left for later is in the result. ``abandoned`` is set when the
    pass gave up waiting and already logged the source down: a failure met afterwards is
    that same failure, so it is not logged a second time (in Lambda it would show up in a
    later invocation's log). ``deadline`` is visible to the source through
    ``model.seconds_left()``."""
    run = steps or getattr(source, "steps", None) or source.collect
    started = time.monotonic()
    families: list[Metric] = []
    later: list[tuple[float, Later]] = []
    reason: str | None = None
    detail: str | None = None
    unforeseen: Exception | None = None
    with pass_deadline(deadline):
        try:
            for item in run():
                if isinstance(item, Later):
                    later.append((time.monotonic() + item.delay, item))
                else:
                    families.append(item)
        except SourceFailure as failure:
            reason, detail = failure.reason, failure.detail
        except Exception as exc:  # a bug or an unforeseen error must not cost the other sources
            reason, detail, unforeseen = "error", f"{type(exc).__name__}: {exc}", exc
    duration = time.monotonic() - started
    finished = time.time()
    if reason is None:
        outcome = SourceOutcome(source.name, True, duration)
        return SourceResult(families, outcome, finished, finished, tuple(later))
    (logger.debug if abandoned is not None and abandoned.is_set() else logger.warning)(
        "source down",
        extra={"target": target, "source": source.name, "reason": reason, "detail": detail},
        # The traceback of an unforeseen error goes in the same single line.
        exc_info=unforeseen,
    )
    outcome = SourceOutcome(source.name, False, duration, reason, detail)
    return SourceResult(families, outcome, None, finished, tuple(later))


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


@dataclass(eq=False)
class _Job:
    """One active source in one pass, and what its steps delivered so far."""

    key: tuple[int, int]  # (target index, source index): names are unique, positions keep order
    target: Target
    source: Source
    given_up: threading.Event = field(default_factory=threading.Event)
    result: SourceResult | None = None
    started: float = 0.0  # when its first step started (time.monotonic())

    def add(self, result: SourceResult) -> None:
        """Join a step's result to the earlier ones': the source is up when every step was,
        a failure is the first met, and its duration runs from its start to its last step."""
        earlier = self.result
        if earlier is None:
            self.result = result
            self.started = time.monotonic() - result.outcome.duration_seconds
            return
        up = earlier.outcome.up and result.outcome.up
        failed = earlier.outcome if not earlier.outcome.up else result.outcome
        outcome = SourceOutcome(
            self.source.name,
            up,
            time.monotonic() - self.started,
            None if up else failed.reason,
            None if up else failed.detail,
        )
        self.result = SourceResult(
            [*earlier.families, *result.families],
            outcome,
            result.collected_at if up else None,
            result.collected_at,
        )


def _drop(job: _Job, later: Later, deadline: float) -> None:
    """A step that cannot start before the deadline: the source says so (its own log
    line) and its result stands without what that step would have added."""
    try:
        with pass_deadline(deadline):
            later.dropped()
    except Exception:  # its log line is not worth the pass
        logger.exception(
            "dropping a later step failed",
            extra={"target": job.target.name, "source": job.source.name},
        )


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
    ``workers``: the function instance's pool (None: one for this pass alone).

    The cyclic garbage collector is paused for the pass, as for encoding it (gc_pause.py):
    the pass's families all live until it is sent, and the collector, triggered by their
    number, walked the whole growing heap again and again (a 1,000-target pass spent three
    times the CPU per target of a 100-target one in it). What cyclic garbage the pass makes
    is collected once the collector is back on."""
    with gc_paused():
        return _run_pass(
            targets,
            deadline=deadline,
            max_workers=max_workers,
            collector_instance=collector_instance,
            prefetches=prefetches,
            workers=workers,
        )


def _run_pass(
    targets: list[Target],
    *,
    deadline: float,
    max_workers: int,
    collector_instance: str,
    prefetches: Sequence[Prefetch],
    workers: Workers | None,
) -> PassResult:
    started = time.monotonic()
    for prefetch in prefetches:
        prefetch.start(deadline)
    own = workers is None
    workers = workers or Workers(max_workers)
    pool = workers.pool()
    results: dict[tuple[int, int], SourceResult] = {}
    jobs = [
        _Job((t, s), target, source)
        for t, target in enumerate(targets)
        for s, source in enumerate(target.sources)
        if not is_passive(source)
    ]
    # Sources that were down last pass go last (a stable sort keeps the order otherwise).
    jobs.sort(key=lambda job: job.source.name in job.target.down_last_pass)
    # Each step submitted, and the Later it runs (None: the source's first step). Workers
    # put what they finish on ``finished``: one get per step, where wait(FIRST_COMPLETED) in
    # a loop would go over every pending future again, quadratic in a fleet's sources.
    running: dict[Future[SourceResult], tuple[_Job, Later | None]] = {}
    finished: queue.SimpleQueue[Future[SourceResult]] = queue.SimpleQueue()
    # Laters waiting for their time: (due, order, job, later), soonest first.
    timers: list[tuple[float, int, _Job, Later]] = []
    order = itertools.count()
    submitted: list[Future[SourceResult]] = []

    def submit(job: _Job, later: Later | None) -> None:
        steps = later.then if later is not None else None
        future = pool.submit(
            collect_source, job.target.name, job.source, deadline, job.given_up, steps
        )
        job.target.in_flight[job.source.name] = future
        running[future] = (job, later)
        submitted.append(future)
        future.add_done_callback(finished.put)

    def done(job: _Job, result: SourceResult, closing: bool = False) -> None:
        job.add(result)
        for due, later in result.later:
            if closing or due >= deadline:
                _drop(job, later, deadline)
            else:
                heapq.heappush(timers, (due, next(order), job, later))

    for job in jobs:
        earlier = job.target.in_flight.get(job.source.name)
        if earlier is not None and not earlier.done():
            # Starting it again would stack threads and connections on one stuck server.
            results[job.key] = _given_up(job.target.name, job.source, BUSY_REASON, BUSY_DETAIL, 0.0)
            continue
        submit(job, None)
    # Passive sources only wait for their prefetch (bounded by the deadline) and read it.
    # Those that can be read at once go first (the discovery inventory, a prefetch already
    # done): their work then overlaps the prefetches still running instead of following the
    # slowest of them. The others are read by one reader thread, so the pass's thread keeps
    # the timers meanwhile: a sampling window never waits for CloudWatch's batch.
    unready: list[tuple[int, int, Target, Source]] = []
    for t, target in enumerate(targets):
        for s, source in enumerate(target.sources):
            if not is_passive(source):
                continue
            if is_ready(source):
                results[t, s] = collect_source(target.name, source, deadline, steps=source.collect)
            else:
                unready.append((t, s, target, source))
    read_later: dict[tuple[int, int], SourceResult] = {}

    def read_unready() -> None:
        for t, s, target, source in unready:
            read_later[t, s] = collect_source(target.name, source, deadline, steps=source.collect)

    reader = threading.Thread(target=read_unready, name="passive", daemon=True)
    if unready:
        reader.start()
    while running or timers:
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            _, _, job, due_now = heapq.heappop(timers)
            submit(job, due_now)
        wake = min(deadline, timers[0][0]) if timers else deadline
        if now >= deadline:
            break
        try:
            future = finished.get(timeout=wake - now)
        except queue.Empty:
            continue  # a timer is due, or the deadline has come
        job, _ = running.pop(future)
        done(job, future.result())
    # The deadline: what never got its time or a worker is dropped (the source stays up
    # with what it delivered); what is still running is given up on, as before.
    for _, _, job, waiting in timers:
        _drop(job, waiting, deadline)
    for future, (job, step) in running.items():
        if step is not None and future.cancel():
            _drop(job, step, deadline)
        elif future.done():  # finished between the last wait and now: its own result stands
            done(job, future.result(), closing=True)
        else:
            job.given_up.set()
    if unready:
        reader.join()  # each read waits for its prefetch at most until the deadline
    results.update(read_later)
    for job in jobs:
        if job.key in results:
            continue  # busy
        if job.given_up.is_set() or job.result is None:
            results[job.key] = _given_up(
                job.target.name,
                job.source,
                DEADLINE_REASON,
                DEADLINE_DETAIL,
                time.monotonic() - started,
            )
        else:
            results[job.key] = job.result
    # Stuck workers are left to their own socket timeouts; the pass does not wait for them.
    workers.ran(submitted)
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
