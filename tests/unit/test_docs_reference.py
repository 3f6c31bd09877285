"""The reference pages against the code, so they cannot drift: docs/configuration.md lists
exactly the environment variables the code reads (and, apart, those boto3 reads itself), and
docs/metrics.md exactly the series the product sends."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from middleware_monitoring.bounds import DROPPED
from middleware_monitoring.cloudwatch.declarations import DOCDB_ELASTIC_SERIES
from middleware_monitoring.discovery.cache import ENRICHMENT_FAILURE
from middleware_monitoring.kafka_stream import MESSAGES_SENT
from middleware_monitoring.remote_write import SAMPLES_SENT
from middleware_monitoring.resend import DROPPED as RESEND_DROPPED
from middleware_monitoring.targets_s3 import SOURCE_FAILURE, SOURCE_UP
from tests.dashboards import EMITTED_METRICS, PUSHGATEWAY_METRICS

ROOT = Path(__file__).resolve().parents[2]
CODE = ROOT / "functions" / "collector"
CONFIGURATION = ROOT / "docs" / "configuration.md"
METRICS = ROOT / "docs" / "metrics.md"
# Read by boto3/botocore from the process environment, never by the collector's own code.
READ_BY_BOTO3 = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})
VARIABLE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def constants(tree: ast.Module) -> set[str]:
    """Names the module binds at its top level (``PG_SSLMODES: Final = ...``): a string
    equal to one of them is an identifier in ``__all__``, not a variable."""
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def env_reads(tree: ast.Module) -> set[str]:
    """The names read through config.env.EnvReader (``env.text("DISCOVER")``): one word
    names too, which the shape of VARIABLE leaves out."""
    return {
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "env"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        # env.problem("A/B", ...) names a pair of variables.
        for name in node.args[0].value.split("/")
    }


def variables_in_code() -> set[str]:
    """Every string literal of the function's code shaped like an environment variable, and
    every name read through the configuration's reader."""
    found: set[str] = set()
    bound: set[str] = set()
    for path in CODE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        bound |= constants(tree)
        found |= env_reads(tree)
        found |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and VARIABLE.fullmatch(node.value)
        }
    return found - bound


def documented() -> set[str]:
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", CONFIGURATION.read_text(), re.M))


def test_every_variable_the_code_reads_is_documented() -> None:
    assert variables_in_code() - documented() == set()


def test_every_documented_variable_is_read_by_the_code_or_boto3() -> None:
    assert documented() - variables_in_code() == READ_BY_BOTO3


def documented_series() -> list[str]:
    return re.findall(r"^\| `([A-Za-z_:][A-Za-z0-9_:]*)` \|", METRICS.read_text(), re.M)


def test_metrics_page_lists_each_series_once() -> None:
    series = documented_series()
    assert len(series) == len(set(series))


def test_metrics_page_lists_exactly_the_series_sent() -> None:
    # EMITTED_METRICS is held to a real pass by the end-to-end dashboard test; the sinks'
    # own counters (remote write, the query stream) come with those sinks only,
    # middleware_series_dropped with SERIES_BUDGET, and an enrichment call's failure only
    # while one fails (tests/integration/test_discovery_enrichment.py).
    assert set(documented_series()) == EMITTED_METRICS | PUSHGATEWAY_METRICS | {
        SAMPLES_SENT,
        MESSAGES_SENT,
        DROPPED,
        ENRICHMENT_FAILURE,
        RESEND_DROPPED,
        # With a targets document in S3 only (tests/integration/test_targets_s3.py).
        SOURCE_UP,
        SOURCE_FAILURE,
        # With a discovered DocumentDB Elastic cluster only
        # (tests/integration/test_discovery_docdb_elastic.py).
        *(series.output for series in DOCDB_ELASTIC_SERIES),
    }
