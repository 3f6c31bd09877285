"""What lives as long as a function instance: settings, targets (with their connections
and state) and the sink. Built once on the first invocation, reused while warm."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .config import Settings, load_settings
from .model import PassResult, Target
from .postgres.source import PostgresSource
from .runner import run_pass
from .sinks import PushgatewaySink, Sink, StdoutSink, push_worst_case_seconds


def build_targets(settings: Settings) -> list[Target]:
    targets: list[Target] = []
    if settings.postgres is not None:
        targets.append(Target(settings.postgres.target_name, [PostgresSource(settings.postgres)]))
    if settings.docdb:
        # Imported here: pymongo costs ~65 ms of cold start, paid only when DocumentDB is used.
        from .docdb.source import DocumentDBSource

        for docdb in settings.docdb:
            targets.append(Target(docdb.target_name, [DocumentDBSource(docdb)]))
    return targets


def build_sink(settings: Settings) -> Sink:
    return PushgatewaySink(settings.pushgateway)


@dataclass
class Runtime:
    settings: Settings
    targets: list[Target]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Runtime:
        settings = load_settings(environ)
        return cls(settings, build_targets(settings))

    def collect(self, budget_seconds: float) -> PassResult:
        return run_pass(
            self.targets,
            deadline=time.monotonic() + budget_seconds,
            max_workers=self.settings.max_workers,
            collector_instance=self.settings.collector_instance,
        )

    def push_reserve_seconds(self) -> float:
        """Time kept back from collection so the push can still finish before the deadline."""
        return push_worst_case_seconds(self.settings.pushgateway)


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
