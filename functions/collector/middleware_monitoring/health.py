"""The collector's own health series (SPEC 3.8), pushed with each target's values.

The Pushgateway keeps the last pushed values forever, so staleness must be visible in the
data itself: ``middleware_collector_last_success_timestamp_seconds`` (and the Pushgateway's
own ``push_time_seconds``) let Grafana show how old a target's values are.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from .model import SourceOutcome, TargetResult

UP = "middleware_collector_up"
DURATION = "middleware_collector_duration_seconds"
LAST_SUCCESS = "middleware_collector_last_success_timestamp_seconds"
FAILURE = "middleware_collector_failure"
# In every target's group: which collector deployment pushed it (COLLECTOR_INSTANCE_NAME), so
# that one deployment deletes only its own stale groups, never another's under the same job.
OWNER = "middleware_collector_info"


def health_families(
    outcomes: list[SourceOutcome], last_success: dict[str, float]
) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        UP, "1 if the source delivered all its values this pass, else 0.", labels=["source"]
    )
    duration = GaugeMetricFamily(
        DURATION, "Time spent collecting the source this pass.", labels=["source"]
    )
    failure = GaugeMetricFamily(
        FAILURE,
        "1 for the reason a source is down this pass (absent while it is up).",
        labels=["source", "reason"],
    )
    for outcome in outcomes:
        up.add_metric([outcome.source], 1.0 if outcome.up else 0.0)
        duration.add_metric([outcome.source], outcome.duration_seconds)
        if not outcome.up:
            failure.add_metric([outcome.source, outcome.reason or "error"], 1.0)
    yield up
    yield duration
    if failure.samples:
        yield failure
    yield from _last_success(outcomes, last_success)


def _last_success(
    outcomes: list[SourceOutcome], last_success: dict[str, float]
) -> Iterator[Metric]:
    success = GaugeMetricFamily(
        LAST_SUCCESS,
        "Unix time of the source's last fully successful pass (kept across cold starts: read "
        "back from the Pushgateway).",
        labels=["source"],
    )
    for outcome in outcomes:
        if outcome.source in last_success:
            success.add_metric([outcome.source], last_success[outcome.source])
    if success.samples:
        yield success


def replace_last_success(result: TargetResult, last_success: dict[str, float]) -> None:
    """Give ``result`` the last success times known now (read back after the pass)."""
    result.families[:] = [
        *(family for family in result.families if family.name != LAST_SUCCESS),
        *_last_success(result.outcomes, last_success),
    ]


def pass_families(duration_seconds: float, targets_up: int, targets_down: int) -> Iterator[Metric]:
    """Pass-wide series, pushed under the collector's own instance name."""
    yield GaugeMetricFamily(
        "middleware_pass_duration_seconds",
        "Duration of the whole collection pass.",
        value=duration_seconds,
    )
    targets = GaugeMetricFamily(
        "middleware_pass_targets", "Targets by state this pass.", labels=["state"]
    )
    targets.add_metric(["up"], targets_up)
    targets.add_metric(["down"], targets_down)
    yield targets


def owner_family(collector: str) -> Metric:
    family = GaugeMetricFamily(
        OWNER,
        "1, labelled with the collector deployment (COLLECTOR_INSTANCE_NAME) that pushes the "
        "group; it deletes the group once the target is gone.",
        labels=["collector"],
    )
    family.add_metric([collector], 1.0)
    return family
