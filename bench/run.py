"""`make bench`: how fast, how cheap, how far it scales, side by side with the older approach
(bench/baseline_exporter.py) and with prometheus-postgres-exporter. Writes bench/RESULTS.md.

    .venv/bin/python -m bench.run [--runs 5] [--output bench/RESULTS.md] [--quick]

Everything runs on this machine: PostgreSQL 17 stand-ins (pg_stat_statements filled with
distinct statements, every 10th with a 10 KB text), the moto AWS stand-in seeded with
CloudWatch data, the DocumentDB stand-in (TLS + SCRAM), a Pushgateway. What is measured runs
in fresh worker processes (bench/worker.py), one at a time, product and comparison
interleaved run by run; figures are medians, ratios are taken within each run and then the
median of those. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleet import (
    REFERENCE_TARGETS,
    DocServerRef,
    FleetSpec,
    PgServerRef,
    cloudwatch_declarations,
    collector_env,
    scaled,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
PG_VERSION = 17
LONG_EVERY = 10  # every 10th statement has a 10 KB text
TOP_N = 20
# Prices (us-east-1, x86, list prices): Lambda per GB-second; CloudWatch GetMetricData per
# 1,000 metrics requested; GetMetricStatistics per 1,000 requests.
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1_000_000
GETMETRICDATA_PER_1000_METRICS = 0.01
GETMETRICSTATISTICS_PER_1000_REQUESTS = 0.01
PASSES_PER_MONTH = 30 * 24 * 60  # the default schedule: every minute, 30-day month
LAMBDA_MEMORY_MB = 256  # template.yaml's MemorySize default


class BenchError(RuntimeError):
    pass


# --- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),
        "memory": memory,
        "cpu": cpu,
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- worker processes --------------------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PG_", "MONGO_", "PUSHGATEWAY_", "KAFKA_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["AWS_CONFIG_FILE"] = "/dev/null"
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    env.update(extra or {})
    return env


def worker_command(mode: str, spec_path: Path, passes: int) -> list[str]:
    return [sys.executable, "-m", "bench.worker", mode, str(spec_path), "--passes", str(passes)]


def shown(command: Sequence[str]) -> str:
    """A command as it would be typed from the repository root."""
    parts = [
        ".venv/bin/python" if part == sys.executable else Path(part).name if "/" in part else part
        for part in command
    ]
    return " ".join(parts)


def run_worker(
    mode: str,
    spec_path: Path,
    passes: int,
    *,
    prefix: Sequence[str] = (),
    python_flags: Sequence[str] = (),
    timeout: float = 900,
) -> dict[str, Any]:
    command = worker_command(mode, spec_path, passes)
    command[1:1] = list(python_flags)
    command = [*prefix, *command]
    started = time.perf_counter()
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"{shown(command)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    out["stderr"] = proc.stderr
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if rss:
        out["time_v_maxrss_mb"] = int(rss.group(1)) / 1024
    return out


# --- servers -----------------------------------------------------------------------------------


@dataclass
class Servers:
    reference_pg: Any
    second_pg: Any
    aws: Any
    docdb: Any
    doc_ref: DocServerRef
    gateway: Any
    statements: int
    workdir: Path

    def pg_ref(self, server: Any) -> PgServerRef:
        return PgServerRef(server.host, server.port, server.superuser, server.password)

    def aws_env(self) -> dict[str, str]:
        env = dict(self.aws.env())
        env["LOG_LEVEL"] = "WARNING"
        return env


def start_pg(stack: contextlib.ExitStack, statements: int) -> tuple[Any, float]:
    from bench.pg_warm_pass import fill
    from tests.standins.postgres import PostgresServer

    server = PostgresServer(
        PG_VERSION,
        settings={
            "pg_stat_statements.max": max(10_000, 2 * statements),
            "max_connections": 300,
        },
    )
    stack.enter_context(server)
    started = time.perf_counter()
    fill(server, statements, long_every=LONG_EVERY)
    return server, time.perf_counter() - started


@contextlib.contextmanager
def servers(statements: int) -> Iterator[Servers]:
    from tests.standins.aws import MotoServer
    from tests.standins.docdb import start_demo_docdb
    from tests.standins.pushgateway import Pushgateway

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        reference, _ = start_pg(stack, statements)
        second, _ = start_pg(stack, statements)
        aws = stack.enter_context(MotoServer())
        docdb, mongo_info = start_demo_docdb(workdir)
        stack.callback(docdb.stop)
        gateway = stack.enter_context(Pushgateway())
        yield Servers(
            reference,
            second,
            aws,
            docdb,
            DocServerRef(json.loads(mongo_info)),
            gateway,
            statements,
            workdir,
        )


def seed(aws: Any, spec: FleetSpec) -> dict[str, float]:
    """Forget every metric, then put three points per declared statistic (the newest is the
    value); returns the expected value per baseline key (namespace/metric/dimension values)."""
    from tests.standins.cloudwatch import Fleet, seed_cloudwatch

    declared = cloudwatch_declarations(spec)

    @dataclass(frozen=True)
    class Declared(Fleet):
        made: tuple[Any, ...] = ()

        def declarations(self) -> list[Any]:
            return list(self.made)

    aws.reset()
    expected = seed_cloudwatch(aws.endpoint_url, Declared(made=tuple(declared)))
    return {
        f"{s.namespace}/{s.metric}/{','.join(v for _, v in s.dimensions)}": value
        for s, value in expected.items()
    }


def write_spec(workdir: Path, name: str, spec: FleetSpec) -> Path:
    path = workdir / f"{name}.json"
    path.write_text(spec.dumps())
    return path


# --- figures -----------------------------------------------------------------------------------


@dataclass
class Figure:
    number: str
    what: str
    product: str
    comparison: str
    ratio: str
    command: str


@dataclass
class Report:
    machine: dict[str, str]
    settings: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)

    def render(self) -> str:
        m = self.machine
        lines = [
            "# Benchmark results",
            "",
            "Written by `make bench` (`.venv/bin/python -m bench.run"
            + (f" {self.settings['argv']}" if self.settings.get("argv") else "")
            + "`); do not edit by hand. Method and caveats: bench/run.py's docstring and the "
            "notes under each table.",
            "",
            f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Python "
            f"{m['python']}, {m['os']}; run {m['date']}. Stand-ins on the same machine: "
            f"PostgreSQL {PG_VERSION} (pg_stat_statements), moto (CloudWatch), the DocumentDB "
            "stand-in (TLS + SCRAM), the Debian Pushgateway and prometheus-postgres-exporter.",
            "",
            f"Runs per figure: {self.settings['runs']}; times are medians; a ratio is the "
            "median of the ratios measured within each run (comparison / product, so above 1 "
            "means the product is faster or cheaper).",
            "",
            "| # | Figure | Product | Comparison | Ratio | Command |",
            "|---|---|---|---|---|---|",
        ]
        for f in self.figures:
            lines.append(
                f"| {f.number} | {f.what} | {f.product} | {f.comparison} | {f.ratio} | "
                f"`{f.command}` |"
            )
        lines.append("")
        lines.extend(self.sections)
        return "\n".join(lines).rstrip() + "\n"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def ratio(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.1f}x" if values else "n/a"


def warm(durations: Sequence[float]) -> float:
    """Median of the passes after the first (the first pays connects and imports)."""
    rest = list(durations[1:]) or list(durations)
    return statistics.median(rest)


# --- 1. warm pass, reference fleet; 2. CloudWatch calls ----------------------------------------


def bench_reference(
    s: Servers, report: Report, runs: int, passes: int, baseline_passes: int
) -> dict[str, Any]:
    spec = scaled(REFERENCE_TARGETS, [s.pg_ref(s.reference_pg)], s.doc_ref, s.aws_env())
    expected = seed(s.aws, spec)
    path = write_spec(s.workdir, "reference-fleet", spec)
    ours_warm: list[float] = []
    base_warm: list[float] = []
    ratios: list[float] = []
    ours_out: dict[str, Any] = {}
    base_out: dict[str, Any] = {}
    for _ in range(runs):
        ours_out = run_worker("ours", path, passes)
        base_out = run_worker("baseline", path, baseline_passes)
        o, b = warm(ours_out["durations"]), warm(base_out["durations"])
        ours_warm.append(o)
        base_warm.append(b)
        ratios.append(b / o)
    ours_calls = ours_out["calls"][-1].get("GetMetricData", 0)
    base_calls = base_out["calls"][-1].get("GetMetricStatistics", 0)
    got = base_out["cloudwatch_values"]
    wrong = sum(1 for k, v in expected.items() if k in got and got[k] != v)
    dropped = sum(1 for k in expected if k not in got)
    report.figures.append(
        Figure(
            "1",
            f"Warm pass, reference fleet ({spec.targets} targets: 1 PostgreSQL with "
            f"{s.statements:,} statements, {spec.cloudwatch_queries} CloudWatch queries, 1 "
            "DocumentDB)",
            ms(statistics.median(ours_warm)),
            f"baseline {ms(statistics.median(base_warm))}",
            ratio(ratios),
            f"{shown(worker_command('ours', path, passes))}; "
            f"{shown(worker_command('baseline', path, baseline_passes))}",
        )
    )
    report.figures.append(
        Figure(
            "2",
            "CloudWatch API calls per pass, reference fleet "
            f"({spec.cloudwatch_queries} queries; floor ceil(q/500) = {spec.floor_calls})",
            f"{ours_calls} GetMetricData",
            f"baseline {base_calls} GetMetricStatistics",
            f"{base_calls / ours_calls:.0f}x" if ours_calls else "n/a",
            "counted in the same worker runs (botocore Endpoint.make_request)",
        )
    )
    report.sections += [
        "## 1. Warm pass, reference fleet",
        "",
        "Per run (product / baseline, warm medians): "
        + ", ".join(f"{ms(o)} / {ms(b)}" for o, b in zip(ours_warm, base_warm, strict=True))
        + ".",
        "",
        f"Product: targets up {ours_out['up']} of {ours_out['targets']}, {ours_out['series']} "
        f"series per pass, COLLECTOR_MAX_WORKERS={ours_out['max_workers']}. The product's "
        "pass is `Runtime.collect()` (every target, CloudWatch batch in its own thread; no "
        "push); the first pass of each worker (connects, classification of every statement, "
        "the 1 s QPS window of a cold start) is left out of the warm median.",
        "",
        "Baseline: same fleet, sequential; its pass always holds `pg_sleep(1)`; without "
        f"that second it would still take {ms(statistics.median(base_warm) - 1.0)} "
        f"({(statistics.median(base_warm) - 1.0) / statistics.median(ours_warm):.1f}x the "
        "product: the statement texts it reads, its 22 CloudWatch calls one by one). Its "
        f"CloudWatch values against the seeded newest points: {wrong} of "
        f"{len(expected)} wrong (`Datapoints[0]` is not the newest), {dropped} missing "
        "(0 values dropped).",
        "",
    ]
    return {
        "spec": spec,
        "ours": ours_out,
        "base": base_out,
        "ours_warm": ours_warm,
        "base_warm": base_warm,
    }


# --- 3. pg_stat_statements at scale vs prometheus-postgres-exporter ----------------------------


def exporter_queries(extversion: str) -> str:
    """The product's top-N statement query as a postgres_exporter custom query: same
    aggregation, same columns, same order, texts whitespace-collapsed and capped at 300."""
    from middleware_monitoring.postgres.statements import columns_for

    c = columns_for(extversion)
    query = f"""SELECT left(btrim(regexp_replace(max(s.query), '\\s+', ' ', 'g')), 300) AS query,
  s.queryid::text AS queryid, d.datname AS database, r.rolname AS username,
  sum(s.calls)::float8 AS calls, {c.total_time} AS total_exec_time,
  {c.min_time} AS min_exec_time, {c.max_time} AS max_exec_time,
  {c.total_time} / nullif(sum(s.calls), 0) AS mean_exec_time,
  {c.blk_read_time} AS blk_read_time, {c.blk_write_time} AS blk_write_time,
  sum(s.rows)::float8 AS rows,
  100.0 * sum(s.shared_blks_hit) / nullif(sum(s.shared_blks_hit + s.shared_blks_read), 0)
    AS hit_percent
FROM pg_stat_statements s
LEFT JOIN pg_database d ON d.oid = s.dbid
LEFT JOIN pg_roles r ON r.oid = s.userid
GROUP BY s.queryid, s.dbid, s.userid, d.datname, r.rolname
ORDER BY {c.total_time} DESC
LIMIT {TOP_N}"""
    labels = ("query", "queryid", "database", "username")
    gauges = (
        "calls",
        "total_exec_time",
        "min_exec_time",
        "max_exec_time",
        "mean_exec_time",
        "blk_read_time",
        "blk_write_time",
        "rows",
        "hit_percent",
    )
    metrics = [
        f"    - {name}:\n        usage: LABEL\n        description: {name}" for name in labels
    ]
    metrics += [
        f"    - {name}:\n        usage: GAUGE\n        description: {name}" for name in gauges
    ]
    indented = "\n".join("    " + line for line in query.splitlines())
    return f"pg_stat_statements:\n  query: |\n{indented}\n  metrics:\n" + "\n".join(metrics) + "\n"


@contextlib.contextmanager
def http_process(command: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[int]:
    from tests.standins._process import http_ok, stop_process, wait_until

    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: http_ok(url), what=command[0], timeout=30.0, proc=proc, log=log)
        yield proc.pid
    finally:
        stop_process(proc)


def scrape(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read().decode()
    return time.perf_counter() - started, body


def statement_series(body: str, name: str) -> int:
    return sum(1 for line in body.splitlines() if line.startswith(name + "{"))


def bench_statements_at_scale(
    s: Servers, report: Report, sizes: Sequence[int], scrapes: int, number: str
) -> None:
    from tests.standins._process import free_port

    binary = shutil.which("prometheus-postgres-exporter")
    if binary is None:
        report.sections += [
            "## 3. pg_stat_statements at scale",
            "",
            "Not measured: prometheus-postgres-exporter is not installed (make bench installs it).",
            "",
        ]
        return
    rows: list[str] = []
    for size in sizes:
        with contextlib.ExitStack() as stack:
            if size == s.statements:
                server = s.reference_pg
            else:
                server, _ = start_pg(stack, size)
            conn = server.connect()
            try:
                extversion = str(
                    conn.run(
                        "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'"
                    )[0][0]
                )
                entries = int(conn.run("SELECT count(*) FROM pg_stat_statements")[0][0])
                text_bytes = int(
                    conn.run("SELECT sum(length(query)) FROM pg_stat_statements")[0][0]
                )
            finally:
                conn.close()
            queries = s.workdir / f"queries-{size}.yaml"
            queries.write_text(exporter_queries(extversion))
            exporter_port, ours_port = free_port(), free_port()
            dsn = (
                f"postgresql://{server.superuser}:{server.password}@{server.host}:{server.port}"
                "/postgres?sslmode=disable"
            )
            exporter_cmd = [
                binary,
                f"--web.listen-address=127.0.0.1:{exporter_port}",
                f"--extend.query-path={queries}",
                "--disable-default-metrics",
                "--disable-settings-metrics",
            ]
            ours_cmd = [sys.executable, "-m", "middleware_monitoring", "serve"]
            pg_env = {
                "PG_DATABASE": server.host,
                "PG_PORT": str(server.port),
                "PG_USER": server.superuser,
                "PG_PWD": server.password,
                "PG_DBNAME": "postgres",
                "SERVER_ADDRESS": "127.0.0.1",
                "SERVER_PORT": str(ours_port),
                "SERVER_SCRAPE_BUDGET_SECONDS": "120",
                "LOG_LEVEL": "WARNING",
            }
            exporter_url = f"http://127.0.0.1:{exporter_port}/metrics"
            ours_url = f"http://127.0.0.1:{ours_port}/metrics"
            stack.enter_context(
                http_process(
                    exporter_cmd,
                    child_env({"DATA_SOURCE_NAME": dsn}),
                    exporter_url,
                    s.workdir / f"exporter-{size}.log",
                )
            )
            stack.enter_context(
                http_process(
                    ours_cmd,
                    child_env(pg_env),
                    f"http://127.0.0.1:{ours_port}/healthz",
                    s.workdir / f"serve-{size}.log",
                )
            )
            # Warm both up: the product's first scrape classifies every statement and
            # samples its 1 s QPS window; the exporter's first one connects.
            for _ in range(2):
                scrape(ours_url)
                scrape(exporter_url)
            ours_t: list[float] = []
            exp_t: list[float] = []
            ratios: list[float] = []
            ours_body = exp_body = ""
            for _ in range(scrapes):
                o, ours_body = scrape(ours_url)
                e, exp_body = scrape(exporter_url)
                ours_t.append(o)
                exp_t.append(e)
                ratios.append(e / o)
            ours_n = statement_series(ours_body, "pg_query_calls")
            exp_n = statement_series(exp_body, "pg_stat_statements_calls")
            report.figures.append(
                Figure(
                    number,
                    f"pg_stat_statements at scale: warm scrape of {entries:,} entries "
                    f"({text_bytes / 1e6:.1f} MB of texts), top {TOP_N}",
                    ms(statistics.median(ours_t)),
                    f"postgres_exporter {ms(statistics.median(exp_t))}",
                    ratio(ratios),
                    f"curl {ours_url.replace(str(ours_port), 'PORT')} "
                    "(`python -m middleware_monitoring serve`) vs "
                    f"prometheus-postgres-exporter --extend.query-path=queries-{size}.yaml "
                    "--disable-default-metrics --disable-settings-metrics",
                )
            )
            rows.append(
                f"| {entries:,} | {text_bytes / 1e6:.1f} MB | {ms(statistics.median(ours_t))} "
                f"| {ms(statistics.median(exp_t))} | {ratio(ratios)} | {ours_n} / {exp_n} |"
            )
        number = f"{number}b" if not number.endswith("b") else number
    report.sections += [
        "## 3. pg_stat_statements at scale: product vs prometheus-postgres-exporter",
        "",
        "Both scraped over HTTP on the same server, alternately, after two warm-up scrapes: "
        "the product in pull mode (`python -m middleware_monitoring serve`, only PG_* set; "
        "every PostgreSQL series, top 20 statements, QPS) and the Debian "
        "prometheus-postgres-exporter 0.11 with only one custom query (default and settings "
        "metrics off): the same top-20 statement query the product runs (same aggregation, "
        "columns, order and 300-character texts), written out by `exporter_queries()` in "
        "bench/run.py. The exporter's query reads `pg_stat_statements` with texts (the view); "
        "the product reads `pg_stat_statements(false)` and fetches texts only for the top "
        "statements it has not seen.",
        "",
        "| entries | texts | product | postgres_exporter | ratio | pg_query_calls / "
        "pg_stat_statements_calls series |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


# --- 4. cold start, 5. memory ------------------------------------------------------------------


def importtime_breakdown(stderr: str) -> list[tuple[str, float]]:
    """Self time per top-level package from ``-X importtime`` lines, milliseconds."""
    per: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s+)(\S+)", line)
        if match:
            per[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
    return sorted(per.items(), key=lambda item: -item[1])


def bench_cold_start(
    s: Servers, report: Report, runs: int, reference: dict[str, Any]
) -> dict[str, Any]:
    spec: FleetSpec = reference["spec"]
    seed(s.aws, spec)
    base = {
        "PUSHGATEWAY_URL": s.gateway.url,
        "PUSHGATEWAY_JOB": "bench",
        "POWERTOOLS_SERVICE_NAME": "middleware-monitoring",
    }
    full_env = {**collector_env(spec), **base}
    pg_only = FleetSpec(postgres=spec.postgres[:1], env=s.aws_env())
    pg_env = {
        k: v for k, v in {**collector_env(pg_only), **base}.items() if not k.startswith("AWS_RDS")
    }
    full_path = s.workdir / "handler-reference.json"
    full_path.write_text(json.dumps(full_env))
    pg_path = s.workdir / "handler-postgres-only.json"
    pg_path.write_text(json.dumps(pg_env))
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    passes = 4
    results: dict[str, list[dict[str, Any]]] = {"full": [], "pg": []}
    for _ in range(runs):
        results["full"].append(run_worker("handler", full_path, passes, prefix=timer))
        results["pg"].append(run_worker("handler", pg_path, passes, prefix=timer))
    traced = run_worker("handler", full_path, 1, python_flags=["-X", "importtime"])
    traced_pg = run_worker("handler", pg_path, 1, python_flags=["-X", "importtime"])
    breakdown = importtime_breakdown(traced["stderr"])
    breakdown_pg = dict(importtime_breakdown(traced_pg["stderr"]))

    def med(kind: str, key: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(key(r) for r in results[kind])

    full_wall = med("full", lambda r: r["wall_s"])
    full_import = med("full", lambda r: r["import_s"])
    full_first = med("full", lambda r: r["invocations"][0])
    full_warm = med("full", lambda r: statistics.median(r["invocations"][1:]))
    pg_wall = med("pg", lambda r: r["wall_s"])
    pg_import = med("pg", lambda r: r["import_s"])
    pg_first = med("pg", lambda r: r["invocations"][0])
    rss_full = max(r.get("time_v_maxrss_mb", r["maxrss_mb"]) for r in results["full"])
    rss_pg = max(r.get("time_v_maxrss_mb", r["maxrss_mb"]) for r in results["pg"])
    loaded_full = results["full"][-1]["loaded"]
    loaded_pg = results["pg"][-1]["loaded"]
    lazily = sum(ms_ for name, ms_ in breakdown if name in ("pymongo", "bson", "gridfs", "dns"))
    lazily_aws = sum(
        ms_ for name, ms_ in breakdown if name in ("boto3", "botocore", "s3transfer", "urllib3")
    )
    command = shown(worker_command("handler", full_path, passes))
    report.figures.append(
        Figure(
            "4",
            "Cold start, reference fleet: fresh process, import the handler, first invocation "
            "(pass + push)",
            f"{ms(full_wall)} process wall (import {ms(full_import)}, first invocation "
            f"{ms(full_first)})",
            f"PostgreSQL-only config: {ms(pg_wall)} (import {ms(pg_import)}, first "
            f"invocation {ms(pg_first)})",
            "",
            f"{' '.join(timer)} {command}".strip(),
        )
    )
    report.figures.append(
        Figure(
            "5",
            "Peak RSS of a function instance (cold import + first pass + 3 warm passes, push "
            "included)",
            f"{rss_full:.0f} MB (reference fleet)",
            f"PostgreSQL-only: {rss_pg:.0f} MB",
            f"fits 128 MB: {'yes' if rss_full < 128 else 'no'}",
            f"{' '.join(timer)} {command}".strip(),
        )
    )
    top = [
        f"| {name} | {t:.0f} ms | {breakdown_pg.get(name, 0):.0f} ms |"
        for name, t in breakdown[:14]
    ]
    per_package = dict(breakdown)
    extra_crt = per_package.get("_awscrt", 0) + per_package.get("awscrt", 0)
    extra_crypto = per_package.get("cryptography", 0)
    total = sum(t for _, t in breakdown)
    total_pg = sum(breakdown_pg.values())
    report.sections += [
        "## 4. Cold start and 5. memory",
        "",
        f"Median of {runs} fresh processes each. Process wall = spawn to exit of "
        "`bench/worker.py handler` (interpreter start, handler import, first invocation "
        f"with its push, {passes - 1} warm invocations, exit); warm invocations of the "
        f"reference fleet: {ms(full_warm)} (the billed duration of a warm pass). The first "
        "invocation holds the PostgreSQL connects, the classification of every statement "
        "and the 1 s QPS sampling window of a cold start (PG_QPS_SAMPLE_SECONDS, overlapped "
        "with the other work).",
        "",
        f"Modules loaded after the first invocation: reference fleet {', '.join(loaded_full)}; "
        f"PostgreSQL-only {', '.join(loaded_pg)} (only botocore's package `__init__`, 1 ms, "
        "imported by aws_lambda_powertools' user-agent code). pymongo and boto3 are "
        "imported where they are first used (`runtime.build_targets` for DocumentDB, "
        "`cloudwatch/client.py` for CloudWatch), so a PostgreSQL-only configuration does "
        f"not pay them: here {lazily:.0f} ms (pymongo, bson, dns) and {lazily_aws:.0f} ms "
        "(boto3, botocore, s3transfer, urllib3) of self import time.",
        "",
        f"Import time by package (self time summed over its modules, `-X importtime`, one "
        f"traced run each; total {total:.0f} ms reference fleet, {total_pg:.0f} ms "
        "PostgreSQL-only; tracing inflates times):",
        "",
        "| package | reference fleet | PostgreSQL-only |",
        "|---|---|---|",
        *top,
        "",
        "The dev venv also holds packages the Lambda bundle does not (functions/collector/"
        "requirements.txt): botocore picks up awscrt and pymongo picks up cryptography when "
        f"they are installed ({extra_crt:.0f} + {extra_crypto:.0f} ms above), so the "
        "reference fleet's cold start in Lambda imports a little less than here.",
        "",
        f"Peak RSS is `Maximum resident set size` of `/usr/bin/time -v` (max over the runs): "
        f"reference fleet {rss_full:.0f} MB, PostgreSQL-only {rss_pg:.0f} MB, against the "
        f"128 MB minimum Lambda size; template.yaml's default is {LAMBDA_MEMORY_MB} MB (more "
        "CPU for the cold start's imports).",
        "",
    ]
    return {
        "warm_invocation_s": full_warm,
        "first_invocation_s": full_first,
        "import_s": full_import,
        "rss_mb": rss_full,
    }


# --- 6. scaling --------------------------------------------------------------------------------


def bench_scaling(
    s: Servers,
    report: Report,
    sizes: Sequence[int],
    runs: int,
    passes: int,
    baseline_sizes: Sequence[int],
    wide_workers: int,
) -> list[dict[str, Any]]:
    pg = [s.pg_ref(s.reference_pg), s.pg_ref(s.second_pg)]
    rows: list[str] = []
    measured: list[dict[str, Any]] = []
    configs: list[tuple[int, int | None]] = [(n, None) for n in sizes]
    if wide_workers and sizes:
        configs.append((max(sizes), wide_workers))
    for n, workers in configs:
        env = s.aws_env()
        if workers:
            env["COLLECTOR_MAX_WORKERS"] = str(workers)
        spec = scaled(n, pg, s.doc_ref, env)
        seed(s.aws, spec)
        path = write_spec(s.workdir, f"scale-{n}" + (f"-w{workers}" if workers else ""), spec)
        timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
        ours_runs = [run_worker("ours", path, passes, prefix=timer) for _ in range(runs)]
        ours_warm = statistics.median(warm(r["durations"]) for r in ours_runs)
        last = ours_runs[-1]
        ours_calls = last["calls"][-1].get("GetMetricData", 0)
        base_txt = base_calls_txt = ratio_txt = "not run"
        base_s: float | None = None
        base_calls: int | None = None
        if n in baseline_sizes and not workers:
            base = run_worker("baseline", path, 2 if n < 100 else 1)
            base_s = warm(base["durations"])
            base_calls = base["calls"][-1].get("GetMetricStatistics", 0)
            base_txt = ms(base_s)
            base_calls_txt = str(base_calls)
            ratio_txt = f"{base_s / ours_warm:.1f}x"
        measured.append(
            {
                "n": n,
                "workers": last["max_workers"],
                "ours_s": ours_warm,
                "base_s": base_s,
                "ours_calls": ours_calls,
                "base_calls": base_calls,
                "queries": spec.cloudwatch_queries,
                "floor": spec.floor_calls,
                "rss": max(r.get("time_v_maxrss_mb", r["maxrss_mb"]) for r in ours_runs),
                "up": last["up"],
                "targets": last["targets"],
                "slowest": last["slowest_source_s"],
                "command": shown(worker_command("ours", path, passes)),
            }
        )
        rows.append(
            f"| {n} | {len(spec.postgres)} | {last['max_workers']} | {ms(ours_warm)} | "
            f"{base_txt} | {ratio_txt} | {spec.cloudwatch_queries} | {ours_calls} | "
            f"{base_calls_txt} | {spec.floor_calls} | {last['up']}/{last['targets']} | "
            f"{max(r.get('time_v_maxrss_mb', r['maxrss_mb']) for r in ours_runs):.0f} MB |"
        )
    slow_lines = [
        f"- {m['n']} targets, {m['workers']} workers: "
        + ", ".join(f"{name} {ms(t)}" for name, t in sorted(m["slowest"].items()))
        for m in measured
    ]
    by_n = {m["n"]: m for m in measured if m["workers"] == measured[0]["workers"]}
    for n in (50, 200):
        m = by_n.get(n)
        if m is None:
            continue
        report.figures.append(
            Figure(
                "2",
                f"CloudWatch API calls per pass, {n} targets ({m['queries']} queries; floor "
                f"{m['floor']})",
                f"{m['ours_calls']} GetMetricData",
                f"baseline {m['base_calls'] if m['base_calls'] is not None else m['queries']} "
                "GetMetricStatistics",
                f"{(m['base_calls'] or m['queries']) / m['ours_calls']:.0f}x"
                if m["ours_calls"]
                else "n/a",
                m["command"],
            )
        )
    for m in measured:
        report.figures.append(
            Figure(
                "6",
                f"Scaling: warm pass, {m['n']} targets, {m['workers']} workers",
                ms(m["ours_s"]),
                f"baseline {ms(m['base_s'])}" if m["base_s"] is not None else "",
                f"{m['base_s'] / m['ours_s']:.1f}x" if m["base_s"] is not None else "",
                m["command"],
            )
        )
    report.sections += [
        "## 6. Scaling",
        "",
        "n targets in the reference mix (PostgreSQL + RDS metrics, DocumentDB serverStatus, "
        "2 DocumentDB instances, a DocumentDB cluster, an ElastiCache cluster, repeated); "
        f"PostgreSQL targets alternate between two PostgreSQL {PG_VERSION} servers holding "
        f"{s.statements:,} statements each, DocumentDB targets share one stand-in, CloudWatch "
        "ids are distinct on the moto stand-in. The environment holds one PostgreSQL target, "
        "so the bench builds the others the way `runtime.build_targets` does (bench/fleet.py). "
        f"Product: median of {runs} worker runs of the warm-pass median; baseline: one run "
        "(its passes grow by a second per PostgreSQL target).",
        "",
        "| targets | PostgreSQL | workers | product warm pass | baseline | ratio | CW queries "
        "| GetMetricData calls | baseline GetMetricStatistics calls | floor ceil(q/500) | up | "
        "peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Longest single source of the last pass, per kind (a CloudWatch source's time is its "
        "wait for the batch):",
        "",
        *slow_lines,
        "",
        "At 200 targets the pass is bound by the CloudWatch batch, not by the pool: 32 "
        "workers are no faster than 8, and the longest wait is for the two GetMetricData "
        "calls (500 + 231 queries, one after the other) answered by moto, Python in the "
        "bench process on the same 2 CPUs as the two PostgreSQL servers and the collector; "
        "the PostgreSQL and DocumentDB targets finish within that wait. Peak RSS grows with "
        "the targets (each holds a connection and its statement "
        "caches): above 50 targets give the function 256 MB (template.yaml's default). "
        "The scaling worker also loads botocore for counting the calls, which the "
        "PostgreSQL-only handler of figure 5 does not.",
        "",
        "How the work is spread: `runner.run_pass` submits every target to a thread pool of "
        "COLLECTOR_MAX_WORKERS threads (default 8, at most 64); a target's sources run in "
        "order inside its thread. The CloudWatch batch for all targets is one background "
        "thread started before the targets (a CloudWatch source waits for it, never "
        "holding a pool thread while the batch still needs one). The pass deadline bounds "
        "it all: unfinished targets are reported down (reason `deadline`). What bounds the "
        "concurrency: the pool size (each PostgreSQL and DocumentDB target holds one "
        "connection, so also the servers' connection limits), the GIL for the Python-side "
        "work (result parsing, families), and the Lambda's CPU share (memory-proportional; "
        "256 MB is about 1/7 of a vCPU).",
        "",
    ]
    return measured


# --- 7. cost ------------------------------------------------------------------------------------


def bench_cost(report: Report, reference: dict[str, Any], cold: dict[str, Any]) -> None:
    spec: FleetSpec = reference["spec"]
    gb = LAMBDA_MEMORY_MB / 1024
    ours_s = cold["warm_invocation_s"]
    base_s = statistics.median(reference["base_warm"])
    ours_metrics = (
        reference["ours"]["calls"][-1].get("GetMetricData", 0) and spec.cloudwatch_queries
    )
    base_requests = reference["base"]["calls"][-1].get("GetMetricStatistics", 0)

    def lambda_cost(seconds: float) -> float:
        billed = math.ceil(seconds * 1000) / 1000  # 1 ms billing granularity
        return PASSES_PER_MONTH * (billed * gb * LAMBDA_GB_SECOND + LAMBDA_REQUEST)

    ours_lambda = lambda_cost(ours_s)
    base_lambda = lambda_cost(base_s)
    ours_cw = PASSES_PER_MONTH * ours_metrics / 1000 * GETMETRICDATA_PER_1000_METRICS
    base_cw = PASSES_PER_MONTH * base_requests / 1000 * GETMETRICSTATISTICS_PER_1000_REQUESTS
    ours_total, base_total = ours_lambda + ours_cw, base_lambda + base_cw
    report.figures.append(
        Figure(
            "7",
            "Monthly AWS cost, reference fleet, every minute (Lambda at "
            f"{LAMBDA_MEMORY_MB} MB + CloudWatch API)",
            f"${ours_total:.2f} (Lambda ${ours_lambda:.2f}, GetMetricData ${ours_cw:.2f})",
            f"baseline ${base_total:.2f} (Lambda ${base_lambda:.2f}, GetMetricStatistics "
            f"${base_cw:.2f})",
            f"{base_total / ours_total:.2f}x",
            "computed from figures 1, 2 and 4 (bench/run.py `bench_cost`)",
        )
    )
    report.sections += [
        "## 7. Cost",
        "",
        f"{PASSES_PER_MONTH:,} passes a month (every minute, 30 days). Lambda: billed "
        f"duration x {gb:.2f} GB x ${LAMBDA_GB_SECOND}/GB-s + $0.20 per million requests; "
        f"product duration = its warm invocation ({ms(ours_s)}, pass + push, figure 4), "
        f"baseline duration = its warm pass ({ms(base_s)}, figure 1) as if it ran in the same "
        f"Lambda. CloudWatch: GetMetricData ${GETMETRICDATA_PER_1000_METRICS} per 1,000 "
        f"metrics requested ({ours_metrics} per pass), GetMetricStatistics "
        f"${GETMETRICSTATISTICS_PER_1000_REQUESTS} per 1,000 requests ({base_requests} per "
        "pass). List prices, us-east-1, x86, no free tier.",
        "",
        "| | Lambda GB-s / month | Lambda | CloudWatch | total |",
        "|---|---|---|---|---|",
        f"| product | {PASSES_PER_MONTH * ours_s * gb:,.0f} | ${ours_lambda:.2f} | "
        f"${ours_cw:.2f} | ${ours_total:.2f} |",
        f"| baseline | {PASSES_PER_MONTH * base_s * gb:,.0f} | ${base_lambda:.2f} | "
        f"${base_cw:.2f} | ${base_total:.2f} |",
        "",
        "GetMetricData is billed per metric requested, GetMetricStatistics per request: with "
        "one statistic per metric both cost the same per metric, so batching buys speed and "
        "fewer calls (throttling headroom), not a smaller CloudWatch bill. Caveat in the "
        "baseline's favour: CloudWatch's free tier (1 million API requests a month) covers "
        "GetMetricStatistics but not GetMetricData, so on an account with nothing else "
        f"using it the baseline's {PASSES_PER_MONTH * base_requests:,} requests a month would "
        "be free. The CloudWatch share is what grows with the fleet: 5-minute metrics "
        "(Volume*) are asked every minute by both.",
        "",
    ]


# --- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--large-statements", type=int, default=20000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.statements, args.large_statements = 1, 200, 0
    scales = (1, 6) if args.quick else (1, 10, 50, 200)
    baseline_scales = (1,) if args.quick else (1, 10, 50, 200)
    report = Report(
        machine(),
        {"runs": args.runs, "argv": " ".join(argv if argv is not None else sys.argv[1:])},
    )
    started = time.perf_counter()

    def step(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {name}", flush=True)

    step(f"starting servers, filling pg_stat_statements with {args.statements:,} statements")
    with servers(args.statements) as s:
        step("1-2. warm pass, reference fleet, product vs baseline")
        reference = bench_reference(
            s,
            report,
            args.runs,
            passes=2 if args.quick else 6,
            baseline_passes=2 if args.quick else 3,
        )
        step("3. pg_stat_statements at scale vs prometheus-postgres-exporter")
        sizes = [args.statements] + ([args.large_statements] if args.large_statements else [])
        bench_statements_at_scale(s, report, sizes, 3 if args.quick else 10, "3")
        step("4-5. cold start and memory")
        cold = bench_cold_start(s, report, args.runs, reference)
        step("6. scaling")
        bench_scaling(
            s,
            report,
            scales,
            1 if args.quick else 3,
            2 if args.quick else 4,
            baseline_scales,
            0 if args.quick else 32,
        )
        step("7. cost")
        bench_cost(report, reference, cold)
    report.figures.sort(key=lambda f: f.number)
    args.output.write_text(report.render())
    step(f"wrote {args.output}")


if __name__ == "__main__":
    main()
