"""CloudWatch in a pass: one batch for all targets, one source per target reading from it.

The runner calls ``CloudWatchBatch.start`` before any source runs; the fetch then runs in a
thread of its own, overlapping with the other sources (e.g. PostgreSQL's SQL). Each target's
``CloudWatchSource`` waits for it, at most until the pass deadline, and reads its values.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..config import CloudWatchSettings
from ..model import SourceFailure
from .client import make_client
from .declarations import Declaration, Stat
from .fetch import (
    CONCURRENT_CALLS,
    FetchResult,
    QueryFailure,
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


@dataclass
class _Pass:
    deadline: float
    span: Window
    result: FetchResult
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
        self._declared: list[Stat] = []
        self._current: _Pass | None = None

    def source(self, declarations: Iterable[Declaration]) -> CloudWatchSource:
        """A target's CloudWatch source; its queries join every pass's batch."""
        declared = list(declarations)
        self._declared.extend(d.stat for d in declared)
        return CloudWatchSource(self, declared)

    @property
    def stats(self) -> list[Stat]:
        return list(dict.fromkeys(self._declared))

    def client(self) -> CloudWatchClient:
        with self._client_lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    # --- Prefetch -------------------------------------------------------------------------

    def start(self, deadline: float, stats: Iterable[Stat] | None = None) -> None:
        """Fetch ``stats`` (default: every declared one) in the background until
        ``deadline``; a pass gives the stats of its own targets (a shard's, the current
        ones of a changing fleet)."""
        stats = self.stats if stats is None else list(dict.fromkeys(stats))
        if not stats:
            self._current = None
            return
        span = window(
            self._clock(),
            lookback=self._settings.lookback_seconds,
            end_delay=self._settings.end_delay_seconds,
            periods={s.period for s in stats},
        )
        current = _Pass(deadline, span, FetchResult(stats))
        self._current = current
        # Its own thread, not the target pool: sources waiting for it must never hold the
        # only workers it could run on. A daemon, so a hung call never holds up exit.
        try:
            threading.Thread(
                target=self._run, args=(current,), name="cloudwatch-fetch", daemon=True
            ).start()
        except RuntimeError as exc:  # no thread to be had: the sources report it, the pass goes on
            current.result.fail_unanswered(
                stats, QueryFailure("error", f"fetch not started: {exc}")
            )
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
            current.done.set()
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

    def result(self) -> FetchResult:
        """This pass's values, once fetched; ``SourceFailure`` if not by the deadline."""
        current = self._current
        if current is None:
            raise SourceFailure("error", "the CloudWatch batch was not started this pass")
        if not current.done.wait(timeout=max(0.0, current.deadline - self._monotonic())):
            raise SourceFailure("deadline", "CloudWatch did not answer before the pass deadline")
        return current.result

    def families(self) -> Iterator[Metric]:
        """Pass-wide self-metrics; a fetch still running is reported as far as it got."""
        current = self._current
        if current is None:
            return
        result = current.result
        yield GaugeMetricFamily(CALLS, "GetMetricData calls made this pass.", value=result.calls)
        yield GaugeMetricFamily(
            REQUESTED,
            "Metrics requested from CloudWatch this pass (what GetMetricData is billed by).",
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

    @property
    def batch(self) -> CloudWatchBatch:
        return self._batch

    def collect(self) -> Iterator[Metric]:
        if not self.declarations:
            return
        result = self._batch.result()
        families: dict[str, GaugeMetricFamily] = {}
        failures: list[tuple[Stat, QueryFailure]] = []
        found = 0
        for declaration in self.declarations:
            family = families.get(declaration.output)
            if family is None:
                family = GaugeMetricFamily(
                    declaration.output,
                    declaration.documentation,
                    labels=[name for name, _ in declaration.labels],
                )
                families[declaration.output] = family
            value = result.values.get(declaration.stat)
            if value is not None:
                found += 1
                family.add_metric([v for _, v in declaration.labels], value)
            elif declaration.stat in result.failures:
                failures.append((declaration.stat, result.failures[declaration.stat]))
        for family in families.values():
            if family.samples:
                yield family
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
