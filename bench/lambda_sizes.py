"""Lambda-sized figures: cold start and warm invocation of a function instance whose CPU is
limited to what Lambda gives a 256 MB and a 1,024 MB function, for the fleets a shard would
carry, and from them which MemorySize and Shards carry 100, 300 and 1,000 targets.

    .venv/bin/python -m bench.lambda_sizes [--quick]

Lambda gives CPU in proportion to memory: at 1,769 MB a function has one vCPU (one
vCPU-second of credits per second), so 256 MB is about 0.145 of a vCPU and 1,024 MB about
0.58. Here the share is a cgroup v1 CPU quota: a child group of /sys/fs/cgroup/cpu with
cpu.cfs_period_us 100,000 and cpu.cfs_quota_us = period x MB / 1,769, the worker joining it
before it execs Python (so interpreter start and import are limited too); the group is
removed after. The PostgreSQL server and the Pushgateway are not limited (they are not the
function). The worker is section 4's and section 7's: `bench/worker.py handler` with a
targets file (TARGETS_FILE) of PostgreSQL targets. Where the cgroup cannot be made, the
figures say so and nothing is measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import TIMER, run_worker, shown, template_default, worker_command
from bench.section import Goal, Section, Table, number

CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
ONE_VCPU_MB = 1769  # input: AWS Lambda docs, "Configuring Lambda function memory"
LAMBDA_MEMORY_DOC = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html"
MEMORY_SIZES_MB = (256, 1024)
FLEET_TOTALS = (100, 300, 1000)
SHARDS = (1, 2, 4, 8, 16)
SCHEDULE_SECONDS = 60
# A warm invocation fits the minute with margin when it takes at most half the template's
# default FunctionTimeout: twice as slow (a busy database, a slow push) still ends in time.
MARGIN = 0.5
DATABASES = 5
LOGINS = 2
LOGIN_PASSWORD = "lambda-sizes-pw"
PG_VERSION = 17


def quota_us(memory_mb: int) -> int:
    """cpu.cfs_quota_us giving a process the CPU Lambda gives ``memory_mb``."""
    return round(PERIOD_US * memory_mb / ONE_VCPU_MB)


def cgroup_unavailable(root: Path | None = None) -> str:
    """Why a CPU-quota cgroup cannot be made under ``root`` (CGROUP_ROOT; "" when it can)."""
    root = CGROUP_ROOT if root is None else root
    if not (root / "cpu.cfs_quota_us").exists():
        return f"{root} is not a cgroup v1 CPU controller (no cpu.cfs_quota_us there)"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable by this user (uid {os.getuid()})"
    return ""


@contextmanager
def cpu_quota(memory_mb: int, root: Path | None = None) -> Iterator[list[str]]:
    """A child cgroup limited to ``memory_mb``'s CPU share; yields the command prefix that
    moves a process into it and execs the rest of the command. Removed on exit (its
    processes have exited by then)."""
    root = CGROUP_ROOT if root is None else root
    group = Path(tempfile.mkdtemp(prefix=f"mm-bench-{memory_mb}mb-", dir=root))
    try:
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota_us(memory_mb)))
        procs = str(group / "cgroup.procs")
        yield ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs]
    finally:
        group.rmdir()


def targets_document(server: Any, n: int) -> dict[str, Any]:
    """Target i: database i mod DATABASES of the one server, login i mod LOGINS."""
    return {
        "postgres": [
            {
                "name": f"lambda-pg-{i}",
                "host": server.host,
                "port": server.port,
                "dbname": f"lambda_db_{i % DATABASES}",
                "user": f"lambda_login_{i % LOGINS}",
                "password": LOGIN_PASSWORD,
            }
            for i in range(n)
        ]
    }


def slope(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (intercept, per-target slope) of (targets, seconds)."""
    if len(points) == 1:
        ((n, y),) = points
        return 0.0, y / n
    mean_n = statistics.fmean(n for n, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    den = sum((n - mean_n) ** 2 for n, _ in points)
    b = sum((n - mean_n) * (y - mean_y) for n, y in points) / den
    return mean_y - b * mean_n, b


def measure(quick: bool) -> dict[str, Any]:
    from tests.standins.postgres import PostgresServer
    from tests.standins.pushgateway import Pushgateway

    unavailable = cgroup_unavailable()
    timeout_s = int(template_default("FunctionTimeout"))
    base: dict[str, Any] = {
        "cgroup_root": str(CGROUP_ROOT),
        "one_vcpu_mb": ONE_VCPU_MB,
        "period_us": PERIOD_US,
        "function_timeout_s": timeout_s,
        "margin": MARGIN,
        "memory_mb": {str(mb): {"quota_us": quota_us(mb)} for mb in MEMORY_SIZES_MB},
    }
    if unavailable:
        return {**base, "cgroup": "unavailable", "reason": unavailable}
    sizes, passes = ((3,), 2) if quick else ((25, 75, 250), 3)
    with (
        PostgresServer(PG_VERSION, settings={"max_connections": max(sizes) + 50}) as server,
        Pushgateway() as gateway,
        tempfile.TemporaryDirectory(prefix="bench-lambda-") as work,
    ):
        server.execute_as_superuser(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database="template1"
        )
        for j in range(LOGINS):
            server.create_role(f"lambda_login_{j}", LOGIN_PASSWORD)
        for k in range(DATABASES):
            server.create_database(f"lambda_db_{k}")
        command = ""
        for mb in MEMORY_SIZES_MB:
            measured: dict[str, Any] = {}
            for n in sizes:
                targets = Path(work, f"targets-{n}.json")
                targets.write_text(json.dumps(targets_document(server, n)))
                spec = Path(work, f"handler-{n}.json")
                spec.write_text(
                    json.dumps(
                        {
                            "TARGETS_FILE": str(targets),
                            "PUSHGATEWAY_URL": gateway.url,
                            "PUSHGATEWAY_JOB": "bench-lambda-sizes",
                            "POWERTOOLS_SERVICE_NAME": "middleware-monitoring",
                            "LOG_LEVEL": "WARNING",
                            "AWS_DEFAULT_REGION": "us-east-1",
                        }
                    )
                )
                with cpu_quota(mb) as prefix:
                    # Under /usr/bin/time, as section 4: its child starts from a small
                    # process, so the peak RSS is the worker's own (a child forked from
                    # this large one would count this one's pages in its ru_maxrss).
                    run = run_worker(
                        "handler", spec, passes, prefix=prefix, timed=True, timeout=300
                    )
                    shell, procs = prefix[:3], Path(prefix[3])
                    command = " ".join(
                        [
                            shlex.join(shell),
                            f"{CGROUP_ROOT}/<group>/{procs.name}",
                            shown([*TIMER, *worker_command("handler", spec, passes)]),
                        ]
                    )
                warm = run["invocations"][1:]
                measured[str(n)] = {
                    # Spawn to the end of the first invocation: the process wall less the
                    # warm invocations after it (and the exit, a few ms, stays in).
                    "cold_start_s": round(run["wall_s"] - sum(warm), 4),
                    "import_s": round(run["import_s"], 4),
                    "first_invocation_s": round(run["invocations"][0], 4),
                    "warm_invocation_s": round(statistics.median(warm), 4),
                    "warm_pass_s": round(statistics.median(run["pass_durations"][1:]), 4),
                    "targets_up": run["summary"]["targets_up"],
                    "peak_rss_mb": round(float(run["peak_rss_mb"]), 1),
                }
            intercept, per_target = slope(
                [(int(n), m["warm_invocation_s"]) for n, m in measured.items()]
            )
            base["memory_mb"][str(mb)].update(
                {
                    "sizes": measured,
                    "warm_intercept_s": round(intercept, 4),
                    "warm_per_target_s": round(per_target, 5),
                }
            )
    return {
        **base,
        "cgroup": "limited",
        "passes": passes,
        "postgres_version": PG_VERSION,
        "databases": DATABASES,
        "command": command,
    }


def derived_warm_s(memory: Mapping[str, Any], targets: int) -> float:
    return float(memory["warm_intercept_s"]) + float(memory["warm_per_target_s"]) * targets


def section(figures: Mapping[str, Any]) -> Section:
    """The report's section (bench/section.py), from the stored figures only."""
    question = (
        "Which MemorySize and Shards carry 100, 300 and 1,000 targets, with the CPU Lambda "
        "gives 256 MB and 1,024 MB?"
    )
    root = figures["cgroup_root"]
    share = ", ".join(
        f"{int(mb):,} MB = quota {m['quota_us']:,} us per {figures['period_us']:,} us "
        f"({number(int(mb) / figures['one_vcpu_mb'])} vCPU)"
        for mb, m in figures["memory_mb"].items()
    )
    doc = (
        f"Lambda gives CPU in proportion to memory, one vCPU at {figures['one_vcpu_mb']:,} MB "
        f"({LAMBDA_MEMORY_DOC}): {share}."
    )
    if figures["cgroup"] != "limited":
        return Section(
            question=question,
            method=f"Not measured: the CPU share could not be limited ({figures['reason']}).",
            command=".venv/bin/python -m bench.lambda_sizes",
            table=Table(
                ("MemorySize", "CPU quota (us per 100,000 us)"),
                [(f"{int(mb):,} MB", m["quota_us"]) for mb, m in figures["memory_mb"].items()],
            ),
            no_goal=f"Not measured here: {figures['reason']}.",
            notes=[doc],
        )
    limit = figures["function_timeout_s"] * figures["margin"]
    memories = figures["memory_mb"]
    rows: list[tuple[object, ...]] = []
    for total in FLEET_TOTALS:
        for shards in SHARDS:
            per_shard = math.ceil(total / shards)
            row: list[object] = [f"{total:,} targets", shards, per_shard]
            for memory in memories.values():
                warm = derived_warm_s(memory, per_shard)
                row += [round(warm, 2), "yes" if warm <= limit else "no"]
            rows.append(tuple(row))
    columns = ["fleet", "Shards", "targets per shard"]
    for mb in memories:
        columns += [f"{int(mb):,} MB warm invocation (s)", f"{int(mb):,} MB fits"]
    measured_notes = []
    goals = []
    for mb, memory in memories.items():
        sizes = sorted((int(n), m) for n, m in memory["sizes"].items())
        measured_notes.append(
            f"Measured at {int(mb):,} MB: "
            + "; ".join(
                f"{n} targets cold start {number(m['cold_start_s'])} s (import "
                f"{number(m['import_s'])} s), warm invocation {number(m['warm_invocation_s'])} s, "
                f"{m['targets_up']}/{n} up, peak RSS {number(m['peak_rss_mb'])} MB"
                for n, m in sizes
            )
            + f"; per added target {number(memory['warm_per_target_s'] * 1000)} ms."
        )
        largest, big = sizes[-1]
        goals.append(
            Goal(
                f"cold start of a {largest}-target shard at {int(mb):,} MB, within the "
                "default FunctionTimeout",
                round(big["cold_start_s"], 2),
                figures["function_timeout_s"],
                "s",
            )
        )
    choices = []
    for total in FLEET_TOTALS:
        for mb, memory in memories.items():
            fit = next(
                (s for s in SHARDS if derived_warm_s(memory, math.ceil(total / s)) <= limit),
                None,
            )
            choices.append(
                f"{total:,} targets at {int(mb):,} MB: "
                + (f"{fit} shard{'s' if fit != 1 else ''}" if fit else f"more than {SHARDS[-1]}")
            )
    return Section(
        question=question,
        method=(
            "A function instance (`bench/worker.py handler`: import, then "
            f"{figures['passes']} invocations with their push) in a cgroup v1 CPU quota under "
            f"{root}, for fleets of PostgreSQL targets from a targets file on one PostgreSQL "
            f"{figures['postgres_version']} ({figures['databases']} databases; the server and "
            "the Pushgateway are not limited). Cold start: spawn to the end of the first "
            "invocation; warm invocation: pass + push, median of the invocations after the "
            "first. The table is derived, not measured: warm invocation = intercept + "
            "per-target slope (least squares over the measured sizes) x targets per shard; "
            f"fits = at most {number(figures['margin'] * 100)}% of the default FunctionTimeout "
            f"({figures['function_timeout_s']} s), i.e. {number(limit)} s of the schedule's "
            "minute."
        ),
        command=str(figures["command"]),
        table=Table(columns, rows),
        goals=goals,
        notes=[
            doc,
            *measured_notes,
            "Smallest Shards that fit (derived): " + "; ".join(choices) + ".",
            "The targets here are databases of one local server with few pg_stat_statements "
            "entries: a real target's network round trips and a full pg_stat_statements cost "
            "more (section 7's fleet is heavier per target), so read the fits column as an "
            "upper bound on what one shard carries.",
            "Targets per shard assume an even split; rendezvous hashing of the names is close "
            "to even but not exact, so leave a shard's worth of headroom.",
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    figures = measure(args.quick)
    print(json.dumps(figures, indent=2))
    print("\n".join(section(figures).markdown("-")))


if __name__ == "__main__":
    main()
