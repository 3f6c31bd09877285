"""The function as deployed: `sam build` of the repository's template (offline, from the
wheelhouse `make install` fills), and its handler run from the built artifact alone, as Lambda
runs it: a fresh process per cold start, the code directory read-only, only the artifact and
the runtime's own boto3 on the path, the environment CloudFormation would give it.

One build per test session (the ``sam_artifact`` fixture of tests/integration/conftest.py);
everything is written under pytest's temporary directory."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[2]
VENV_BIN: Final = Path(sys.executable).parent
WHEELHOUSE: Final = ROOT / ".wheelhouse"
# What Lambda's python3.12 runtime has besides the function's code: boto3 and what it needs.
RUNTIME_PACKAGES: Final = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "six.py",
    "urllib3",
)


@dataclass(frozen=True)
class SamArtifact:
    build_dir: Path
    # The CA bundle the layer was built from (a throwaway CA made for the build).
    ca: bytes
    # The runtime's packages (boto3...), on the path after the function's code.
    runtime_dir: Path

    @property
    def function_dir(self) -> Path:
        return self.build_dir / "CollectorFunction"


def sam_build(work: Path, extra_files: Mapping[str, str]) -> SamArtifact:
    """`sam build` of a copy of the repository's template, function and layer, with
    ``extra_files`` put in functions/collector/ first (a targets document, as a user places
    it there for TARGETS_FILE). The built function directory is then made read-only."""
    if not any(WHEELHOUSE.glob("pymongo-*.whl")):
        raise RuntimeError(f"{WHEELHOUSE} has no Lambda wheels: run `make install`")
    source = work / "source"
    source.mkdir()
    shutil.copy(ROOT / "template.yaml", source / "template.yaml")
    shutil.copytree(
        ROOT / "functions",
        source / "functions",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    shutil.copytree(ROOT / "layers", source / "layers")
    for name, text in extra_files.items():
        (source / "functions" / "collector" / name).write_text(text)
    ca = work / "test-ca.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=test-only CA", "-keyout", str(work / "ca.key"), "-out", str(ca)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    app_dir = work / "sam-cli"
    app_dir.mkdir()
    (app_dir / "metadata.json").write_text('{"lastVersionCheck": "2099-01-01T00:00:00.000000"}')
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "SAM_CLI_TELEMETRY": "0",
        "__SAM_CLI_APP_DIR": str(app_dir),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        "CA_BUNDLE": str(ca),
    }
    build = work / "build"
    done = subprocess.run(
        [
            *(str(VENV_BIN / "sam"), "build", "--template-file", str(source / "template.yaml")),
            # The template's Fn::ForEach (AWS::LanguageExtensions) is expanded by the CLI.
            "--language-extensions",
            *("--build-dir", str(build), "--cache-dir", str(work / "cache")),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sam build failed:\n{done.stdout}\n{done.stderr}")
    _read_only(build / "CollectorFunction")
    return SamArtifact(build, ca.read_bytes(), _runtime_dir(work / "runtime"))


def _read_only(top: Path) -> None:
    """Lambda's /var/task: nothing may be written there (a .pyc included)."""
    for path in [top, *top.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _runtime_dir(target: Path) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for name in RUNTIME_PACKAGES:
        (target / name).symlink_to(site / name)
    return target


HANDLER_RUN: Final = """
import importlib.machinery, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
# Every module compiled from source at import (no usable .pyc beside it).
compiled = []
to_code = importlib.machinery.SourceFileLoader.source_to_code
def counting(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return to_code(self, data, path, *args, **kwargs)
importlib.machinery.SourceFileLoader.source_to_code = counting
import app

class Context:
    function_name = "collector"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:collector"
    aws_request_id = "req-1"
    def get_remaining_time_in_millis(self):
        return 30000

outcomes = [app.lambda_handler(event, Context()) for event in json.loads(sys.argv[3])]
outside = sorted({m.__name__.partition(".")[0] for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and "site-packages" in m.__file__})
artifact = [path for path in compiled if path.startswith(sys.argv[1])]
print("RESULT " + json.dumps({"outcomes": outcomes, "outside": outside, "compiled": artifact}))
"""


@dataclass(frozen=True)
class Invocation:
    outcomes: list[dict[str, Any]]
    # Top-level packages imported from outside the artifact and the runtime's boto3.
    outside: list[str]
    # The artifact's modules compiled from source at import (none: it carries bytecode).
    compiled: list[str]
    log: str


def cold_start(
    artifact: SamArtifact,
    environment: Mapping[str, str],
    events: list[dict[str, Any]],
    *,
    lambda_env: Mapping[str, str],
) -> Invocation:
    """A new function instance (a fresh process) with the stack's ``environment`` plus what
    Lambda itself sets (``lambda_env``: region, credentials; here also the endpoints of the
    local stand-ins), handling ``events`` one after the other while warm."""
    env = {
        "PATH": os.environ["PATH"],
        "LAMBDA_TASK_ROOT": str(artifact.function_dir),
        # Nothing from this machine's environment or site-packages, and no bytecode written.
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **lambda_env,
        **environment,
    }
    done = subprocess.run(
        [
            *(sys.executable, "-S", "-c", HANDLER_RUN),
            *(str(artifact.function_dir), str(artifact.runtime_dir), json.dumps(events)),
        ],
        env=env,
        cwd=artifact.function_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise AssertionError(f"the handler failed (exit {done.returncode}):\n{log}")
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    report = json.loads(line.removeprefix("RESULT "))
    return Invocation(report["outcomes"], report["outside"], report["compiled"], log)


# The targets of the packaged document (TARGETS_FILE=targets.yaml).
FILE_TARGETS: Final = ("file-pg", "file-redis")


def packaged_targets(pg: Any, redis: Any) -> str:
    """targets.yaml as a user writes it (section 9's shape) for the session's servers."""
    from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD
    from tests.standins.redis import TOKEN

    return (
        "postgres:\n"
        f"  - name: {FILE_TARGETS[0]}\n"
        f"    host: {pg.host}\n"
        f"    port: {pg.port}\n"
        f"    dbname: {APP_DB}\n"
        f"    user: {MONITOR}\n"
        f"    password: {MONITOR_PASSWORD}\n"
        "    sslmode: disable\n"
        "elasticache:\n"
        f"  - name: {FILE_TARGETS[1]}\n"
        f"    host: {redis.host}\n"
        f"    port: {redis.port}\n"
        f"    password: {TOKEN}\n"
    )
