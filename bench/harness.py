"""What every built-in section of `make bench` shares: the servers, the settings of the run,
and how a measured worker process (bench/worker.py) is started and read."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleet import DocServerRef, FleetSpec, PgServerRef

ROOT = Path(__file__).resolve().parents[1]
PG_VERSION = 17
LONG_EVERY = 10  # every 10th statement has a 10 KB text
TIMER = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Sizes:
    """How much each section does; ``quick`` is the smoke test's tiny size."""

    quick: bool
    runs: int
    passes: int
    statements: int
    large_statements: int
    exporter_scrapes: int
    churn_per_scrape: int
    scaling: tuple[int, ...]
    scaling_runs: int
    scaling_passes: int
    fleet: tuple[int, ...]
    fleet_servers: int
    fleet_logins: int
    fleet_runs: int
    fleet_passes: int
    floor_passes: int

    @classmethod
    def full(cls, runs: int, statements: int, large_statements: int) -> Sizes:
        return cls(
            quick=False,
            runs=runs,
            passes=4,
            statements=statements,
            large_statements=large_statements,
            exporter_scrapes=5,
            churn_per_scrape=5,
            scaling=(10, 50),
            scaling_runs=2,
            scaling_passes=3,
            fleet=(10, 50, 100),
            fleet_servers=3,
            fleet_logins=4,
            fleet_runs=1,
            fleet_passes=4,
            floor_passes=15,
        )

    @classmethod
    def tiny(cls) -> Sizes:
        return cls(
            quick=True,
            runs=1,
            passes=2,
            statements=200,
            large_statements=0,
            exporter_scrapes=2,
            churn_per_scrape=2,
            scaling=(6,),
            scaling_runs=1,
            scaling_passes=2,
            fleet=(2, 4),
            fleet_servers=2,
            fleet_logins=2,
            fleet_runs=1,
            fleet_passes=2,
            floor_passes=2,
        )


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
    stack: contextlib.ExitStack
    extra_pg: list[Any] = field(default_factory=list)

    def pg_ref(self, server: Any) -> PgServerRef:
        return PgServerRef(server.host, server.port, server.superuser, server.password)

    def aws_env(self) -> dict[str, str]:
        env = dict(self.aws.env())
        env["LOG_LEVEL"] = "WARNING"
        return env

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    def write_spec(self, name: str, spec: FleetSpec) -> Path:
        return self.write(f"{name}.json", spec.dumps())


def start_pg(stack: contextlib.ExitStack, statements: int) -> Any:
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
    fill(server, statements, long_every=LONG_EVERY)
    return server


@contextlib.contextmanager
def servers(statements: int) -> Iterator[Servers]:
    from tests.standins.aws import MotoServer
    from tests.standins.docdb import start_demo_docdb
    from tests.standins.pushgateway import Pushgateway

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        reference = start_pg(stack, statements)
        second = start_pg(stack, statements)
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
            stack,
        )


# --- worker processes --------------------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PG_", "MONGO_", "PUSHGATEWAY_", "KAFKA_", "TARGETS_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["AWS_CONFIG_FILE"] = "/dev/null"
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    env.update(extra or {})
    return env


def worker_command(mode: str, spec_path: Path, passes: int, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.worker",
        mode,
        str(spec_path),
        "--passes",
        str(passes),
        *flags,
    ]


def shown(command: Sequence[str]) -> str:
    """A command as it would be typed from the repository root (temporary files by name)."""
    parts = [
        ".venv/bin/python" if part == sys.executable else Path(part).name if "/" in part else part
        for part in command
    ]
    return " ".join(parts)


def run_worker(
    mode: str,
    spec_path: Path,
    passes: int,
    *flags: str,
    timed: bool = False,
    python_flags: Sequence[str] = (),
    timeout: float = 900,
    prefix: Sequence[str] = (),
) -> dict[str, Any]:
    """Run one worker process; with ``timed``, under ``/usr/bin/time -v`` (its peak RSS);
    ``prefix`` runs before it and ends by exec-ing it (bench/lambda_sizes.py: into a cgroup)."""
    command = worker_command(mode, spec_path, passes, *flags)
    command[1:1] = list(python_flags)
    if timed:
        command = [*TIMER, *command]
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
    out["peak_rss_mb"] = int(rss.group(1)) / 1024 if rss else out.get("maxrss_mb", 0.0)
    return out


def peak_rss(runs: Sequence[dict[str, Any]]) -> float:
    return max(float(r["peak_rss_mb"]) for r in runs)


def template_default(parameter: str) -> str:
    """A parameter's Default in template.yaml (CloudFormation's ``!Ref``-style tags are read
    as plain values: only the Parameters section is used)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)

    Loader.add_multi_constructor("!", any_tag)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    return str(template["Parameters"][parameter]["Default"])
