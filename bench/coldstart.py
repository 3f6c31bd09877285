"""Section 4 of `make bench`: cold start and peak memory of a function instance (the
Lambda handler imported in a fresh process and invoked, push included), for the reference
fleet and for a PostgreSQL-only configuration; import time by package."""

from __future__ import annotations

import json
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from bench.fleet import FleetSpec, collector_env
from bench.harness import (
    TIMER,
    Servers,
    Sizes,
    peak_rss,
    run_worker,
    shown,
    template_default,
    worker_command,
)
from bench.report import Figure, Part, counted, ms
from bench.section import Goal, Section, Table, number

LAMBDA_SMALLEST_MB = 128  # input: the smallest memory size Lambda offers
# Heavy packages imported only where first used; whether a configuration loaded them is
# read from sys.modules after its first invocation.
LAZY = ("pymongo", "boto3")


def importtime_breakdown(stderr: str) -> list[tuple[str, float]]:
    """Self time per top-level package from ``-X importtime`` lines, milliseconds."""
    per: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s+)(\S+)", line)
        if match:
            per[match.group(4).split(".")[0]] += int(match.group(1)) / 1000
    return sorted(per.items(), key=lambda item: -item[1])


# A function instance from the artifact `sam build --language-extensions` makes, as Lambda runs
# it: a fresh `python -S`, only the read-only code directory and the runtime's boto3 on the
# path, no bytecode written (tests/integration/deployed.py builds it, offline). It reports its
# own import and invocation times and peak RSS; the parent times the process.
ARTIFACT_RUN = """
import json, resource, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
started = time.perf_counter()
import app
imported = time.perf_counter()

class Context:
    function_name = "middleware-monitoring-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self):
        return 50000

invocations = []
for _ in range(int(sys.argv[3])):
    begun = time.perf_counter()
    app.lambda_handler({}, Context())
    invocations.append(time.perf_counter() - begun)
print("RESULT " + json.dumps({
    "import_s": imported - started,
    "invocations": invocations,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def artifact_cold_start(
    s: Servers, env: Mapping[str, str], passes: int, runs: int
) -> dict[str, Any]:
    """The reference fleet's cold start from the `sam build` artifact: median of ``runs``
    fresh processes (a build directory under the run's work directory)."""
    import subprocess
    import sys
    import time

    from tests.integration.deployed import sam_build

    work = s.workdir / "sam-artifact"
    work.mkdir()
    artifact = sam_build(work, {})
    child = {
        "PATH": os.environ["PATH"],
        "LAMBDA_TASK_ROOT": str(artifact.function_dir),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    results: list[dict[str, Any]] = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [
                *(sys.executable, "-S", "-c", ARTIFACT_RUN),
                *(str(artifact.function_dir), str(artifact.runtime_dir), str(passes)),
            ],
            env=child,
            cwd=artifact.function_dir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"the artifact's handler failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
            )
        (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        results.append({"wall_s": wall, **json.loads(line.removeprefix("RESULT "))})
    return {
        "wall_s": statistics.median(r["wall_s"] for r in results),
        "import_s": statistics.median(r["import_s"] for r in results),
        "first_invocation_s": statistics.median(r["invocations"][0] for r in results),
        "warm_invocation_s": statistics.median(
            statistics.median(r["invocations"][1:]) for r in results
        ),
        "rss_mb": max(r["rss_mb"] for r in results),
    }


def handler_env(s: Servers, spec: FleetSpec) -> dict[str, str]:
    return {
        **collector_env(spec),
        "PUSHGATEWAY_URL": s.gateway.url,
        "PUSHGATEWAY_JOB": "bench",
        "POWERTOOLS_SERVICE_NAME": "middleware-monitoring",
    }


def cold_start(s: Servers, sizes: Sizes, spec: FleetSpec) -> tuple[Part, dict[str, Any]]:
    import json

    from bench import cloudwatch_data

    cloudwatch_data.seed(s.aws, spec)
    full_env = handler_env(s, spec)
    pg_only = FleetSpec(
        postgres=[{k: v for k, v in spec.postgres[0].items() if k != "rds_id"}], env=s.aws_env()
    )
    pg_env = handler_env(s, pg_only)
    full_path = s.write("handler-reference.json", json.dumps(full_env))
    pg_path = s.write("handler-postgres-only.json", json.dumps(pg_env))
    passes = 4
    results: dict[str, list[dict[str, Any]]] = {"full": [], "pg": []}
    for _ in range(sizes.runs):
        results["full"].append(run_worker("handler", full_path, passes, timed=True))
        results["pg"].append(run_worker("handler", pg_path, passes, timed=True))
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
    pg_warm = med("pg", lambda r: statistics.median(r["invocations"][1:]))
    rss_full = peak_rss(results["full"])
    rss_pg = peak_rss(results["pg"])
    loaded_full = results["full"][-1]["loaded"]
    loaded_pg = results["pg"][-1]["loaded"]
    memory_mb = int(template_default("MemorySize"))
    command = " ".join([*TIMER, shown(worker_command("handler", full_path, passes))])
    artifact = artifact_cold_start(s, full_env, passes, sizes.runs)
    part = Part("4", "Cold start and peak memory of a function instance")
    part.figures += [
        Figure(
            "4",
            "Cold start, reference fleet: fresh process, import the handler, first invocation "
            "(pass + push)",
            f"{ms(full_wall)} process wall (import {ms(full_import)}, first invocation "
            f"{ms(full_first)})",
            f"PostgreSQL-only configuration: {ms(pg_wall)} (import {ms(pg_import)}, first "
            f"invocation {ms(pg_first)})",
            "",
            command,
        ),
        Figure(
            "4b",
            f"Peak RSS of a function instance (import, first invocation, {passes - 1} warm "
            "invocations, push included)",
            f"{rss_full:.0f} MB (reference fleet)",
            f"PostgreSQL-only: {rss_pg:.0f} MB",
            f"within {LAMBDA_SMALLEST_MB} MB: {'yes' if rss_full < LAMBDA_SMALLEST_MB else 'no'}; "
            f"within the template's {memory_mb} MB: {'yes' if rss_full < memory_mb else 'no'}",
            command,
        ),
    ]
    part.add(
        f"Median of {counted(sizes.runs, 'fresh process', 'fresh processes')} per "
        "configuration. Process wall = spawn to "
        "exit of `bench/worker.py handler` (interpreter start, handler import, first invocation "
        f"with its push to the Pushgateway, {passes - 1} warm invocations, exit). Warm "
        f"invocation (pass + push), median: reference fleet {ms(full_warm)}, PostgreSQL-only "
        f"{ms(pg_warm)}. Peak RSS is `Maximum resident set size` of `/usr/bin/time -v`, the "
        "largest over the runs.",
        "",
        "Of the heavy packages imported where first used, loaded after the first invocation: "
        + "; ".join(
            f"{pkg}: reference fleet {'yes' if pkg in loaded_full else 'no'}, PostgreSQL-only "
            f"{'yes' if pkg in loaded_pg else 'no'}"
            for pkg in LAZY
        )
        + ".",
        "",
        "Import time by package (self time summed over its modules, `-X importtime`, one "
        f"traced run per configuration): total {sum(t for _, t in breakdown):.0f} ms reference "
        f"fleet, {sum(breakdown_pg.values()):.0f} ms PostgreSQL-only, against an untraced "
        f"handler import of {ms(full_import)} and {ms(pg_import)} (medians above).",
        "",
    )
    part.table(
        ("package", "reference fleet", "PostgreSQL-only"),
        (
            (name, f"{t:.0f} ms", f"{breakdown_pg.get(name, 0):.0f} ms")
            for name, t in breakdown[:14]
        ),
    )
    return part, {
        "warm_invocation_s": full_warm,
        "first_invocation_s": full_first,
        "import_s": full_import,
        "rss_mb": rss_full,
        "memory_mb": memory_mb,
        "runs": sizes.runs,
        "command": command,
        # The report's section (section() below) reads these.
        "passes": passes,
        "lambda_smallest_mb": LAMBDA_SMALLEST_MB,
        "configurations": {
            "reference": {
                "wall_s": full_wall,
                "import_s": full_import,
                "first_invocation_s": full_first,
                "warm_invocation_s": full_warm,
                "rss_mb": rss_full,
                "lazy_loaded": {pkg: pkg in loaded_full for pkg in LAZY},
                "import_ms_traced": round(sum(t for _, t in breakdown), 1),
            },
            "postgres_only": {
                "wall_s": pg_wall,
                "import_s": pg_import,
                "first_invocation_s": pg_first,
                "warm_invocation_s": pg_warm,
                "rss_mb": rss_pg,
                "lazy_loaded": {pkg: pkg in loaded_pg for pkg in LAZY},
                "import_ms_traced": round(sum(breakdown_pg.values()), 1),
            },
            # The same reference fleet, from the artifact `sam build` makes.
            "sam_artifact": artifact,
        },
        "import_ms_by_package": [
            {
                "package": name,
                "reference_ms": round(t, 1),
                "postgres_only_ms": round(breakdown_pg.get(name, 0.0), 1),
            }
            for name, t in breakdown[:14]
        ],
    }


# The configurations of the section, as the report names them.
CONFIGURATIONS = {
    "reference": "reference fleet (6 targets), from the repository",
    "postgres_only": "PostgreSQL-only configuration, from the repository",
    "sam_artifact": "reference fleet (6 targets), from the `sam build` artifact",
}


def section(figures: Mapping[str, Any]) -> Section:
    """The report's section (bench/section.py), from the stored figures only."""
    configs = figures["configurations"]
    passes = figures["passes"]
    memory_mb = figures["memory_mb"]
    rows = [
        (
            CONFIGURATIONS[key],
            c["wall_s"] * 1000,
            c["import_s"] * 1000,
            c["first_invocation_s"] * 1000,
            c["warm_invocation_s"] * 1000,
            c["rss_mb"],
        )
        for key, c in configs.items()
    ]
    loaded = "; ".join(
        f"{pkg}: "
        + ", ".join(
            f"{CONFIGURATIONS[key]} {'yes' if c['lazy_loaded'][pkg] else 'no'}"
            for key, c in configs.items()
            if "lazy_loaded" in c
        )
        for pkg in configs["reference"]["lazy_loaded"]
    )
    heaviest = ", ".join(
        f"{p['package']} {number(p['reference_ms'])} ms"
        for p in figures["import_ms_by_package"][:5]
    )
    return Section(
        question="How long does a cold start take, and how much memory does a function instance "
        "use?",
        method=(
            f"Median of {counted(figures['runs'], 'fresh process', 'fresh processes')} per "
            "configuration: process wall is "
            "spawn to exit of `bench/worker.py handler` (interpreter start, handler import, "
            f"first invocation with its push to the Pushgateway, {passes - 1} warm invocations, "
            "exit); warm invocation is pass + push. Peak RSS is `Maximum resident set size` of "
            "`/usr/bin/time -v`, the largest over the runs. The `sam build` artifact "
            "(`sam build --language-extensions`, offline, its code directory read-only with "
            "the bytecode it carries) runs as Lambda runs it: a fresh `python -S` with only the "
            "artifact and the runtime's boto3 on the path, the same environment, timed from "
            "spawn to exit by the bench, its peak RSS its own `ru_maxrss`."
        ),
        command=str(figures["command"]),
        table=Table(
            (
                "configuration",
                "process wall (ms)",
                "handler import (ms)",
                "first invocation (ms)",
                "warm invocation (ms)",
                "peak RSS (MB)",
            ),
            rows,
        ),
        goals=[
            Goal(
                f"peak RSS of a function instance, {CONFIGURATIONS[key]}, within the template's "
                "MemorySize",
                configs[key]["rss_mb"],
                memory_mb,
                "MB",
            )
            for key in ("reference", "sam_artifact")
            if key in configs
        ],
        notes=[
            f"Within Lambda's smallest size ({figures['lambda_smallest_mb']} MB): "
            + "; ".join(
                f"{CONFIGURATIONS[key]} "
                + ("yes" if c["rss_mb"] < figures["lambda_smallest_mb"] else "no")
                for key, c in configs.items()
            )
            + ".",
            f"Heavy packages imported where first used, loaded after the first invocation: "
            f"{loaded}.",
            f"Import self time by package (`-X importtime`, one traced run), heaviest: {heaviest}.",
        ],
    )
