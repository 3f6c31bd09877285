"""CloudWatch in a pass: one batch for all targets, one source per target reading from it.

The runner calls ``CloudWatchBatch.start`` before any source runs; the fetch then runs in a
thread of its own, overlapping with the other sources (e.g. PostgreSQL's SQL). Each target's
``CloudWatchSource`` waits for it, at most until the pass deadline, and reads its values.

Each metric is asked for at most every CLOUDWATCH_INTERVAL_SECONDS, and never more often than
its own period (Volume*: 300 s). A query brings every datapoint of its window: the ones newer
than the last one handed out are the metric's samples this pass, each with its own time (a
5-minute interval keeps 1-minute points at a fifth of the bill). On a pass that does not ask
(or whose query found nothing new), the newest known point is offered again: the
Pushgateway's group is replaced on every pass and must keep it; the sinks that send timestamps
send it once. State is per ``Stat``, kept while the function instance is warm; after a cold
start the first query looks back over the window (CLOUDWATCH_LOOKBACK_SECONDS).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..aws import AwsFailure
from ..config import CloudWatchSettings
from ..model import SourceFailure
from .client import make_client
from .declarations import Declaration, Stat
from .fetch import (
    CONCURRENT_CALLS,
    FetchResult,
    Window,
    classify,
    fetch,
    window,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

logger = logging.getLogger(__name__)

SOURCE_NAME: Final = "cloudwatch"
CALLS = "middleware_cloudwatch_getmetricdata_calls"
REQUESTED = "middleware_cloudwatch_metrics_requested"
MISSING = "middleware_cloudwatch_metrics_missing"
FAILED = "middleware_cloudwatch_metrics_failed"
_LOGGED_MISSING: Final = 20  # a whole fleet without data should not make one huge log line
# Long enough for every shard a function instance serves to have run in between.
FORGET_AFTER_SECONDS: Final = 3600.0


# (Unix time, value) of datapoints, oldest first.
Points = list[tuple[float, float]]


@dataclass
class _StatState:
    """What the function instance knows of one statistic between passes."""

    # End of the window of its last answered query (whole minutes): when it is due again.
    asked_until: int | None = None
    # Newest datapoint handed to a pass, and the newest one known (time, value).
    handed_until: float | None = None
    newest: tuple[float, float] | None = None
    # When a pass last had it (clock time): a statistic no pass has had for
    # FORGET_AFTER_SECONDS belonged to a target that left.
    planned_at: float = 0.0


@dataclass
class _Pass:
    deadline: float
    span: Window
    # The queries of this pass: the statistics that were due.
    result: FetchResult
    # Every statistic of the pass: what its sources yield (filled once the fetch is done).
    stats: list[Stat] = field(default_factory=list)
    points: dict[Stat, Points] = field(default_factory=dict)
    asked_until: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class CloudWatchBatch:
    """The pass's CloudWatch prefetch (see ``model.Prefetch``). Lives as long as the function
    instance, like its one client."""

    name = SOURCE_NAME

    def __init__(
        self,
        settings: CloudWatchSettings,
        *,
        client_factory: Callable[[], CloudWatchClient] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        concurrent_calls: int = CONCURRENT_CALLS,
    ) -> None:
        self._settings = settings
        self._concurrent_calls = concurrent_calls
        self._client_factory = client_factory or (lambda: make_client(settings))
        self._client: CloudWatchClient | None = None
        self._client_lock = threading.Lock()
        self._clock = clock
        self._monotonic = monotonic
        # Weakly, in the order made: a source goes with its target, its statistics with it
        # (an entry leaves by itself; rebuilding a list per new source was quadratic in a
        # cold start's targets).
        self._sources: weakref.WeakValueDictionary[int, CloudWatchSource] = (
            weakref.WeakValueDictionary()
        )
        self._made = itertools.count()
        self._current: _Pass | None = None
        # Keyed by Stat, so it survives a target being rebuilt between passes.
        self._state: dict[Stat, _StatState] = {}
        self._state_lock = threading.Lock()

    def source(self, declarations: Iterable[Declaration]) -> CloudWatchSource:
        """A target's CloudWatch source; its queries join every pass's batch."""
        source = CloudWatchSource(self, list(declarations))
        self._sources[next(self._made)] = source
        return source

    @property
    def stats(self) -> list[Stat]:
        """The statistics of every source still in use."""
        sources = list(self._sources.values())
        return list(dict.fromkeys(d.stat for source in sources for d in source.declarations))

    def client(self) -> CloudWatchClient:
        with self._client_lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    # --- Prefetch -------------------------------------------------------------------------

    def start(self, deadline: float, stats: Iterable[Stat] | None = None) -> None:
        """Begin the pass for ``stats`` (default: every declared one): query those that are
        due, in the background; the others are served from what earlier queries brought."""
        stats = list(dict.fromkeys(stats)) if stats is not None else self.stats
        if not stats:
            self._current = None
            return
        settings = self._settings
        now = self._clock()
        periods = {s.period for s in stats}
        asked_until = window(
            now, lookback=0, end_delay=settings.end_delay_seconds, periods=periods
        ).end
        with self._state_lock:
            due = [s for s in stats if self._due(s, asked_until)]
            for stat in stats:
                self._state_of(stat).planned_at = now
            for stat in [
                s
                for s, state in self._state.items()
                if now - state.planned_at > FORGET_AFTER_SECONDS
            ]:
                del self._state[stat]
        # The window reaches back over an interval and a period at least, so a query finds
        # every datapoint since the previous one.
        lookback = max(settings.lookback_seconds, settings.interval_seconds + max(periods))
        span = window(
            now,
            lookback=lookback,
            end_delay=settings.end_delay_seconds,
            periods={s.period for s in due} or periods,
        )
        current = _Pass(deadline, span, FetchResult(due), stats, asked_until=asked_until)
        self._current = current
        if not due:
            self._settle(current)
            return
        # Its own thread, not the target pool: sources waiting for it must never hold the
        # only workers it could run on. A daemon, so a hung call never holds up exit.
        try:
            threading.Thread(
                target=self._run, args=(current,), name="cloudwatch-fetch", daemon=True
            ).start()
        except RuntimeError as exc:  # no thread to be had: the sources report it, the pass goes on
            current.result.fail_unanswered(due, AwsFailure("error", f"fetch not started: {exc}"))
            self._settle(current)

    def _state_of(self, stat: Stat) -> _StatState:
        """Its state, made on first use (under ``_state_lock``); not ``setdefault``, which
        would make a throw-away state for every query of every pass."""
        state = self._state.get(stat)
        if state is None:
            state = self._state[stat] = _StatState()
        return state

    def _due(self, stat: Stat, asked_until: int) -> bool:
        state = self._state.get(stat)
        if state is None or state.asked_until is None:
            return True
        # A metric whose last query found nothing (CloudWatch late, a metric not published
        # yet) is asked again after its own period, not a whole interval later.
        every = (
            stat.period
            if state.newest is None
            else max(self._settings.interval_seconds, stat.period)
        )
        return asked_until - state.asked_until >= every

    def _settle(self, current: _Pass) -> None:
        """What each statistic of the pass yields: the datapoints its query brought that are
        newer than the last one handed out, else the newest known. A query answered after
        its pass gave up changes nothing: its points were never handed out."""
        result = current.result
        late = self._monotonic() > current.deadline
        # A set: membership in the list of queries was quadratic in the pass's statistics.
        asked = set(result.stats)
        with self._state_lock:
            for stat in current.stats:
                state = self._state_of(stat)
                if stat in asked and not late and stat not in result.failures:
                    answered = result.points.get(stat)
                    points = sorted(answered.items()) if answered else []
                    state.asked_until = current.asked_until
                    state.newest = points[-1] if points else None
                    handed = state.handed_until
                    fresh = [p for p in points if handed is None or p[0] > handed]
                    if fresh:
                        state.handed_until = fresh[-1][0]
                    current.points[stat] = fresh or points[-1:]
                elif stat not in asked and state.newest is not None:
                    current.points[stat] = [state.newest]
        current.done.set()

    def _run(self, current: _Pass) -> None:
        result = current.result
        try:
            fetch(
                self.client(),
                result.stats,
                current.span,
                deadline=current.deadline,
                result=result,
                monotonic=self._monotonic,
                concurrency=self._concurrent_calls,
            )
        except Exception as exc:  # e.g. the client cannot be built; the pass goes on
            failure = classify(exc)
            logger.warning(
                "CloudWatch fetch failed",
                extra={"reason": failure.reason, "detail": failure.detail},
            )
            result.fail_unanswered(result.stats, failure)
        finally:
            self._settle(current)
        missing = result.missing()
        if missing:
            logger.info(
                "CloudWatch metrics without a datapoint in the window",
                extra={
                    "missing": len(missing),
                    "metrics": [s.describe() for s in missing[:_LOGGED_MISSING]],
                    "window_start": current.span.start,
                    "window_end": current.span.end,
                },
            )

    def ready(self) -> bool:
        """This pass's fetch is done (or there is none to wait for): ``result`` returns at
        once."""
        current = self._current
        return current is None or current.done.is_set()

    def result(self) -> _Pass:
        """This pass, once fetched; ``SourceFailure`` if not by the deadline."""
        current = self._current
        if current is None:
            raise SourceFailure("error", "the CloudWatch batch was not started this pass")
        if not current.done.wait(timeout=max(0.0, current.deadline - self._monotonic())):
            raise SourceFailure("deadline", "CloudWatch did not answer before the pass deadline")
        return current

    def families(self) -> Iterator[Metric]:
        """Pass-wide self-metrics; a fetch still running is reported as far as it got."""
        current = self._current
        if current is None:
            return
        result = current.result
        yield GaugeMetricFamily(CALLS, "GetMetricData calls made this pass.", value=result.calls)
        yield GaugeMetricFamily(
            REQUESTED,
            "Metrics requested from CloudWatch this pass (what GetMetricData is billed by; "
            "0 on a pass where no metric was due).",
            value=result.requested,
        )
        yield GaugeMetricFamily(
            MISSING,
            "CloudWatch metrics with no datapoint in the window this pass (series left out).",
            value=len(result.missing()) if current.done.is_set() else 0,
        )
        yield GaugeMetricFamily(
            FAILED,
            "CloudWatch metrics whose query failed this pass.",
            # Unfinished at the end of the pass: whatever has no value yet is lost this pass.
            value=len(result.failures)
            if current.done.is_set()
            else sum(1 for s in result.stats if s not in result.values),
        )


class CloudWatchSource:
    """One target's CloudWatch series, read from the pass's batch."""

    name = SOURCE_NAME
    # Reads the batch the pass fetched: no worker thread of its own (runner.is_passive).
    passive = True

    def __init__(self, batch: CloudWatchBatch, declarations: list[Declaration]) -> None:
        self._batch = batch
        self.declarations = declarations
        # Each output's place among the families (its first declaration's), so the families
        # come out in declaration order though only those with a datapoint are made.
        self._order = {
            output: rank
            for rank, output in enumerate(dict.fromkeys(d.output for d in declarations))
        }

    @property
    def batch(self) -> CloudWatchBatch:
        return self._batch

    def ready(self) -> bool:
        """Reading it now would not wait for the batch (runner.is_ready)."""
        return self._batch.ready()

    def collect(self) -> Iterator[Metric]:
        if not self.declarations:
            return
        current = self._batch.result()
        result = current.result
        families: dict[str, GaugeMetricFamily] = {}
        failures: list[tuple[Stat, AwsFailure]] = []
        found = 0
        for declaration in self.declarations:
            points = current.points.get(declaration.stat)
            if points:
                found += 1
                # Made only when there is a sample: a target without data (a fleet's
                # resources with no datapoint yet) costs no family at all.
                family = families.get(declaration.output)
                if family is None:
                    family = GaugeMetricFamily(
                        declaration.output,
                        declaration.documentation,
                        labels=[name for name, _ in declaration.labels],
                    )
                    families[declaration.output] = family
                for when, value in points:
                    family.add_metric([v for _, v in declaration.labels], value, timestamp=when)
            elif declaration.stat in result.failures:
                failures.append((declaration.stat, result.failures[declaration.stat]))
        for output in sorted(families, key=self._order.__getitem__):
            yield families[output]
        if failures:
            reason = failures[0][1].reason
            details = sorted({failure.detail for _, failure in failures})
            raise SourceFailure(
                reason,
                f"{len(failures)} of {len(self.declarations)} CloudWatch metrics failed "
                f"({', '.join(stat.metric for stat, _ in failures)}): {'; '.join(details)}",
            )
        if not found:
            # Every metric missing is almost always a wrong id or region, not a quiet database.
            stat = self.declarations[0].stat
            raise SourceFailure(
                "no_data",
                f"no CloudWatch datapoint for any of {len(self.declarations)} metrics of "
                f"{', '.join(f'{n}={v}' for n, v in stat.dimensions)} in {stat.namespace}; "
                "check the id, AWS_REGION and the look-back window",
            )
