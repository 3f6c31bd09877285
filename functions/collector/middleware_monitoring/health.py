"""The collector's own health series (SPEC 3.8), pushed with each target's values.

The Pushgateway keeps the last pushed values forever, so staleness must be visible in the
data itself, whatever the sink: ``middleware_pass_timestamp_seconds`` (per shard, in the
collector's series) says when a shard last finished a pass, and
``middleware_target_last_success_timestamp_seconds`` /
``middleware_collector_last_success_timestamp_seconds`` when a target / a source last
delivered everything. Alert rules and dashboards use them, not the Pushgateway's own
``push_time_seconds``, which remote write and EMF do not have.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from .model import SourceOutcome, TargetResult

UP = "middleware_collector_up"
DURATION = "middleware_collector_duration_seconds"
LAST_SUCCESS = "middleware_collector_last_success_timestamp_seconds"
TARGET_LAST_SUCCESS = "middleware_target_last_success_timestamp_seconds"
PASS_TIMESTAMP = "middleware_pass_timestamp_seconds"
FAILURE = "middleware_collector_failure"
# Pushed by earlier versions in every per-target group: which collector deployment
# (COLLECTOR_INSTANCE_NAME) pushed it. Read back only, to find this collector's groups of the
# per-target layout and delete them (pushgateway_groups.py).
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


def target_success_family(succeeded_at: float | None) -> Iterator[Metric]:
    """The target's last pass in which every source delivered all its values (absent until
    one did)."""
    if succeeded_at is not None:
        yield GaugeMetricFamily(
            TARGET_LAST_SUCCESS,
            "Unix time of the target's last pass in which every source delivered all its "
            "values (kept across cold starts: read back from the Pushgateway).",
            value=succeeded_at,
        )


def replace_last_success(
    result: TargetResult, last_success: dict[str, float], target_succeeded_at: float | None
) -> None:
    """Give ``result`` the last success times known now (read back after the pass)."""
    result.families[:] = [
        *(
            family
            for family in result.families
            if family.name not in (LAST_SUCCESS, TARGET_LAST_SUCCESS)
        ),
        *_last_success(result.outcomes, last_success),
        *target_success_family(target_succeeded_at),
    ]


def pass_families(
    duration_seconds: float, targets_up: int, targets_down: int, finished_at: float
) -> Iterator[Metric]:
    """Pass-wide series, sent as the collector's own (its shard's)."""
    yield GaugeMetricFamily(
        "middleware_pass_duration_seconds",
        "Duration of the whole collection pass.",
        value=duration_seconds,
    )
    yield GaugeMetricFamily(
        PASS_TIMESTAMP,
        "Unix time the shard's last pass finished collecting: its age says a stopped shard "
        "or collector, whatever the sink.",
        value=finished_at,
    )
    targets = GaugeMetricFamily(
        "middleware_pass_targets", "Targets by state this pass.", labels=["state"]
    )
    targets.add_metric(["up"], targets_up)
    targets.add_metric(["down"], targets_down)
    yield targets
