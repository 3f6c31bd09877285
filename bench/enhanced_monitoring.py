"""What Enhanced Monitoring costs a warm pass at fleet size, against the floor of the same
CloudWatch Logs calls made directly.

    .venv/bin/python -m bench.enhanced_monitoring [--quick]

- warm pass: the Enhanced Monitoring prefetch of a warm function instance for N instances
  (each stream holding one event of the RDS shape of tests/standins/rdsosmetrics.py): start,
  then every instance's source collected (GetLogEvents, newest event, parsed into its
  rds_os_* series), as a pass does it;
- floor: the very GetLogEvents calls of a pass (same streams, same arguments), made with one
  plain boto3 client at the same concurrency, answers dropped: what the pass cannot be
  faster than without changing its calls.

Against moto's CloudWatch Logs in server mode on this machine. moto has no request quota,
so both run unpaced; in AWS, GetLogEvents' quota (25 requests per second per account and
region) bounds a pass instead: the collector paces itself to 20 per second, which the
``paced_pass_lower_bound_s`` figure states for N instances. Passes and floors alternate, so
a machine busy with something else slows both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.section import Goal, Section, Table
from middleware_monitoring.aws import AwsSessions
from middleware_monitoring.config import HERE, InsightsSettings
from middleware_monitoring.insights.enhanced_monitoring import (
    CONCURRENT_READS,
    LOG_GROUP,
    LOGS_CALLS_PER_SECOND,
    EnhancedMonitoring,
)
from middleware_monitoring.model import pass_deadline
from tests.standins.aws import MotoServer
from tests.standins.rdsosmetrics import rds_postgres_event

INSTANCES, QUICK_INSTANCES = 200, 5
PASSES, QUICK_PASSES = 7, 2
GOAL_OVER_FLOOR = 1.3  # the warm pass within 1.3x of its calls made directly


def _fixed(resource_id: str) -> Callable[[], str | None]:
    return lambda: resource_id


def seed(logs: Any, ids: list[str], now: float) -> None:
    # moto keeps its resources per process, not per server: in a test worker another test's
    # server may have made the group (or a stream) already.
    exists = logs.exceptions.ResourceAlreadyExistsException
    with contextlib.suppress(exists):
        logs.create_log_group(logGroupName=LOG_GROUP)
    for resource_id in ids:
        with contextlib.suppress(exists):
            logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=resource_id)
        event = rds_postgres_event(resource_id, resource_id, now)
        logs.put_log_events(
            logGroupName=LOG_GROUP,
            logStreamName=resource_id,
            logEvents=[{"timestamp": int(now * 1000), "message": json.dumps(event)}],
        )


def measure(quick: bool) -> dict[str, Any]:
    instances, passes = (QUICK_INSTANCES, QUICK_PASSES) if quick else (INSTANCES, PASSES)
    ids = [f"db-BENCH{n:05d}" for n in range(instances)]
    with MotoServer() as moto:
        saved = {name: os.environ.get(name) for name in moto.env()}
        os.environ.update(moto.env())
        try:
            logs = moto.client("logs")
            seed(logs, ids, time.time())
            sessions = AwsSessions(moto.region)
            # Unpaced: moto has no quota, and the floor makes its calls unpaced too.
            em = EnhancedMonitoring(
                InsightsSettings(enhanced_monitoring=True), sessions, calls_per_second=1e9
            )
            sources = [em.source(r, _fixed(r), HERE) for r in ids]
            plain = moto.client("logs")

            def warm_pass() -> int:
                deadline = time.monotonic() + 60.0
                em.plan(sources)
                em.start(deadline)
                series = 0
                with pass_deadline(deadline):
                    for source in sources:
                        series += sum(len(f.samples) for f in source.collect())
                return series

            def floor() -> None:
                def call(resource_id: str) -> None:
                    plain.get_log_events(
                        logGroupName=LOG_GROUP,
                        logStreamName=resource_id,
                        startFromHead=False,
                        limit=1,
                    )

                with ThreadPoolExecutor(CONCURRENT_READS) as pool:
                    list(pool.map(call, ids))

            warm_pass()  # warm: clients made, connections open
            floor()
            calls_before = em.calls
            pass_s: list[float] = []
            floor_s: list[float] = []
            series = 0
            for _ in range(passes):
                started = time.perf_counter()
                series = warm_pass()
                pass_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                floor()
                floor_s.append(time.perf_counter() - started)
            calls = (em.calls - calls_before) / passes
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    warm_ms = statistics.median(pass_s) * 1000
    floor_ms = statistics.median(floor_s) * 1000
    return {
        "command": ".venv/bin/python -m bench.enhanced_monitoring" + (" --quick" if quick else ""),
        "instances": instances,
        "passes": passes,
        "concurrent_reads": CONCURRENT_READS,
        "getlogevents_calls_per_pass": calls,
        "series_per_pass": series,
        "warm_pass_ms": round(warm_ms, 1),
        "floor_ms": round(floor_ms, 1),
        "warm_pass_over_floor": round(warm_ms / floor_ms, 2),
        "paced_pass_lower_bound_s": round(instances / LOGS_CALLS_PER_SECOND, 1),
    }


def section(figures: Mapping[str, Any]) -> Section:
    instances = figures["instances"]
    return Section(
        question=f"What does Enhanced Monitoring cost a warm pass of {instances} instances?",
        method=(
            f"The Enhanced Monitoring prefetch of a warm function instance for {instances} "
            "instances against moto's CloudWatch Logs (one event per stream): every "
            "instance's newest event read and parsed into its rds_os_* series, "
            f"{figures['concurrent_reads']} reads at a time; against the floor of the same "
            "GetLogEvents calls made with one plain boto3 client at the same concurrency. "
            f"Median of {figures['passes']} passes, alternating with the floor."
        ),
        command=str(figures["command"]),
        table=Table(
            ("scenario", "time (ms)", "GetLogEvents calls", "series"),
            [
                (
                    f"{instances} instances, warm pass",
                    figures["warm_pass_ms"],
                    figures["getlogevents_calls_per_pass"],
                    figures["series_per_pass"],
                ),
                ("the same calls made directly", figures["floor_ms"], instances, None),
            ],
        ),
        goals=[
            Goal(
                "warm Enhanced Monitoring pass over the floor of its calls",
                figures["warm_pass_over_floor"],
                GOAL_OVER_FLOOR,
                "x",
            )
        ],
        notes=[
            "moto has no request quota; in AWS, GetLogEvents allows 25 requests per second "
            "per account and region and the collector paces itself to 20, so "
            f"{instances} instances need at least {figures['paced_pass_lower_bound_s']} s of "
            "a pass (docs/insights.md)."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick), indent=2))


if __name__ == "__main__":
    main()
