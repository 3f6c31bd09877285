"""What one pass costs the Pushgateway at fleet size: the time to push N target groups of S
series each (one PUT per group, as the function does), to a Pushgateway started as by default
and to one started with ``--push.disable-consistency-check``.

    .venv/bin/python -m bench.pushgateway_scale [--quick]

On every push the Pushgateway checks the new group against every series it holds, so the
time of a pass grows with groups x series held; the flag turns that check off. The groups
are synthetic: S gauge series each (10 label values of S/10 families), the shape of a
PostgreSQL target's group; S is an input, the fleet section of `make bench` measures the
real series per target. Each size is pushed three times into the same gateway (the first
creates the groups, the next ones replace them, as every later pass does): the figure is the
median of the replacing pushes. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from bench.section import Goal, Section, Table, quantity
from middleware_monitoring.config import PushgatewaySettings
from middleware_monitoring.model import PassResult, TargetResult
from middleware_monitoring.sinks import PushgatewaySink
from tests.standins._process import free_port, http_ok, stop_process, wait_until

# With the check off (what docs/sinks.md recommends past a few dozen targets), a pass of the
# largest fleet must push in at most this: a small share of the 1-minute schedule.
GOAL_PUSH_S = 1.0
SERIES_PER_GROUP = 320
FULL_GROUPS = (25, 50, 100, 200)
QUICK_GROUPS = (4, 8)
PUSHES = 3
COMMAND = ".venv/bin/python -m bench.pushgateway_scale"


def fleet_pass(groups: int, series: int) -> PassResult:
    def group(i: int) -> TargetResult:
        families: list[Metric] = []
        for f in range(series // 10):
            family = GaugeMetricFamily(f"bench_family_{f}", "A series.", labels=["database_name"])
            for d in range(10):
                family.add_metric([f"db{d}"], float(i))
            families.append(family)
        return TargetResult(f"pg-{i:03d}", families, [])

    return PassResult([group(i) for i in range(groups)], 0.0, TargetResult("collector", [], []))


def push_seconds(result: PassResult, consistency_check: bool) -> float:
    """Median time of the pushes that replace the groups, on a fresh Pushgateway."""
    port = free_port()
    command = [
        "prometheus-pushgateway",
        f"--web.listen-address=127.0.0.1:{port}",
        "--persistence.file=",
        "--log.level=warn",
        *([] if consistency_check else ["--push.disable-consistency-check"]),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/-/ready"), what="Pushgateway", timeout=15, proc=proc)
        sink = PushgatewaySink(PushgatewaySettings(url, "bench-scale", None, None, 60.0, 0))
        times = []
        for _ in range(PUSHES):
            started = time.perf_counter()
            sink.send(result, time.monotonic() + 600)
            times.append(time.perf_counter() - started)
        return statistics.median(times[1:])
    finally:
        stop_process(proc)


def measure(quick: bool) -> dict[str, Any]:
    sizes = QUICK_GROUPS if quick else FULL_GROUPS
    series = 20 if quick else SERIES_PER_GROUP
    rows: dict[str, Any] = {}
    for groups in sizes:
        result = fleet_pass(groups, series)
        checked = push_seconds(result, consistency_check=True)
        unchecked = push_seconds(result, consistency_check=False)
        rows[f"{groups} groups x {series} series"] = {
            "groups": groups,
            "series_per_group": series,
            "push_s_default": round(checked, 3),
            "push_s_consistency_check_off": round(unchecked, 3),
            "ratio": round(checked / unchecked, 1) if unchecked else None,
        }
    return {"command": COMMAND + (" --quick" if quick else ""), "pushes": rows}


def section(figures: Mapping[str, Any]) -> Section:
    rows = list(figures["pushes"].values())
    largest = max(rows, key=lambda row: row["groups"])
    return Section(
        question="How long does a pass take to push N targets to one Pushgateway?",
        method=(
            "One PUT per target group (as the function does), each group "
            f"{largest['series_per_group']} gauge series, to a fresh Pushgateway started as by "
            "default and to one started with `--push.disable-consistency-check`; each size "
            "pushed three times, the median of the pushes that replace the groups."
        ),
        command=str(figures["command"]),
        table=Table(
            ("targets", "default Pushgateway (s)", "consistency check off (s)", "slower by"),
            [
                (
                    f"{row['groups']} targets",
                    row["push_s_default"],
                    row["push_s_consistency_check_off"],
                    f"{row['ratio']}x" if row["ratio"] is not None else "n/a",
                )
                for row in rows
            ],
        ),
        goals=[
            Goal(
                f"push of {largest['groups']} targets, consistency check off",
                largest["push_s_consistency_check_off"],
                GOAL_PUSH_S,
                "s",
            )
        ],
        notes=[
            f"A default Pushgateway takes {quantity(largest['push_s_default'], 's')} for "
            f"{largest['groups']} targets: it checks every pushed group against every series "
            "it holds, so the time grows with groups x series held (docs/sinks.md)."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(measure(parser.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()
