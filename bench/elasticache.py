"""ElastiCache engine source: warm INFO time per node, 100 nodes in one pass, series per node,
and what the client library (valkey-py) costs the function.

    .venv/bin/python -m bench.elasticache [--quick]

Starts its own redis-server 7.0 processes (tests/standins): ``servers`` of them, each holding
a thousand keys, and points ``nodes`` targets at them in turn, each target with its own
source and its own connection (10 servers x 10 targets for 100 nodes: a real fleet is one
server per node, but 100 processes would measure the 2-core machine's scheduler, not the
collector). One replica gives the replica's series count. Passes run as the function runs
them (runner.run_pass, with COLLECTOR_MAX_WORKERS' default). Not a test: the numbers
depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.section import Goal, Section, Table, quantity
from bench.section import number as count
from middleware_monitoring.config import load_settings
from middleware_monitoring.model import Target
from middleware_monitoring.redis import info
from middleware_monitoring.redis.source import RedisSource
from middleware_monitoring.runner import run_pass
from tests.standins.redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]
MAX_WORKERS = load_settings({}).max_workers  # COLLECTOR_MAX_WORKERS' default
KEYS_PER_SERVER = 1000

# The function's cold start without and with the client: app.py's imports, then valkey's.
_IMPORT_PROBE = """
import sys, time
sys.path.insert(0, {path!r})
import app  # the Lambda handler module and everything it imports at cold start
started = time.perf_counter()
import middleware_monitoring.redis.source  # valkey-py and the INFO mapping
print((time.perf_counter() - started) * 1000)
"""


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


PER_COMMAND = frozenset(
    {
        "redis_commands",
        "redis_commands_duration_seconds",
        "redis_commands_rejected_calls",
        "redis_commands_failed_calls",
        "redis_latency_percentiles_usec",
    }
)


def _samples(source: RedisSource) -> int:
    return sum(len(family.samples) for family in source.collect())


def _series(source: RedisSource) -> tuple[int, float]:
    """Series of one pass whatever the workload, and series per command it used (SPEC 18's
    per-command statistics: 4 counters and a summary of 3 quantiles, count and sum)."""
    fixed, per_command, commands = 0, 0, set()
    for family in source.collect():
        if family.name in PER_COMMAND:
            per_command += len(family.samples)
            commands |= {sample.labels["cmd"] for sample in family.samples}
        else:
            fixed += len(family.samples)
    return fixed, per_command / max(len(commands), 1)


def _import_cost_ms(runs: int) -> float:
    """Median extra import time of the Redis source on top of the handler's own imports,
    each in a fresh interpreter (a cold function instance)."""
    probe = _IMPORT_PROBE.format(path=str(ROOT / "functions" / "collector"))
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return round(statistics.median(times), 1)


def _package_sizes() -> dict[str, Any]:
    """The valkey wheel the Lambda artifact bundles (from make install's wheelhouse) and its
    size unpacked."""
    import valkey

    wheels = sorted((ROOT / ".wheelhouse").glob("valkey-*.whl"))
    package = Path(valkey.__file__).parent
    unpacked = sum(
        f.stat().st_size for f in package.rglob("*") if f.is_file() and "__pycache__" not in f.parts
    )
    return {
        "valkey_version": valkey.__version__,
        "wheel_kib": round(wheels[-1].stat().st_size / 1024, 1) if wheels else None,
        "unpacked_kib": round(unpacked / 1024, 1),
    }


def measure(quick: bool) -> dict[str, Any]:
    servers, nodes = (2, 4) if quick else (10, 100)
    single_runs, passes, import_runs = (20, 2, 1) if quick else (300, 10, 7)
    with ExitStack() as stack:
        fleet = [stack.enter_context(RedisServer()) for _ in range(servers)]
        for server in fleet:
            with server.admin.pipeline(transaction=False) as pipe:
                for k in range(KEYS_PER_SERVER):
                    pipe.set(f"key:{k}", "v")
                pipe.execute()
        replica = stack.enter_context(RedisServer(replica_of=fleet[0]))
        replica.wait_link_up()

        # One node: the first INFO opens the connection, later ones reuse it.
        one = RedisSource(fleet[0].settings("bench-node"))
        stack.callback(one.close)
        started = time.perf_counter()
        series_primary, per_command = _series(one)
        cold = time.perf_counter() - started
        warm = []
        for _ in range(single_runs):
            started = time.perf_counter()
            one.collect().__next__()  # a generator: INFO runs on the first family
            warm.append(time.perf_counter() - started)
        full = []
        for _ in range(single_runs):
            started = time.perf_counter()
            _samples(one)
            full.append(time.perf_counter() - started)
        text = one._info().info  # the INFO reply as sent, to time the mapping alone
        mapping = []
        for _ in range(single_runs):
            started = time.perf_counter()
            sum(1 for _ in info.families(info.parse(text), time.time()))
            mapping.append(time.perf_counter() - started)
        replica_source = RedisSource(replica.settings("bench-replica"))
        stack.callback(replica_source.close)
        series_replica, _ = _series(replica_source)

        # The fleet: every target its own source and connection.
        sources = [RedisSource(fleet[i % servers].settings(f"node-{i}")) for i in range(nodes)]
        for source in sources:
            stack.callback(source.close)
        targets = [Target(f"node-{i}", [source]) for i, source in enumerate(sources)]

        def one_pass() -> tuple[float, int]:
            started = time.perf_counter()
            result = run_pass(
                targets,
                deadline=time.monotonic() + 30,
                max_workers=MAX_WORKERS,
                collector_instance="collector",
            )
            return time.perf_counter() - started, sum(1 for t in result.targets if t.up)

        cold_pass, cold_up = one_pass()
        warm_passes = [one_pass() for _ in range(passes)]

    return {
        "setup": {
            "redis_servers": servers,
            "nodes": nodes,
            "keys_per_server": KEYS_PER_SERVER,
            "max_workers": MAX_WORKERS,
            "info_reply_bytes": len(text.encode()),
        },
        "one_node": {
            "first_collect_ms (connect + INFO + series)": _ms(cold),
            "warm_info_round_trip_ms_median": _ms(statistics.median(warm)),
            "warm_collect_ms_median (INFO + all series)": _ms(statistics.median(full)),
            "warm_collect_ms_p95": _ms(sorted(full)[int(len(full) * 0.95) - 1]),
            "mapping_only_ms_median (parse + families)": _ms(statistics.median(mapping)),
        },
        "fleet_pass": {
            "cold_pass_ms": _ms(cold_pass),
            "cold_pass_up": cold_up,
            "warm_pass_ms_median": _ms(statistics.median(s for s, _ in warm_passes)),
            "warm_pass_ms_max": _ms(max(s for s, _ in warm_passes)),
            "warm_pass_up_min": min(up for _, up in warm_passes),
        },
        "series_per_node": {
            "primary (1 db, 1 replica)": series_primary,
            "replica (1 db)": series_replica,
            "per command the workload used": per_command,
        },
        "client": {
            **_package_sizes(),
            "extra_cold_start_import_ms_median": _import_cost_ms(import_runs),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny size (the smoke test's)")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick), indent=2))


if __name__ == "__main__":
    main()


# --- the report section (bench/section.py) -----------------------------------------------------


def section(figures: Mapping[str, Any]) -> Section:
    """A node's INFO and a fleet's pass, with what the client costs the cold start."""
    setup = figures["setup"]
    one = figures["one_node"]
    fleet = figures["fleet_pass"]
    client = figures["client"]
    nodes = setup["nodes"]
    return Section(
        question=f"How long does a pass over {nodes} ElastiCache nodes take, and what does "
        "one node's INFO cost?",
        method=(
            f"{setup['redis_servers']} redis-server 7.0 processes with "
            f"{setup['keys_per_server']:,} keys each, {nodes} node targets pointed at them in "
            "turn, each with its own source and connection; passes run as the function runs "
            f"them ({setup['max_workers']} workers). Medians of warm passes."
        ),
        command=".venv/bin/python -m bench.elasticache",
        table=Table(
            ("scenario", "median (ms)", "slowest (ms)", "targets up"),
            [
                ("one node: INFO round trip", one["warm_info_round_trip_ms_median"], None, 1),
                (
                    "one node: INFO and all its series",
                    one["warm_collect_ms_median (INFO + all series)"],
                    one["warm_collect_ms_p95"],
                    1,
                ),
                (f"{nodes} nodes: cold pass (connects)", fleet["cold_pass_ms"], None, None),
                (
                    f"{nodes} nodes: warm pass",
                    fleet["warm_pass_ms_median"],
                    fleet["warm_pass_ms_max"],
                    fleet["warm_pass_up_min"],
                ),
            ],
        ),
        goals=[
            Goal(
                f"every one of the {nodes} nodes up on every warm pass",
                fleet["warm_pass_up_min"],
                nodes,
                "",
                at_most=False,
            )
        ],
        notes=[
            f"valkey {client['valkey_version']}: a {count(client['wheel_kib'])} KiB wheel, "
            f"{quantity(client['extra_cold_start_import_ms_median'], 'ms')} more cold-start "
            "import, only when an ElastiCache target exists. The slowest column of the "
            "one-node row is the 95th percentile."
        ],
    )
