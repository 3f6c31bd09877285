"""Discovery at fleet size: a fleet of 1,000 resources found by tags in the moto
stand-in (DocumentDB's answers and pending maintenance from the AwsFront stand-in), 50 of
them RDS PostgreSQL instances whose secret tag names a login on real PostgreSQL servers
(verify-full TLS with a certificate for moto's endpoint names). Measured in a fresh worker
process (the servers are threads of this one):

- AWS calls of the cold pass and of warm passes within DISCOVER_MAX_AGE_SECONDS (goal: no
  Describe or tagging call), counted per operation as botocore sends them;
- the warm pass's time (median and slowest of the warm passes) against its floor: the very
  GetMetricData requests the pass made (recorded as botocore is asked them), replayed right
  after it with one plain boto3 client, CONCURRENT_CALLS at a time, against the same moto
  server (goal: the pass within 1.3x of the replay; median of the per-pass ratios);
- the worker's peak RSS (goal: under 512 MB);
- GetMetricData calls against the CloudWatch queries of the pass (goal: ceil(q / 500)).

CloudWatch data is put only for the 50 PostgreSQL instances: moto's GetMetricData scans
every stored datapoint for each query (4,000 seeded statistics took 56 s per pass here, in
moto alone), so the other targets' CloudWatch sources report ``no_data``; their queries are
asked and billed all the same.

    .venv/bin/python -m bench.discovery [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.section import Goal, Section, Table
from middleware_monitoring.cloudwatch.fetch import CONCURRENT_CALLS

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
ACCOUNT = "123456789012"
TAGS = {"team": "bench"}
SECRET_TAG = "middleware-monitoring:secret-arn"
# Operations that discovery makes (the rest: GetMetricData, GetSecretValue).
DISCOVERY_CALLS = (
    "GetCallerIdentity",
    "AssumeRole",
    "DescribeDBInstances",
    "DescribeDBClusters",
    "DescribePendingMaintenanceActions",
    "DescribeReplicationGroups",
    "DescribeCacheClusters",
    "GetResources",
)


@dataclass(frozen=True)
class Size:
    """The fleet: RDS instances (``logins`` of them with a secret tag), Aurora clusters
    with 2 instances each, DocumentDB clusters with 2 instances each, cache clusters."""

    rds: int
    logins: int
    aurora: int
    docdb: int
    caches: int
    pg_servers: int

    @property
    def resources(self) -> int:
        return self.rds + 3 * self.aurora + 3 * self.docdb + self.caches


FULL = Size(rds=400, logins=50, aurora=50, docdb=50, caches=300, pg_servers=2)
QUICK = Size(rds=6, logins=2, aurora=1, docdb=1, caches=2, pg_servers=1)
assert FULL.resources == 1000


def build_fleet(size: Size, moto: Any, front: Any, pg_ports: list[int], secret: str) -> None:
    from tests.standins.aws_front import docdb_cluster, docdb_instance
    from tests.standins.discovered import (
        create_aurora_cluster,
        create_cache_cluster,
        create_rds_instance,
        declarations_of,
        seed,
    )

    rds, elasticache = moto.client("rds"), moto.client("elasticache")
    made = []
    for i in range(size.rds):
        login = i < size.logins
        tags = {**TAGS, SECRET_TAG: secret} if login else TAGS
        port = pg_ports[i % len(pg_ports)] if login else 5432
        create_rds_instance(rds, f"bench-db-{i:04d}", tags=tags, port=port)
        if login:
            made += declarations_of("rds_instance", f"bench-db-{i:04d}")
    create_rds_instance(rds, "not-ours-db", tags={"team": "other"})
    for i in range(size.aurora):
        name = f"bench-aurora-{i:03d}"
        create_aurora_cluster(rds, name, members=(f"{name}-1", f"{name}-2"), tags=TAGS)
    for i in range(size.caches):
        create_cache_cluster(elasticache, f"bench-cache-{i:03d}", tags=TAGS)
    for i in range(size.docdb):
        name = f"bench-docdb-{i:03d}"
        members = {f"{name}-1": True, f"{name}-2": False}
        host = f"{name}.cluster-x.{REGION}.docdb.amazonaws.com"
        front.docdb_clusters.append(
            docdb_cluster(
                name, account=ACCOUNT, region=REGION, members=members, host=host, port=27017,
                tags=TAGS,
            )
        )  # fmt: skip
        front.docdb_instances += [
            docdb_instance(m, cluster=name, account=ACCOUNT, region=REGION, host=host, port=27017)
            for m in members
        ]
    seed(moto.client("cloudwatch"), made)


@contextlib.contextmanager
def stand_ins(size: Size, workdir: Path) -> Iterator[dict[str, str]]:
    """moto, the AwsFront, TLS PostgreSQL servers and the fleet; yields the worker's
    environment."""
    from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD, prepare
    from tests.integration.test_postgres_tls import start_tls_server
    from tests.standins.aws import MotoServer
    from tests.standins.aws_front import AwsFront
    from tests.standins.tls import make_tls_files

    tls = make_tls_files(
        workdir / "tls", names=f"DNS:*.aaaaaaaaaa.{REGION}.rds.amazonaws.com,IP:127.0.0.1"
    )
    with contextlib.ExitStack() as stack:
        servers = []
        for _ in range(size.pg_servers):
            server = start_tls_server(tls)
            stack.callback(server.cleanup)
            servers.append(prepare(server))
        moto = stack.enter_context(MotoServer())
        front = stack.enter_context(AwsFront(moto.endpoint_url))
        secret = moto.client("secretsmanager").create_secret(
            Name="bench/monitoring",
            SecretString=json.dumps(
                {"username": MONITOR, "password": MONITOR_PASSWORD, "dbname": APP_DB}
            ),
        )["ARN"]
        build_fleet(size, moto, front, [s.port for s in servers], secret)
        yield {
            **moto.env(),
            **front.env(),
            "DISCOVER": "rds,aurora,docdb,elasticache",
            "DISCOVER_TAGS": "team=bench",
            "DISCOVER_TAG_LABELS": "team",
            "DISCOVER_CA_BUNDLE": str(tls.ca),
            "PG_QPS_SAMPLE_SECONDS": "0",
            "PG_CONNECT_TIMEOUT_SECONDS": "5",
            "LOG_LEVEL": "WARNING",
        }


def measure(quick: bool) -> dict[str, Any]:
    """One run: the fleet built, then a worker process doing a cold pass and warm passes."""
    size = QUICK if quick else FULL
    # Four warm passes, each with its replay: about two minutes here, in make bench's budget.
    passes = 2 if quick else 5
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
        workdir = Path(tmp)
        with stand_ins(size, workdir) as env:
            built = time.perf_counter() - started
            spec = workdir / "worker.json"
            spec.write_text(json.dumps({"env": env, "passes": passes}))
            from bench.harness import child_env

            proc = subprocess.run(
                [sys.executable, "-m", "bench.discovery", "--worker", str(spec)],
                cwd=ROOT,
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.discovery worker failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    warm = out["passes"][1:]
    queries = out["passes"][-1]["cloudwatch_queries"]
    return {
        "resources": size.resources,
        "logins": size.logins,
        "fleet_built_s": round(built, 1),
        "targets": out["passes"][-1]["targets"],
        "postgres_up": out["passes"][-1]["postgres_up"],
        "cold_pass_s": out["passes"][0]["seconds"],
        "cold_discovery_calls": out["passes"][0]["discovery_calls"],
        "warm_pass_s": round(statistics.median(p["seconds"] for p in warm), 3),
        "warm_pass_max_s": max(p["seconds"] for p in warm),
        "replay_s": round(statistics.median(p["replay_s"] for p in warm), 3),
        "replayed_calls": warm[-1]["replayed_calls"],
        "concurrent_calls": CONCURRENT_CALLS,
        "warm_pass_cpu_s": round(statistics.median(p["cpu_s"] for p in warm), 3),
        "replay_cpu_s": round(statistics.median(p["replay_cpu_s"] for p in warm), 3),
        "warm_pass_over_replay_each": [round(p["seconds"] / p["replay_s"], 2) for p in warm],
        "warm_pass_over_replay": round(
            statistics.median(p["seconds"] / p["replay_s"] for p in warm), 2
        ),
        "warm_discovery_calls": [sum(p["discovery_calls"].values()) for p in warm],
        "cloudwatch_queries": queries,
        "getmetricdata_calls": out["passes"][-1]["getmetricdata_calls"],
        "getmetricdata_floor": math.ceil(queries / 500),
        "peak_rss_mb": round(out["maxrss_mb"], 1),
        "passes": out["passes"],
    }


# --- the measured process --------------------------------------------------------------


def run_worker(spec_path: Path) -> dict[str, Any]:
    spec = json.loads(spec_path.read_text())
    os.environ.update(spec["env"])
    from bench.worker import API_CALLS, count_aws_calls, on_schedule
    from middleware_monitoring.logs import setup_logging
    from middleware_monitoring.runtime import Runtime
    from tests.rds_names import rds_hosts_on_localhost

    # As in Lambda: JSON lines through the product's logger (stderr here, stdout is the
    # result), the level from the environment.
    setup_logging(stream=sys.stderr, level=os.environ["LOG_LEVEL"])
    count_aws_calls()
    recorder = GetMetricDataRecorder()
    runtime = Runtime.from_environ(os.environ)
    plain = plain_cloudwatch()
    passes: list[dict[str, Any]] = []
    try:
        with rds_hosts_on_localhost():
            for index in range(spec["passes"]):
                API_CALLS.clear()
                on_schedule(runtime, index)
                with recorder:
                    cpu = cpu_seconds()
                    began = time.perf_counter()
                    result = runtime.collect(50.0)
                    seconds = time.perf_counter() - began
                    cpu = cpu_seconds() - cpu
                collector = {
                    f.name: f.samples[0].value
                    for f in result.collector.families
                    if f.samples and f.name.startswith("middleware_cloudwatch_")
                }
                one: dict[str, Any] = {
                    "seconds": round(seconds, 3),
                    "targets": len(result.targets),
                    "postgres_up": sum(
                        1
                        for t in result.targets
                        for o in t.outcomes
                        if o.source == "postgres" and o.up
                    ),
                    "discovery_calls": {
                        op: n for op, n in API_CALLS.items() if op in DISCOVERY_CALLS
                    },
                    "other_calls": {
                        op: n for op, n in API_CALLS.items() if op not in DISCOVERY_CALLS
                    },
                    "getmetricdata_calls": collector["middleware_cloudwatch_getmetricdata_calls"],
                    "cloudwatch_queries": collector["middleware_cloudwatch_metrics_requested"],
                }
                # The floor, right after the pass it replays: its very GetMetricData
                # requests, with one plain client at the product's concurrency.
                requests = recorder.requests
                replay_cpu = cpu_seconds()
                one["replay_s"] = round(replay(plain, requests), 3)
                one["cpu_s"] = round(cpu, 3)
                one["replay_cpu_s"] = round(cpu_seconds() - replay_cpu, 3)
                one["replayed_calls"] = len(requests)
                one["replayed_queries"] = sum(len(r["MetricDataQueries"]) for r in requests)
                passes.append(one)
    finally:
        runtime.close()
    return {"passes": passes, "maxrss_mb": peak_rss_mb()}


class GetMetricDataRecorder:
    """While entered, the arguments of every GetMetricData call this process makes, in the
    order made (first pages only: a replay follows NextToken itself, as the product does)."""

    def __init__(self) -> None:
        from botocore.client import BaseClient

        self.requests: list[dict[str, Any]] = []
        self._on = False
        # Typed stubs do not declare it; every client method call goes through it.
        original = getattr(BaseClient, "_make_api_call")  # noqa: B009

        def recording(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            if self._on and operation_name == "GetMetricData" and "NextToken" not in api_params:
                self.requests.append(dict(api_params))
            return original(client, operation_name, api_params)

        setattr(BaseClient, "_make_api_call", recording)  # noqa: B010

    def __enter__(self) -> None:
        self.requests = []
        self._on = True

    def __exit__(self, *exc: object) -> None:
        self._on = False


def plain_cloudwatch() -> Any:
    """One plain boto3 CloudWatch client, its connection pool sized like the product's."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "cloudwatch",
        region_name=REGION,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        config=Config(max_pool_connections=CONCURRENT_CALLS + 1),
    )


def replay(client: Any, requests: list[dict[str, Any]]) -> float:
    """Seconds to make ``requests`` (GetMetricData arguments) again, pages followed, at the
    product's concurrency (fetch.CONCURRENT_CALLS); answers dropped."""
    from concurrent.futures import ThreadPoolExecutor

    def call(request: dict[str, Any]) -> None:
        request = dict(request)
        while True:
            token = client.get_metric_data(**request).get("NextToken")
            if not token:
                return
            request["NextToken"] = token

    began = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENT_CALLS) as pool:
        list(pool.map(call, requests))
    return time.perf_counter() - began


def cpu_seconds() -> float:
    """CPU time of this process so far (every thread, user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM): getrusage's ru_maxrss would start from the
    parent's (the bench, with moto in it), which a fork hands down."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny fleet (smoke test)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(run_worker(args.worker)))
        return
    figures = measure(args.quick)
    passes = figures.pop("passes")
    print(json.dumps(figures, indent=1))
    for n, one in enumerate(passes):
        print(f"pass {n}: {json.dumps(one)}")


if __name__ == "__main__":
    main()


# --- the report section (bench/section.py) -----------------------------------------------------

GOAL_OVER_REPLAY = 1.3  # the warm pass within 1.3x of its GetMetricData calls replayed
GOAL_PEAK_RSS_MB = 512.0


def section(figures: Mapping[str, Any]) -> Section:
    """How long a pass over a discovered fleet takes, cold and warm, with its AWS calls."""
    cold_calls = sum(figures["cold_discovery_calls"].values())
    warm_calls = sum(figures["warm_discovery_calls"])
    return Section(
        question=f"How long does a pass over {figures['resources']:,} discovered resources "
        "take, and what does it ask AWS?",
        method=(
            f"{figures['resources']:,} resources found by their tags in the moto stand-in, "
            f"{figures['logins']} of them RDS PostgreSQL instances with a login on real "
            "PostgreSQL servers; one fresh worker process runs a cold pass, then warm passes "
            "within DISCOVER_MAX_AGE_SECONDS, each followed by its floor: the very "
            "GetMetricData requests it made, replayed with one plain boto3 client at the "
            f"product's concurrency ({figures['concurrent_calls']} calls at a time) against "
            "the same moto server, answers dropped. Warm pass and replay = medians; the ratio "
            "is the median of the per-pass ratios (warm pass / replay)."
        ),
        command=".venv/bin/python -m bench.discovery",
        table=Table(
            (
                "pass",
                "time (s)",
                "worker CPU (s)",
                "discovery calls",
                "GetMetricData calls",
                "peak RSS (MB)",
            ),
            [
                (
                    "cold (discovers the fleet)",
                    figures["cold_pass_s"],
                    None,
                    cold_calls,
                    None,
                    None,
                ),
                (
                    "warm (median)",
                    figures["warm_pass_s"],
                    figures["warm_pass_cpu_s"],
                    warm_calls,
                    figures["getmetricdata_calls"],
                    figures["peak_rss_mb"],
                ),
                ("warm (slowest)", figures["warm_pass_max_s"], None, None, None, None),
                (
                    "its GetMetricData calls replayed with plain boto3 (median)",
                    figures["replay_s"],
                    figures["replay_cpu_s"],
                    None,
                    figures["replayed_calls"],
                    None,
                ),
            ],
        ),
        goals=[
            Goal(
                f"warm pass of {figures['targets']:,} targets over its GetMetricData calls "
                "replayed",
                figures["warm_pass_over_replay"],
                GOAL_OVER_REPLAY,
                "x",
            ),
            Goal("discovery calls on warm passes", warm_calls, 0, "calls"),
            Goal(
                "GetMetricData calls a warm pass, against ceil(queries / 500)",
                figures["getmetricdata_calls"],
                figures["getmetricdata_floor"],
                "calls",
            ),
            Goal("peak RSS of the worker", figures["peak_rss_mb"], GOAL_PEAK_RSS_MB, "MB"),
        ],
        notes=[
            f"{figures['postgres_up']} PostgreSQL targets up of {figures['logins']} with a "
            f"login; {int(figures['cloudwatch_queries']):,} CloudWatch queries a warm pass.",
            "Each warm pass over its replay: "
            + ", ".join(f"{r}x" for r in figures["warm_pass_over_replay_each"])
            + " (the machine's other load moves both).",
            "moto answers each GetMetricData query by scanning every datapoint it holds (in "
            "its own process, the bench's), so the replay is mostly moto's time; worker CPU "
            "is the measured process's own, the pass's work beyond its calls included.",
        ],
    )
