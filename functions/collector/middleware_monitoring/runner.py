"""One collection pass: every target's sources, concurrently, bounded by a deadline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Final

from prometheus_client import Metric

from .health import health_families, pass_families
from .model import (
    PassResult,
    Prefetch,
    SourceFailure,
    SourceOutcome,
    Target,
    TargetResult,
    pass_deadline,
)

logger = logging.getLogger(__name__)

DEADLINE_REASON: Final = "deadline"
DEADLINE_DETAIL: Final = "not finished before the pass deadline"
BUSY_REASON: Final = "busy"
BUSY_DETAIL: Final = "an earlier pass is still collecting it (stuck past its deadline)"


def collect_target(
    target: Target, abandoned: threading.Event | None = None, deadline: float | None = None
) -> TargetResult:
    """Run each source of one target; a failing source never stops the others.
    ``abandoned`` is set when the pass gave up waiting and already logged the target down:
    a failure met afterwards is that same failure, so it is not logged a second time (in
    Lambda it would show up in a later invocation's log). ``deadline`` is the pass's,
    visible to the sources through ``model.seconds_left()``."""
    if deadline is not None:
        with pass_deadline(deadline):
            return collect_target(target, abandoned)
    families: list[Metric] = []
    outcomes: list[SourceOutcome] = []
    succeeded_at: dict[str, float] = {}
    for source in target.sources:
        started = time.monotonic()
        reason: str | None = None
        detail: str | None = None
        unforeseen: Exception | None = None
        try:
            for family in source.collect():
                families.append(family)
        except SourceFailure as failure:
            reason, detail = failure.reason, failure.detail
        except Exception as exc:  # a bug or an unforeseen error must not cost the other sources
            reason, detail, unforeseen = "error", f"{type(exc).__name__}: {exc}", exc
        duration = time.monotonic() - started
        if reason is None:
            succeeded_at[source.name] = time.time()
        else:
            (logger.debug if abandoned is not None and abandoned.is_set() else logger.warning)(
                "source down",
                extra={
                    "target": target.name,
                    "source": source.name,
                    "reason": reason,
                    "detail": detail,
                },
                # The traceback of an unforeseen error goes in the same single line.
                exc_info=unforeseen,
            )
        outcomes.append(SourceOutcome(source.name, reason is None, duration, reason, detail))
    families.extend(health_families(outcomes, {**target.last_success, **succeeded_at}))
    return TargetResult(target.name, families, outcomes, succeeded_at)


def _down(target: Target, reason: str, detail: str, waited: float) -> TargetResult:
    """Every source of a target that was not (fully) collected this pass, in one log line;
    with the series a source always sends (``pg_up 0``...) and the time the pass waited."""
    families: list[Metric] = []
    for source in target.sources:
        down_families = getattr(source, "down_families", None)
        if down_families is not None:
            families.extend(down_families())
    outcomes = [
        SourceOutcome(source.name, False, waited, reason, detail) for source in target.sources
    ]
    logger.warning("source down", extra={"target": target.name, "reason": reason, "detail": detail})
    families.extend(health_families(outcomes, target.last_success))
    return TargetResult(target.name, families, outcomes)


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
) -> PassResult:
    """Collect every target; ``deadline`` is a ``time.monotonic()`` value after which
    unfinished targets are reported down instead of waited for. ``prefetches`` start first
    and run alongside the targets (e.g. one CloudWatch batch that several targets read)."""
    started = time.monotonic()
    for prefetch in prefetches:
        prefetch.start(deadline)
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="collect")
    results: dict[str, TargetResult] = {}
    futures: dict[Future[TargetResult], Target] = {}
    abandoned: dict[Future[TargetResult], threading.Event] = {}
    for target in targets:
        if target.in_flight is not None and not target.in_flight.done():
            # Starting it again would stack threads and connections on one stuck server.
            results[target.name] = _down(target, BUSY_REASON, BUSY_DETAIL, 0.0)
            continue
        given_up = threading.Event()
        target.in_flight = pool.submit(collect_target, target, given_up, deadline)
        futures[target.in_flight] = target
        abandoned[target.in_flight] = given_up
    pending = set(futures)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        done, pending = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
        for future in done:
            results[futures[future].name] = future.result()
    for future in pending:
        if future.done():  # finished between the last wait and now: its own result stands
            results[futures[future].name] = future.result()
            continue
        abandoned[future].set()
        results[futures[future].name] = _down(
            futures[future], DEADLINE_REASON, DEADLINE_DETAIL, time.monotonic() - started
        )
    # Stuck workers are left to their own socket timeouts; the pass does not wait for them.
    pool.shutdown(wait=False, cancel_futures=True)

    ordered = [results[target.name] for target in targets]
    for target, result in zip(targets, ordered, strict=True):
        target.last_success.update(result.succeeded_at)
    duration = time.monotonic() - started
    up = sum(1 for result in ordered if result.up)
    pass_wide = list(pass_families(duration, up, len(ordered) - up))
    for prefetch in prefetches:
        pass_wide.extend(_prefetch_families(prefetch))
    collector = TargetResult(collector_instance, pass_wide, [])
    return PassResult(ordered, duration, collector)
