"""Plain data of a collection pass: targets, their sources, and what each pass produced."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Metric
from prometheus_client.samples import Sample

# The pass deadline (a ``time.monotonic()`` value) of the source collecting in this thread:
# sources that wait on purpose (a sampling window) or choose a timeout ask it, so no source
# outlives its pass by design.
_PASS_DEADLINE: ContextVar[float | None] = ContextVar("pass_deadline", default=None)


def seconds_left(default: float | None = None) -> float | None:
    """Time left before the pass deadline (never negative); ``default`` outside a pass."""
    deadline = _PASS_DEADLINE.get()
    if deadline is None:
        return default
    return max(0.0, deadline - time.monotonic())


@contextmanager
def pass_deadline(deadline: float) -> Iterator[None]:
    token = _PASS_DEADLINE.set(deadline)
    try:
        yield
    finally:
        _PASS_DEADLINE.reset(token)


@dataclass(frozen=True)
class Later:
    """The rest of a source's collection, ``delay`` seconds after it was yielded: what
    ``steps()`` yields where ``collect()`` would wait (a sampling window). The runner runs
    ``then`` (on a worker, like the first step; it yields families and may raise
    ``SourceFailure``) once the delay has passed, so no worker is held while it waits; one
    that cannot start before the pass deadline is not run: ``dropped`` is called instead
    (under the pass deadline, on the pass's thread) and the series it would have added are
    absent this pass."""

    delay: float
    then: Callable[[], Iterator[Metric | Later]]
    dropped: Callable[[], None] = lambda: None


def in_place(
    steps: Iterable[Metric | Later], sleep: Callable[[float], None] = time.sleep
) -> Iterator[Metric]:
    """A source's ``steps()`` as ``collect()``: each ``Later`` waited for where it is
    yielded, on the calling thread (outside a runner: tests, benches, a direct caller)."""
    for step in steps:
        if isinstance(step, Later):
            if step.delay > 0:
                sleep(step.delay)
            yield from in_place(step.then(), sleep)
        else:
            yield step


class SourceFailure(Exception):
    """A source could not deliver (all or part of) its values.

    ``reason`` is a short stable token (``unreachable``, ``timeout``, ``auth_failed``, ``tls``,
    ``statement_timeout``, ...) used as a label; ``detail`` is the human sentence for the log.
    Families the source yielded before raising are still sent.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Source(Protocol):
    """One kind of data about one target. ``collect`` yields metric families, like a
    prometheus_client custom collector, and raises ``SourceFailure`` to report that it is down.
    Sources live as long as the function instance, so they may keep state between passes.

    A source may also define ``down_families()``: the series it must send even when the pass
    gives up waiting for it (``pg_up 0``, ``mongo_up 0``: SPEC says they are always there);
    ``close()``: drop its connections; and ``passive = True``: it only reads what a prefetch
    fetched (CloudWatch), so it needs no worker thread of its own. A passive source may say
    with ``ready()`` that reading it now would not wait; the pass reads those first.

    A source that waits on purpose (a sampling window) defines ``steps()``: what
    ``collect()`` yields, except that where ``collect()`` would wait it yields a ``Later``
    (``collect()`` is then ``in_place(self.steps())``). The runner calls ``steps()`` when it
    is there, so the wait holds no worker and the windows of many targets overlap."""

    name: str

    def collect(self) -> Iterator[Metric]: ...


class Prefetch(Protocol):
    """Work done once per pass for many targets' sources, e.g. one batched CloudWatch call
    instead of one per target. The runner calls ``start`` before any source runs (it must
    return at once, doing its work in the background, and never raise); the sources that
    need it wait for it themselves, at most until ``deadline`` (a ``time.monotonic()``
    value). ``families`` gives its pass-wide self-metrics once the targets are done."""

    name: str

    def start(self, deadline: float) -> None: ...

    def families(self) -> Iterator[Metric]: ...


@dataclass
class Target:
    """A monitored thing; its name is the ``instance`` of every series it produces."""

    name: str
    sources: list[Source]
    # Wall-clock time of each source's last successful pass, kept while the instance is warm.
    last_success: dict[str, float] = field(default_factory=dict)
    # Wall-clock time of its last pass in which every source succeeded.
    succeeded_at: float | None = None
    # Per source, the worker that is (or was last) collecting it; a worker stuck past its
    # pass's deadline keeps its entry, and that source is not collected again until it is free.
    in_flight: dict[str, Future[SourceResult]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Sources that were down last pass: they start after the others, so servers that hang
    # cannot hold every worker while healthy targets wait.
    down_last_pass: set[str] = field(default_factory=set, repr=False, compare=False)

    def close(self) -> None:
        """Drop its sources' connections (their state stays: a later pass reconnects)."""
        for source in self.sources:
            close = getattr(source, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # it is being dropped anyway
                    close()


@dataclass(frozen=True)
class SourceOutcome:
    source: str
    up: bool
    duration_seconds: float
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class SourceResult:
    """What one source delivered in one pass."""

    families: list[Metric]
    outcome: SourceOutcome
    # Wall-clock time it succeeded, None when it did not.
    succeeded_at: float | None = None
    # Wall-clock time its values were read (the end of its collection).
    collected_at: float | None = None
    # What is still to run (``Later``), each with when it is due (a ``time.monotonic()``
    # value); the source's result is complete once they ran or were dropped.
    later: tuple[tuple[float, Later], ...] = ()


@dataclass
class TargetResult:
    target: str
    families: list[Metric]
    outcomes: list[SourceOutcome]
    # When each source succeeded in this result; the runner records it on the target only
    # for a result the pass accepted (a late worker's success was never delivered).
    succeeded_at: dict[str, float] = field(default_factory=dict)
    # Wall-clock time the target's values were read (the last of its sources to finish):
    # the timestamp sinks give samples that carry none of their own.
    collected_at: float | None = None
    # Its last pass with every source up (this one's ``collected_at`` when it was).
    target_succeeded_at: float | None = None

    @property
    def up(self) -> bool:
        return all(outcome.up for outcome in self.outcomes)


@dataclass
class PassResult:
    targets: list[TargetResult]
    duration_seconds: float
    # Pass-wide series, sent under the collector's own instance name.
    collector: TargetResult
    # The shard that collected it (0 when not sharded): with the collector's name, the
    # Pushgateway group it replaces, and the ``shard`` label of the collector's series.
    shard: int = 0

    def groups(self) -> list[TargetResult]:
        """Everything to send: one group per target, then the collector's."""
        return [*self.targets, self.collector]

    def series_count(self) -> int:
        return sum(len(family.samples) for group in self.groups() for family in group.families)


class FrozenFamilies:
    """A collector that yields families gathered earlier in the pass."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def with_instance_label(results: Iterable[TargetResult]) -> list[Metric]:
    """Merge several targets' families into one set, each sample labelled with its
    ``instance``; what the Pushgateway's grouping key does for pushes, pull mode and
    stdout need as a label."""
    merged: dict[str, Metric] = {}
    for result in results:
        for family in result.families:
            target = merged.get(family.name)
            if target is None:
                target = Metric(family.name, family.documentation, family.type, family.unit)
                merged[family.name] = target
            target.samples.extend(
                Sample(
                    s.name,
                    {**s.labels, "instance": result.target},
                    s.value,
                    s.timestamp,
                    s.exemplar,
                )
                for s in family.samples
            )
    return list(merged.values())
