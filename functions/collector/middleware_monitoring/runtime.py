"""What lives as long as a function instance: settings, targets (with their connections and
state) and what they share. Built once on the first invocation, reused while warm.

Each pass takes the targets as they are now (environment, targets file or parameter), keeps
the targets whose spec did not change (their connections, QPS snapshots, caches), builds the
new ones and closes those that left; then collects the shard's share of them.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Final

from .bounds import SeriesBudget
from .cloudwatch.source import CloudWatchSource
from .config import (
    Settings,
    TargetSpec,
    load_settings,
    reserved_names,
)
from .config.postgres import mark_server_carriers
from .credentials import SecretStore
from .health import replace_last_success
from .http_answers import describe_pushgateway_failure
from .model import PassResult, Target
from .parameter import TargetsParameter
from .pushgateway_groups import (
    GroupKey,
    Groups,
    delete_groups,
    instance_group,
    read_groups,
    shard_group,
)
from .runner import Workers, run_pass
from .shards import ALL, Shard
from .sinks import PushgatewaySink, Sink, StdoutSink
from .targets import TargetBuilder
from .targets_s3 import TargetsS3Object

logger = logging.getLogger(__name__)

# A target of another shard that this function instance has not collected for this long has
# its connections closed: a warm instance serves whichever shard the platform hands it, and
# must not keep every database of the fleet connected.
IDLE_CLOSE_SECONDS: Final = 300.0


@dataclass
class _Built:
    spec: TargetSpec
    target: Target
    # time.time() of the last pass that collected it.
    collected_at: float


class Runtime:
    def __init__(
        self,
        settings: Settings,
        builder: TargetBuilder | None = None,
        *,
        parameter: TargetsParameter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        # Wall-clock time for ages across invocations: Lambda may freeze monotonic clocks
        # between invocations.
        self._clock = clock
        self.builder = builder or TargetBuilder(settings)
        self._parameter = parameter
        if parameter is None and settings.targets_parameter is not None:
            self._parameter = TargetsParameter(settings, self.builder.sessions)
        self._s3: TargetsS3Object | None = None
        if settings.targets_s3_uri is not None:
            self._s3 = TargetsS3Object(settings, self.builder.sessions)
        self._built: dict[str, _Built] = {}
        self._workers = Workers(settings.max_workers)
        # Read back from the Pushgateway: set by the caller that pushes there (app, CLI).
        self.pushgateway = False
        # Targets whose last success times were read back (or found absent) once.
        self._seeded: set[str] = set()
        # Shards whose leftover groups (per-target layout, retired shards) this function
        # instance deleted: once is enough, nothing pushes that layout any more.
        self._cleaned: set[Shard] = set()
        self._groups: Groups | None = None
        self._groups_error: str | None = None
        # SERIES_BUDGET, applied by whoever sends the pass (it knows the sink).
        self.budget = SeriesBudget(settings.series_budget)
        self._reconcile(self.specs()[0])

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Runtime:
        settings = load_settings(environ)
        runtime = cls(settings)
        runtime.load_parameter()
        return runtime

    # --- targets ----------------------------------------------------------------------------

    def load_parameter(self) -> None:
        """TARGETS_PARAMETER and TARGETS_S3_URI at a cold start: unreadable or wrong, it is a
        configuration error (``ConfigError``), like the environment."""
        if self._parameter is None and self._s3 is None:
            return
        if self._parameter is not None:
            self._parameter.load()
        if self._s3 is not None:
            self._s3.load()
        self._reconcile(self.specs()[0])

    def specs(self) -> tuple[list[TargetSpec], bool]:
        """Every target as it is now, and whether that list is known complete (a parameter
        that could not be re-read, or a discovery unit that failed, keeps its last targets,
        but is not complete)."""
        specs: list[TargetSpec] = list(self.settings.targets)
        complete = True
        if self._parameter is not None:
            document, fresh = self._parameter.current()
            complete = complete and fresh
            specs += document.specs()
        if self._s3 is not None:
            document, fresh = self._s3.current()
            complete = complete and fresh
            specs += document.specs()
        if self.builder.discovery is not None:
            # Configured targets win a name; discovery says so once per name.
            found, fresh = self.builder.discovery.specs({spec.target_name for spec in specs})
            specs += found
            complete = complete and fresh
        return mark_server_carriers(specs), complete

    @property
    def targets(self) -> list[Target]:
        """Every target built in this function instance (all shards it has served)."""
        return [built.target for built in self._built.values()]

    def _reconcile(self, specs: list[TargetSpec]) -> None:
        wanted = {spec.target_name: spec for spec in specs}
        for name in [name for name in self._built if name not in wanted]:
            self._built.pop(name).target.close()
            self._seeded.discard(name)
        for name, spec in wanted.items():
            built = self._built.get(name)
            if built is not None and built.spec == spec:
                continue
            if built is not None:
                built.target.close()
            self._built[name] = _Built(spec, self.builder.build(spec), 0.0)

    # --- a pass -----------------------------------------------------------------------------

    def collect(self, budget_seconds: float, shard: Shard = ALL) -> PassResult:
        deadline = time.monotonic() + budget_seconds
        if self.builder.discovery is not None:
            self.builder.discovery.refresh(budget_seconds, deadline)
        specs, _ = self.specs()
        self._reconcile(specs)
        chosen = [self._built[spec.target_name] for spec in specs if shard.owns(spec.target_name)]
        targets = [built.target for built in chosen]
        cloudwatch = [s for t in targets for s in t.sources if isinstance(s, CloudWatchSource)]
        self.builder.cloudwatch.plan(cloudwatch)
        insights = self.builder.insight_reads()
        for reads in insights:
            reads.plan(s for t in targets for s in t.sources)
        reading = self._start_groups_read(targets, shard, deadline)
        result = run_pass(
            targets,
            deadline=deadline,
            max_workers=self.settings.max_workers,
            collector_instance=self.settings.collector_instance,
            workers=self._workers,
            prefetches=[
                *([self.builder.cloudwatch] if cloudwatch else []),
                *(reads for reads in insights if reads.planned),
            ],
        )
        result.shard = shard.index
        if self.builder.discovery is not None:
            result.collector.families.extend(self.builder.discovery.families())
        if self._s3 is not None:
            result.collector.families.extend(self._s3.families())
        now = self._clock()
        for built in chosen:
            built.collected_at = now
        self._groups = self._finish_groups_read(reading, deadline, targets, result)
        self._close_idle(now, {target.name for target in targets})
        return result

    def _close_idle(self, now: float, collected: set[str]) -> None:
        for name, built in self._built.items():
            if name not in collected and 0 < built.collected_at < now - IDLE_CLOSE_SECONDS:
                built.target.close()
                built.collected_at = 0.0

    # --- what the Pushgateway holds ---------------------------------------------------------

    def _start_groups_read(
        self, targets: list[Target], shard: Shard, deadline: float
    ) -> Future[Groups] | None:
        """Read this collector's groups alongside the pass when it needs them: targets whose
        last success this instance has never known (a cold start, a shard it had not served),
        or leftover groups this instance has not deleted yet."""
        gateway = self.settings.pushgateway
        if not self.pushgateway or gateway.url is None:
            return None
        if shard in self._cleaned and all(t.name in self._seeded for t in targets):
            return None
        future: Future[Groups] = Future()
        timeout = max(0.1, min(gateway.timeout_seconds, deadline - time.monotonic()))

        def read() -> None:
            try:
                future.set_result(read_groups(gateway, self.settings.collector_instance, timeout))
            except Exception as exc:
                future.set_exception(exc)

        threading.Thread(target=read, name="pushgateway-read", daemon=True).start()
        return future

    def _finish_groups_read(
        self,
        reading: Future[Groups] | None,
        deadline: float,
        targets: list[Target],
        result: PassResult,
    ) -> Groups | None:
        if reading is None:
            return None
        try:
            groups = reading.result(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            # Said after a push that worked (remove_stale_groups): when the Pushgateway is
            # down, the failed push is the one line that says so.
            self._groups_error = (
                describe_pushgateway_failure(exc) if str(exc) else type(exc).__name__
            )
            return None
        self._groups_error = None
        for target, target_result in zip(targets, result.targets, strict=True):
            if target.name in self._seeded:
                continue
            self._seeded.add(target.name)
            pushed = groups.last_success.get(target.name, {})
            # What this instance saw itself is newer than what any earlier one pushed.
            unknown = {s: t for s, t in pushed.items() if s not in target.last_success}
            target_success = groups.target_success.get(target.name)
            known_success = target.succeeded_at is not None or target_success is None
            if unknown or not known_success:
                target.last_success.update(unknown)
                if not known_success:
                    target.succeeded_at = target_result.target_succeeded_at = target_success
                replace_last_success(target_result, target.last_success, target.succeeded_at)
        return groups

    def remove_stale_groups(self, shard: Shard, deadline: float) -> list[str]:
        """After a pushed pass: delete this collector's groups that no pass replaces any
        more (SPEC 15): its groups of the per-target layout whose target this shard owns
        (shard 0 also its own series' groups of that layout), and, from shard 0, its shard
        groups at or above the shard count. Once per function instance and shard, when the
        groups were read this pass; never raises. Returns the deleted groups."""
        if self._groups_error is not None:
            logger.warning(
                "Pushgateway groups not read",
                extra={
                    "detail": f"{self._groups_error}: last success times of targets new to "
                    "this function instance are not known this pass, and no leftover group "
                    "is deleted",
                },
            )
            self._groups_error = None
        if self._groups is None or shard in self._cleaned:
            return []
        leftover = _leftover_groups(self._groups, self.settings.collector_instance, shard)
        deleted, failed = delete_groups(self.settings.pushgateway, leftover, deadline)
        if deleted:
            logger.info("leftover groups deleted", extra={"groups": deleted})
        if failed:
            logger.warning(
                "leftover groups not deleted",
                extra={"detail": "; ".join(failed), "groups": len(failed)},
            )
        else:
            self._cleaned.add(shard)
        return deleted

    def close(self) -> None:
        for built in self._built.values():
            built.target.close()
        self._workers.close()


def _leftover_groups(groups: Groups, collector: str, shard: Shard) -> list[GroupKey]:
    """The groups ``shard`` deletes: per-target groups of the targets it owns (by name, so
    every old group has one shard to delete it, target gone or not); from shard 0 the
    collector's own old groups and the shard groups the shard count no longer has."""
    own_names = reserved_names(collector)
    leftover = [
        instance_group(instance)
        for instance in groups.per_target
        if (shard.index == 0 if own_names.fullmatch(instance) else shard.owns(instance))
    ]
    if shard.index == 0:
        leftover += [shard_group(collector, n) for n in groups.shards if n >= shard.count]
    return leftover


def build_sink(settings: Settings, secrets: SecretStore | None = None) -> Sink:
    if settings.sink == "emf":
        from .emf import EmfSink

        return EmfSink(settings.emf_namespace, settings.emf_metrics)
    if settings.sink == "remote_write":
        from .remote_write import RemoteWriteSink

        store = None
        if settings.remote_write.secret_arn is not None:
            store = secrets or SecretStore(settings.secret_store)
        return RemoteWriteSink(settings.remote_write, settings.pushgateway.job, secrets=store)
    return PushgatewaySink(settings.pushgateway)


def collection_budget(remaining_seconds: float, reserve_seconds: float) -> float:
    """Time the pass may collect: what is left before the deadline less what the push may
    take. A reserve above half the time left would leave collection (almost) nothing, every
    target down by deadline; then half is kept for each, and the log says which settings
    to change."""
    if reserve_seconds <= remaining_seconds / 2:
        return remaining_seconds - reserve_seconds
    logger.warning(
        "push reserve too large for the function timeout",
        extra={
            "detail": f"the push may take {reserve_seconds:.1f} s with every attempt timing out, "
            f"of {remaining_seconds:.1f} s left: collecting for half of it. Lower "
            "PUSHGATEWAY_TIMEOUT_SECONDS / PUSHGATEWAY_RETRIES (REMOTE_WRITE_TIMEOUT_SECONDS / "
            "REMOTE_WRITE_RETRIES, KAFKA_TIMEOUT_SECONDS) or raise the function timeout",
        },
    )
    return remaining_seconds / 2


def stdout_sink() -> Sink:
    return StdoutSink(sys.stdout.buffer.write)


def summary(result: PassResult) -> dict[str, object]:
    """What an invocation returns and logs: short enough to read in the Lambda console."""
    down = [t.target for t in result.targets if not t.up]
    return {
        "targets_up": len(result.targets) - len(down),
        "targets_down": down,
        "series": result.series_count(),
        "duration_seconds": round(result.duration_seconds, 3),
    }
