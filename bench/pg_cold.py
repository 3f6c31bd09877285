"""Collector CPU per cold PostgreSQL target, one target per server: a fresh function
instance's first pass over targets that each carry their own server's series (statements
with their classification and texts, the QPS snapshots, activity, database sizes, health),
its process CPU time divided by the targets.

    .venv/bin/python -m bench.pg_cold [--quick]

Starts 20 PostgreSQL 17 servers (quick: 2) with TLS, each holding the same 5,000
pg_stat_statements entries (quick: 200), every tenth with a 10 KB text: one server is made
and filled, stopped (pg_stat_statements saves its entries), and its data directory copied
for the others, which is much quicker than filling each. Every target is an entry of a
targets file with sslmode verify-full against the CA that signed the servers' certificate,
as the template deploys it for RDS. Goals: under 50 ms of collector CPU per cold target, and
under 8 µs of collector CPU per series of the warm invocation after it (its pass, the push
body, the push), each target carrying its own server's series.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import statistics
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.harness import LONG_EVERY, run_worker, shown, worker_command
from bench.pg_warm_pass import fill
from bench.section import Goal, Section, Table, number
from middleware_monitoring.config import load_settings
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway
from tests.standins.tls import make_tls_files, postgres_tls_settings

PG_VERSION = 17
GOAL_CPU_MS_PER_TARGET = 50.0
# The warm invocation's process CPU (pass, encoding the push body, the push) per series sent.
GOAL_CPU_US_PER_SERIES = 8.0
RUNS = 2  # fresh function instances; the figure is their median
# A small pool for the same first pass: more cold targets than workers, each with its QPS
# window (PG_QPS_SAMPLE_SECONDS), which must overlap instead of queueing for the workers.
FEW_WORKERS = 4


def server_tls(directory: Path) -> tuple[dict[str, str], Path]:
    """Server settings for TLS and the CA verifying it."""
    files = make_tls_files(directory / "made")
    return postgres_tls_settings(files, directory / "server"), files.ca


def copy_of(template: PostgresServer, settings: Mapping[str, str | int]) -> PostgresServer:
    """A server started on a copy of ``template``'s (stopped) data directory."""
    server = PostgresServer(PG_VERSION, settings=dict(settings))
    server.base_dir = Path(tempfile.mkdtemp(prefix=f"standin-pg{PG_VERSION}-"))
    server.base_dir.chmod(0o755)
    # cp -a keeps the owner (the postgres user) and the modes PostgreSQL insists on.
    subprocess.run(
        ["cp", "-a", str(template.data_dir), str(server.data_dir)], check=True, timeout=120
    )
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(server.base_dir, owner.pw_uid, owner.pw_gid)
    server._initialized = True
    return server.start()


@contextlib.contextmanager
def fleet(servers: int, statements: int, workdir: Path) -> Iterator[tuple[list[Any], Path]]:
    tls, ca = server_tls(workdir)
    settings: dict[str, str | int] = {
        **tls,
        "pg_stat_statements.max": max(10_000, 2 * statements),
        "shared_buffers": "16MB",
        "max_connections": 20,
    }
    with contextlib.ExitStack() as stack:
        template = PostgresServer(PG_VERSION, settings=settings)
        stack.callback(template.cleanup)
        template.start()
        fill(template, statements, long_every=LONG_EVERY)
        template.stop()  # a clean stop saves the entries, which each copy loads
        started: list[PostgresServer] = []
        errors: list[BaseException] = []
        # Copying and starting is mostly waiting (disk, the server getting ready): a few at
        # a time.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(copy_of, template, settings) for _ in range(servers)]:
                try:
                    server = future.result()
                except Exception as error:  # the others are still stopped and removed
                    errors.append(error)
                    continue
                stack.callback(server.cleanup)
                started.append(server)
        if errors:
            raise errors[0]
        yield started, ca


def measure(quick: bool) -> dict[str, Any]:
    servers, statements = (2, 200) if quick else (20, 5000)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pg-cold-")))
        # The servers run as the postgres user, which reads their certificate from here.
        workdir.chmod(0o755)
        started, ca = stack.enter_context(fleet(servers, statements, workdir))
        gateway = stack.enter_context(Pushgateway())
        document = {
            "postgres": [
                {
                    "name": f"cold-pg-{i}",
                    "host": server.host,
                    "port": server.port,
                    "dbname": "postgres",
                    "user": server.superuser,
                    "password": server.password,
                    "sslmode": "verify-full",
                    "sslrootcert": str(ca),
                }
                for i, server in enumerate(started)
            ]
        }
        targets_file = workdir / "targets.json"
        targets_file.write_text(json.dumps(document))
        env = {
            "AWS_REGION": "us-east-1",
            "LOG_LEVEL": "WARNING",
            "TARGETS_FILE": str(targets_file),
            "PUSHGATEWAY_URL": gateway.url,
            "PUSHGATEWAY_JOB": "bench-pg-cold",
            "POWERTOOLS_SERVICE_NAME": "middleware-monitoring",
        }
        spec = workdir / "handler-cold.json"
        spec.write_text(
            json.dumps(
                {
                    "env": env,
                    "count_at": [
                        {
                            "host": s.host,
                            "port": s.port,
                            "user": s.superuser,
                            "password": s.password,
                            "pid": s.pid,
                        }
                        for s in started
                    ],
                }
            )
        )
        few = workdir / "handler-cold-few-workers.json"
        few_env = {**env, "COLLECTOR_MAX_WORKERS": str(FEW_WORKERS)}
        few.write_text(json.dumps({**json.loads(spec.read_text()), "env": few_env}))
        workers = load_settings(env).max_workers
        runs = [run_worker("handler", spec, 2) for _ in range(1 if quick else RUNS)]
        few_runs = [run_worker("handler", few, 1) for _ in range(1 if quick else RUNS)]
        # What the warm statements alone cost the client: the floor of CPU per series.
        floor = run_worker("first-pass-floor", spec, 1)
    first_cpu = statistics.median(r["first_pass_cpu_s"] for r in runs)
    servers_cpu = statistics.median(r["first_pass_servers_cpu_s"] for r in runs)
    warm_cpu = statistics.median(r["pass_cpu_s"][0] for r in runs)
    # The warm invocation: its pass, the push body and the push, over the series it sent.
    warm_us_per_series = statistics.median(
        r["invocation_cpu_s"][1] / r["series"][1] * 1e6 for r in runs
    )
    return {
        "postgres_version": PG_VERSION,
        "servers": servers,
        "targets": servers,
        "statements_per_server": statements,
        "sslmode": "verify-full",
        "runs": len(runs),
        "up": runs[-1]["first_summary"]["targets_up"],
        "first_pass_s": round(statistics.median(r["pass_durations"][0] for r in runs), 3),
        "workers": workers,
        "few_workers": FEW_WORKERS,
        "few_workers_up": few_runs[-1]["first_summary"]["targets_up"],
        "first_pass_s_few_workers": round(
            statistics.median(r["pass_durations"][0] for r in few_runs), 3
        ),
        "command_few_workers": shown(worker_command("handler", few, 1)),
        "first_pass_cpu_ms": round(first_cpu * 1000, 1),
        "first_pass_servers_cpu_ms": round(servers_cpu * 1000, 1),
        "cpu_ms_per_cold_target": round(first_cpu * 1000 / servers, 2),
        "servers_cpu_ms_per_cold_target": round(servers_cpu * 1000 / servers, 2),
        "warm_pass_cpu_ms_per_target": round(warm_cpu * 1000 / servers, 2),
        "warm_series": runs[-1]["series"][1],
        "warm_invocation_cpu_us_per_series": round(warm_us_per_series, 2),
        "warm_invocation_cpu_ms": round(
            statistics.median(r["invocation_cpu_s"][1] for r in runs) * 1000, 1
        ),
        "warm_floor_cpu_ms": round(statistics.median(floor["warm_floor_cpu_s"]) * 1000, 1),
        "warm_floor_statements": floor["warm_statements"],
        "command_floor": shown(worker_command("first-pass-floor", spec, 1)),
        "goal_cpu_ms_per_target": GOAL_CPU_MS_PER_TARGET,
        "goal_cpu_us_per_series": GOAL_CPU_US_PER_SERIES,
        "command": shown(worker_command("handler", spec, 2)),
    }


def section(figures: Mapping[str, Any]) -> Section:
    """The report's section (bench/section.py), from the stored figures only."""
    n = figures["targets"]
    return Section(
        question=(
            "How much collector CPU does a cold PostgreSQL target take when each target is "
            f"its own server ({n} servers), and per series of a warm invocation?"
        ),
        method=(
            f"{n} PostgreSQL {figures['postgres_version']} servers with TLS, each holding "
            f"{figures['statements_per_server']:,} pg_stat_statements entries, one target "
            f"each (a targets file, sslmode {figures['sslmode']} against the servers' CA), so "
            "every target carries its server's series: statements with their classification "
            "and texts, the QPS snapshots, activity, database sizes, health. A fresh function "
            "instance (`bench/worker.py handler`) runs its first pass, then a warm one; CPU "
            "is the worker process's (user + system) during the pass, and the servers' "
            "(every process of theirs, from /proc) meanwhile. CPU per series: the warm "
            "invocation's process CPU (all threads: the pass, encoding the push body, the "
            "push to a Pushgateway) over the series it sent. Median of "
            f"{figures['runs']} fresh instances."
        ),
        command=str(figures["command"]),
        table=Table(
            (
                "pass",
                "collector CPU (ms)",
                "collector CPU per target (ms)",
                "servers' CPU per target (ms)",
                "targets up",
            ),
            [
                (
                    f"first pass of a cold instance, {n} targets",
                    figures["first_pass_cpu_ms"],
                    figures["cpu_ms_per_cold_target"],
                    figures["servers_cpu_ms_per_cold_target"],
                    f"{figures['up']}/{n}",
                ),
                (
                    "the warm pass after it",
                    round(figures["warm_pass_cpu_ms_per_target"] * n, 1),
                    figures["warm_pass_cpu_ms_per_target"],
                    None,
                    f"{figures['up']}/{n}",
                ),
            ],
        ),
        goals=[
            Goal(
                "collector CPU per cold target, one target per server",
                figures["cpu_ms_per_cold_target"],
                figures["goal_cpu_ms_per_target"],
                "ms",
            ),
            *_per_series_goal(figures),
        ],
        notes=[*_few_workers_note(figures), *_per_series_floor_note(figures)],
    )


def _per_series_floor_note(figures: Mapping[str, Any]) -> list[str]:
    if "warm_floor_cpu_ms" not in figures:  # figures stored before it was measured
        return []
    series = figures["warm_series"]
    floor_ms = figures["warm_floor_cpu_ms"]
    pass_ms = figures["warm_pass_cpu_ms_per_target"] * figures["targets"]
    return [
        f"CPU per series: the warm invocation used {number(figures['warm_invocation_cpu_ms'])} "
        f"ms for {series:,} series ({number(pass_ms)} "
        "ms of it in the pass, the rest in the push body and the push). The statements of a "
        f"warm pass alone ({figures['warm_floor_statements']}: each target's, recorded from "
        "its own source, liveness check included), run over open pg8000 connections in a "
        f"pool, took {number(floor_ms)} ms of CPU: {number(floor_ms / series * 1000)} µs per "
        "series before anything is made of their rows; the client's CPU goes with its round "
        f"trips, not its series (`{figures['command_floor']}`)."
    ]


def _per_series_goal(figures: Mapping[str, Any]) -> list[Goal]:
    if "warm_invocation_cpu_us_per_series" not in figures:  # stored before it was measured
        return []
    return [
        Goal(
            "collector CPU per series of a warm invocation, encoding included, each target "
            "its own server",
            figures["warm_invocation_cpu_us_per_series"],
            figures.get("goal_cpu_us_per_series", GOAL_CPU_US_PER_SERIES),
            "µs",
        )
    ]


def _few_workers_note(figures: Mapping[str, Any]) -> list[str]:
    if "first_pass_s_few_workers" not in figures:  # figures stored before it was measured
        return []
    n = figures["targets"]
    return [
        f"First pass of the {n} cold targets: {figures['first_pass_s']:.2f} s with the "
        f"default {figures['workers']} workers, {figures['first_pass_s_few_workers']:.2f} s "
        f"with COLLECTOR_MAX_WORKERS={figures['few_workers']} "
        f"({figures['few_workers_up']}/{n} up; `{figures['command_few_workers']}`). Each "
        "target takes one QPS window (PG_QPS_SAMPLE_SECONDS); a window holds no worker, so "
        "the windows overlap rather than queue for the workers."
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 servers of 200 statements")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick), indent=2))


if __name__ == "__main__":
    main()
