"""What a fleet's pass costs to push and to encode, and how the collector's own cost per
target grows with the fleet.

    .venv/bin/python -m bench.pushgateway_scale [--quick]

1. Push: the pass of N targets of S series each, sent by the Pushgateway sink (one PUT of the
   collector's shard group, encoding included) to a Pushgateway started as by default
   (consistency check on), against the floor: one plain PUT of the same body, already
   encoded. They alternate, and the median of the pushes that replace the group is kept.
2. Encoding: CPU time per series (``time.process_time``, best of three) of the push body
   (text_format.py), of prometheus_client's ``generate_latest`` on the same pass (what the
   sink used before), and of remote write's series and ``WriteRequest``.
3. Growth: ``run_pass`` over N synthetic targets (each one source yielding S series at once:
   no database, only the collector's own machinery), the pass encoded as the push body;
   CPU time (the goal) and wall time per target, each the median of enough passes to
   measure about as many series at every size, and the peak of memory traced (tracemalloc)
   per target, from 10 targets up; beside them, what a pass of no target costs.

The targets are synthetic: S gauge series each (families of 10 label values), the shape of
a PostgreSQL target's group. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.request import Request, urlopen

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.core import GaugeMetricFamily

from bench.section import Goal, Section, Table
from middleware_monitoring.config import PushgatewaySettings
from middleware_monitoring.model import (
    FrozenFamilies,
    PassResult,
    Target,
    TargetResult,
    with_instance_label,
)
from middleware_monitoring.remote_write import encode_write_request, pass_series
from middleware_monitoring.runner import Workers, run_pass
from middleware_monitoring.sinks import PushgatewaySink
from middleware_monitoring.text_format import write_groups
from tests.standins._process import free_port, http_ok, stop_process, wait_until

SERIES_PER_TARGET = 100
FULL_TARGETS = (300, 1000)
QUICK_TARGETS = (4, 8)
FULL_GROWTH = (10, 100, 300, 1000)
QUICK_GROWTH = (2, 4)
# Pushes of each kind, in turns: a PUT's time on a shared 2-CPU machine varies by half from
# one to the next, so the median needs more than a handful.
PUSHES = 12
# Growth: passes enough for each fleet size to measure this many series (1,000 passes of
# 10 targets, 10 of 1,000), never fewer than GROWTH_MIN_PASSES.
GROWTH_SERIES = 1_000_000
GROWTH_SERIES_QUICK = 2_000
GROWTH_MIN_PASSES = 5
COMMAND = ".venv/bin/python -m bench.pushgateway_scale"
JOB = "bench-scale"
COLLECTOR = "collector"

# The goals: the push within 1.5x one PUT of the same series; encoding at most 5 us a
# series (written as ms per 1,000 series); per-target time and memory flat within 20%.
GOAL_PUSH_RATIO = 1.5
GOAL_ENCODE_MS_PER_1000 = 5.0
GOAL_GROWTH_RATIO = 1.2


def families(target: int, series: int) -> list[Metric]:
    out: list[Metric] = []
    for f in range(max(1, series // 10)):
        family = GaugeMetricFamily(
            f"bench_family_{f}", "A series.", labels=["database_name", "schema"]
        )
        for d in range(min(10, series)):
            family.add_metric([f"db{d}", "public"], float(target * 10 + d) + 0.5)
        out.append(family)
    return out


def fleet_pass(targets: int, series: int) -> PassResult:
    return PassResult(
        [
            TargetResult(f"pg-{i:04d}", families(i, series), [], collected_at=1.8e9)
            for i in range(targets)
        ],
        0.0,
        TargetResult(COLLECTOR, [], []),
    )


class Gateway:
    """A fresh default Pushgateway (consistency check on), stopped on exit."""

    def __enter__(self) -> Gateway:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._proc = subprocess.Popen(
            [
                "prometheus-pushgateway",
                f"--web.listen-address=127.0.0.1:{port}",
                "--persistence.file=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: http_ok(f"{self.url}/-/ready"), what="Pushgateway", timeout=15, proc=self._proc
        )
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self._proc)


def push_figures(targets: int, series: int) -> dict[str, Any]:
    """The sink's push and the plain PUT, in turns (a machine whose load drifts weighs on
    both alike); the first pair creates the group and is left out."""
    result = fleet_pass(targets, series)
    body = write_groups(result.groups())
    pushed: list[float] = []
    floor: list[float] = []
    with Gateway() as gateway:
        sink = PushgatewaySink(PushgatewaySettings(gateway.url, JOB, None, None, 60.0, 0))
        url = sink.group_url(COLLECTOR, 0)

        def plain_put() -> None:
            request = Request(url, data=body, method="PUT")
            with urlopen(request, timeout=60) as answer:
                answer.read()

        for _ in range(PUSHES):
            pushed.append(_timed(lambda: sink.send(result, time.monotonic() + 600)))
            floor.append(_timed(plain_put))
    push_s, one_put_s = statistics.median(pushed[1:]), statistics.median(floor[1:])
    return {
        "targets": targets,
        "series": result.series_count(),
        "push_s": round(push_s, 3),
        "one_put_s": round(one_put_s, 3),
        "ratio": round(push_s / one_put_s, 2) if one_put_s else None,
    }


def cpu_ms_per_1000(run: Callable[[], object], series: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return round(1000 * 1000 * best / series, 2)


def encoding_figures(targets: int, series: int) -> dict[str, Any]:
    result = fleet_pass(targets, series)
    count = result.series_count()

    def reference() -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FrozenFamilies(with_instance_label(result.groups())))
        return generate_latest(registry)

    def remote_write() -> bytes:
        return encode_write_request((s.labels, s.points) for s in pass_series(result, JOB, 1.8e9))

    return {
        "series": count,
        "push_body_ms_per_1000": cpu_ms_per_1000(lambda: write_groups(result.groups()), count),
        "generate_latest_ms_per_1000": cpu_ms_per_1000(reference, count),
        "remote_write_ms_per_1000": cpu_ms_per_1000(remote_write, count),
    }


class Synthetic:
    """One target's source: its series at once, no server."""

    name = "synthetic"

    def __init__(self, target: int, series: int) -> None:
        self._families = families(target, series)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def growth_row(targets: int, series: int, workers: Workers, series_measured: int) -> dict[str, Any]:
    """Per-target time of passes of this many targets: CPU time of the process (its worker
    threads too) and wall time, the medians of enough passes that each fleet size measures
    about ``series_measured`` series (a 10-target pass takes a few milliseconds: one pass's
    wall time is the scheduler's noise on a shared machine); then the peak of memory traced
    during one more pass."""
    fleet = [Target(f"pg-{i:04d}", [Synthetic(i, series)]) for i in range(targets)]

    def one_pass() -> bytes:
        result = run_pass(
            fleet,
            deadline=time.monotonic() + 600,
            max_workers=32,
            collector_instance=COLLECTOR,
            workers=workers,
        )
        return write_groups(result.groups())

    for _ in range(2):
        one_pass()  # warm: the pool's threads, the caches of names
    passes = max(GROWTH_MIN_PASSES, -(-series_measured // max(1, targets * series)))
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(passes):
        started_cpu, started = time.process_time(), time.perf_counter()
        one_pass()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    tracemalloc.start()
    try:
        one_pass()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "targets": targets,
        "passes": passes,
        "cpu_ms_per_target": round(1000 * statistics.median(cpu) / targets, 3),
        "ms_per_target": round(1000 * statistics.median(wall) / targets, 3),
        "kb_per_target": round(peak / 1024 / targets, 1),
    }


def empty_pass_cpu_ms(workers: Workers) -> float:
    """A pass of no target (its own series only): what every pass costs whatever the fleet,
    shown beside the table, not taken out of it."""
    cpu: list[float] = []
    for _ in range(GROWTH_MIN_PASSES * 20):
        started = time.process_time()
        result = run_pass(
            [],
            deadline=time.monotonic() + 600,
            max_workers=32,
            collector_instance=COLLECTOR,
            workers=workers,
        )
        write_groups(result.groups())
        cpu.append(time.process_time() - started)
    return round(1000 * statistics.median(cpu), 3)


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure(quick: bool) -> dict[str, Any]:
    sizes = QUICK_TARGETS if quick else FULL_TARGETS
    growth = QUICK_GROWTH if quick else FULL_GROWTH
    series = 20 if quick else SERIES_PER_TARGET
    workers = Workers(32)
    measured = GROWTH_SERIES_QUICK if quick else GROWTH_SERIES
    try:
        growth_rows = [growth_row(n, series, workers, measured) for n in growth]
        empty_ms = empty_pass_cpu_ms(workers)
    finally:
        workers.close()
    return {
        "command": COMMAND + (" --quick" if quick else ""),
        "series_per_target": series,
        "pushes": {f"{n} targets": push_figures(n, series) for n in sizes},
        "encoding": encoding_figures(sizes[-1], series),
        "growth": {f"{row['targets']} targets": row for row in growth_rows},
        "empty_pass_cpu_ms": empty_ms,
    }


def _spread(values: list[float]) -> float:
    """Largest over smallest: 1.0 is perfectly flat."""
    low = min(values)
    return round(max(values) / low, 2) if low > 0 else float("inf")


def section(figures: Mapping[str, Any]) -> Section:
    pushes = list(figures["pushes"].values())
    encoding = figures["encoding"]
    growth = list(figures["growth"].values())
    rows: list[tuple[object, ...]] = [
        (
            f"push of {row['targets']} targets ({row['series']} series)",
            row["push_s"],
            row["one_put_s"],
            f"{row['ratio']}x" if row["ratio"] is not None else "n/a",
        )
        for row in pushes
    ]
    time_spread = _spread([row["cpu_ms_per_target"] for row in growth])
    memory_spread = _spread([row["kb_per_target"] for row in growth])
    goals = [
        Goal(
            f"push of {row['targets']} targets against one PUT of the same series",
            row["ratio"],
            GOAL_PUSH_RATIO,
            "x",
        )
        for row in pushes
        if row["ratio"] is not None
    ]
    goals += [
        Goal(
            "push body encoding, CPU per 1,000 series",
            encoding["push_body_ms_per_1000"],
            GOAL_ENCODE_MS_PER_1000,
            "ms",
        ),
        Goal(
            "remote write encoding, CPU per 1,000 series",
            encoding["remote_write_ms_per_1000"],
            GOAL_ENCODE_MS_PER_1000,
            "ms",
        ),
        Goal(
            "CPU time per target, largest over smallest fleet",
            time_spread,
            GOAL_GROWTH_RATIO,
            "x",
        ),
        Goal(
            "memory per target, largest over smallest fleet",
            memory_spread,
            GOAL_GROWTH_RATIO,
            "x",
        ),
    ]
    growth_text = "; ".join(
        f"{row['targets']} targets: {row['cpu_ms_per_target']} ms CPU ({row['ms_per_target']} "
        f"ms wall), {row['kb_per_target']} KB per target, median of {row['passes']} passes"
        for row in growth
    )
    return Section(
        question="What does a fleet's pass cost to push and to encode, per target and per series?",
        method=(
            f"Synthetic targets of {figures['series_per_target']} gauge series. Push: the "
            "Pushgateway sink's one PUT of the shard group (encoding included: the body is "
            "sent in pieces as it is written) to a default "
            "Pushgateway, against one plain PUT of the same body already encoded; the median "
            "of the pushes that replace the group. Encoding: CPU time (best of three) on the "
            f"largest pass ({encoding['series']} series). Growth: run_pass over synthetic "
            "targets plus the push body, after two warm passes: CPU time of the process per "
            "target (the goal: a pass of 10 targets takes milliseconds, whose wall time is "
            "the shared machine's scheduling) and wall time, each the median of enough "
            "passes to measure about as many series at every size; tracemalloc peak per "
            "target."
        ),
        command=str(figures["command"]),
        table=Table(("scenario", "sink push (s)", "one PUT (s)", "ratio"), rows),
        goals=goals,
        notes=[
            f"Encoding, CPU ms per 1,000 series: push body {encoding['push_body_ms_per_1000']}, "
            f"prometheus_client's generate_latest {encoding['generate_latest_ms_per_1000']}, "
            f"remote write {encoding['remote_write_ms_per_1000']}.",
            f"Growth per target: {growth_text}.",
            f"A pass of no target (its own series only) costs {figures['empty_pass_cpu_ms']} "
            "ms of CPU; it is left in the figures above.",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(measure(parser.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()
