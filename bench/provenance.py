"""What a benchmark report is a report of: the commit measured, whether the tree held changes
that commit does not, the machine and how busy it was."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

# What the measured code is made of: a change here that is not committed means the report
# would name a commit that is not what ran.
MEASURED_PATHS = (
    "functions",
    "bench",
    "tests/standins",
    "Makefile",
    "requirements-dev.txt",
    "functions/collector/requirements.txt",
    "pyproject.toml",
)
# The report itself, its raw figures and its charts: rewritten by every run, committed
# afterwards. A name ending in / is a folder.
NOT_MEASURED = ("bench/RESULTS.md", "bench/results.json", "bench/charts/")


class DirtyTree(RuntimeError):
    """The tree holds uncommitted changes to what the benchmark measures."""


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise DirtyTree(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip()}")
    return proc.stdout


def commit(root: Path) -> str:
    return _git(root, "rev-parse", "HEAD").strip()


def uncommitted(root: Path) -> list[str]:
    """Files under MEASURED_PATHS that differ from HEAD: tracked files changed (staged or
    not) and files not yet tracked (a new module the run would import), .gitignore'd ones
    aside; the report, its figures and charts (NOT_MEASURED) aside."""
    out = _git(root, "status", "--porcelain=v1", "--untracked-files=all", "--", *MEASURED_PATHS)
    files: list[str] = []
    for line in out.splitlines():
        path = line[3:]
        if " -> " in path:  # a rename names both
            path = path.split(" -> ", 1)[1]
        path = path.strip('"')
        if not any(path == n or (n.endswith("/") and path.startswith(n)) for n in NOT_MEASURED):
            files.append(path)
    return sorted(files)


def require_clean(root: Path) -> str:
    """The commit to name in the report; DirtyTree naming every uncommitted file."""
    changed = uncommitted(root)
    if changed:
        raise DirtyTree(
            "refusing to write bench/RESULTS.md: the tree holds uncommitted changes to what "
            f"the benchmark measures ({', '.join(changed)}); commit or stash them first "
            "(`--quick` runs on a dirty tree and writes no RESULTS.md)"
        )
    return commit(root)


@dataclass(frozen=True)
class Stamp:
    """The commit, and the files that differed from it when the run started (empty for a
    run that may write RESULTS.md)."""

    commit: str
    uncommitted: tuple[str, ...]

    def describe(self) -> str:
        if not self.uncommitted:
            return f"commit `{self.commit}` (clean tree)"
        return (
            f"commit `{self.commit}` plus uncommitted changes to "
            f"{', '.join(self.uncommitted)} (a partial run: not a result)"
        )


def stamp(root: Path) -> Stamp:
    return Stamp(commit(root), tuple(uncommitted(root)))


def load_average() -> tuple[float, float, float]:
    """/proc/loadavg's 1, 5 and 15 minute averages."""
    with contextlib.suppress(OSError, ValueError):
        one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
        return float(one), float(five), float(fifteen)
    nan = float("nan")
    return nan, nan, nan


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
