"""`sam build` of the real template, offline, then the built artifact alone (no site-packages)
running its handler for one pass against a local PostgreSQL and Pushgateway.

Offline: no telemetry, no version check, and pip reads the Lambda-platform wheels that
`make install` put in .wheelhouse. The CA-bundle layer is built from a CA made here; AWS's
bundle is only ever downloaded on a deploying machine (`make ca-bundle`).
cfn-lint and `sam validate --lint` run in `make lint` (target lint-template)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.deployed import SamArtifact
from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD, prepare
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WHEELHOUSE = ROOT / ".wheelhouse"
JOB = "sam-artifact"


@pytest.fixture(scope="module")
def built(sam_artifact: SamArtifact) -> tuple[Path, bytes]:
    """(build directory, the CA bundle the layer was built from): the session's one build."""
    return sam_artifact.build_dir, sam_artifact.ca


def test_artifact_carries_unchecked_bytecode_for_every_module(built):
    """Every .py of the code and its dependencies has its CPython 3.12 .pyc, hash-based and
    unchecked: used as it is in Lambda's read-only code directory, never recompiled."""
    function = built[0] / "CollectorFunction"
    sources = sorted(function.rglob("*.py"))
    assert len(sources) > 100
    missing = []
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.is_file():
            missing.append(str(source.relative_to(function)))
            continue
        header = cached.read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER, cached
        # PEP 552 flags: bit 0 hash-based, bit 1 check_source (off: unchecked).
        assert int.from_bytes(header[4:8], "little") == 0b01, cached
    assert missing == []
    assert sys.version_info[:2] == (3, 12)


def test_layer_holds_the_bundle_at_its_root(built):
    build, ca = built
    layer = build / "CaBundleLayer"
    assert sorted(p.name for p in layer.iterdir()) == ["global-bundle.pem"]
    assert (layer / "global-bundle.pem").read_bytes() == ca


def test_artifact_holds_the_code_and_lambda_wheels_but_not_boto3(built):
    function = build_dir = built[0] / "CollectorFunction"
    names = {p.name for p in build_dir.iterdir()}
    assert {"app.py", "middleware_monitoring", "pg8000", "pymongo", "aws_lambda_powertools"} <= (
        names
    )
    # The runtime's boto3 is used (README, "Deploy": measured size and cold start).
    assert not {"boto3", "botocore", "s3transfer"} & names
    # Platform wheels for Lambda's CPython 3.12.
    assert list((function / "pymongo").glob("_cmessage.cpython-312-x86_64-linux-gnu.so"))
    assert (built[0] / "template.yaml").is_file()


HANDLER_RUN = """
import json, sys
sys.path[:0] = [sys.argv[1]]
import app

class Context:
    function_name = "collector"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:collector"
    aws_request_id = "req-1"
    def get_remaining_time_in_millis(self):
        return 30000

outcome = app.lambda_handler({}, Context())
outside = [m.__file__ for m in list(sys.modules.values())
           if getattr(m, "__file__", None) and "site-packages" in m.__file__]
print("RESULT " + json.dumps({"outcome": outcome, "outside": outside,
                              "boto3": "boto3" in sys.modules}))
"""


def test_built_handler_runs_one_pass_from_the_artifact_alone(
    built, pg17: PostgresServer, pushgateway: Pushgateway
):
    pg = prepare(pg17)
    env = {
        "PATH": os.environ["PATH"],
        **pg.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": "artifact-db",
        "PG_SSLMODE": "disable",
        "PG_QPS_SAMPLE_SECONDS": "0",
        "PUSHGATEWAY_URL": pushgateway.url,
        "PUSHGATEWAY_JOB": JOB,
        "POWERTOOLS_SERVICE_NAME": "middleware-monitoring",
        # Keep the run honest: nothing from this machine's environment or site-packages.
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", HANDLER_RUN, str(built[0] / "CollectorFunction")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    report = json.loads(line.removeprefix("RESULT "))
    assert report["outside"] == []
    assert report["boto3"] is False
    assert report["outcome"]["targets_up"] == 1
    assert report["outcome"]["targets_down"] == []
    samples = pushgateway.samples(JOB, "artifact-db")
    assert samples[("pg_up", frozenset())] == 1.0
    assert samples[("middleware_collector_up", frozenset({("source", "postgres")}))] == 1.0
    assert MONITOR_PASSWORD not in done.stdout + done.stderr


def test_a_targets_file_next_to_the_handler_is_packaged(tmp_path: Path) -> None:
    """TARGETS_FILE=targets.yaml finds the file next to app.py in Lambda: the function's
    build copies the targets documents put in functions/collector/ (pip is left out here:
    PYTHON=true, the wheels are what the module's sam build test checks)."""
    source = tmp_path / "collector"
    shutil.copytree(ROOT / "functions" / "collector", source, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info"))  # fmt: skip
    (source / "targets.yaml").write_text("postgres: []\n")
    (source / "more-targets.json").write_text("{}\n")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    subprocess.run(
        ["make", "-C", str(source), "build-CollectorFunction", f"ARTIFACTS_DIR={artifacts}",
         "PYTHON=true"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert sorted(p.name for p in artifacts.iterdir()) == [
        "app.py",
        "middleware_monitoring",
        "more-targets.json",
        "targets.yaml",
    ]
