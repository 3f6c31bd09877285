"""`make bench` code on a minimal size, so it cannot rot between benchmark runs: the reference
fleet built the bench's way, one pass of the product and one of the baseline, and the
report pieces. No timings are asserted (speed is what `make bench` reports)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fleet import (
    DocServerRef,
    FleetSpec,
    PgServerRef,
    build_baseline,
    build_runtime,
    scaled,
)
from bench.run import Figure, Report, exporter_queries, importtime_breakdown, seed
from tests.helpers import closing
from tests.standins.aws import MotoServer
from tests.standins.docdb import DocDBServer, start_demo_docdb
from tests.standins.postgres import PostgresServer

pytestmark = pytest.mark.bench


@pytest.fixture
def docdb(tmp_path: Path) -> Iterator[tuple[DocDBServer, str]]:
    server, info = start_demo_docdb(tmp_path)
    try:
        yield server, info
    finally:
        server.stop()


@pytest.fixture
def fleet(
    pg17: PostgresServer,
    clean_moto: MotoServer,
    docdb: tuple[DocDBServer, str],
    monkeypatch: pytest.MonkeyPatch,
) -> FleetSpec:
    pg17.create_extension()
    spec = scaled(
        6,
        [PgServerRef(pg17.host, pg17.port, pg17.superuser, pg17.password)],
        DocServerRef(json.loads(docdb[1])),
        clean_moto.env(),
    )
    seed(clean_moto, spec)
    for name, value in spec.env.items():  # boto3's credential chain, as in the worker
        monkeypatch.setenv(name, value)
    return spec


def test_reference_fleet_is_issue_8s(fleet: FleetSpec) -> None:
    assert (fleet.targets, fleet.cloudwatch_queries, fleet.floor_calls) == (6, 32, 1)
    assert [p["name"] for p in fleet.postgres] == ["pg-0"]
    assert [d["name"] for d in fleet.docdb] == ["docdb-1"]


def test_product_pass_on_the_bench_fleet(fleet: FleetSpec) -> None:
    with closing(build_runtime(fleet)) as runtime:
        result = runtime.collect(30.0)
    assert [(t.target, t.up) for t in result.targets] == [
        ("pg-0", True),
        ("docdb-1", True),
        ("docdb:bench-docdb-2", True),
        ("docdb:bench-docdb-3", True),
        ("docdb-cluster:bench-docdb-cluster-4", True),
        ("elasticache:bench-redis-5", True),
    ]
    collector = {f.name: f.samples[0].value for f in result.collector.families if f.samples}
    assert collector["middleware_cloudwatch_getmetricdata_calls"] == 1
    assert collector["middleware_cloudwatch_metrics_requested"] == 32


def test_baseline_pass_on_the_bench_fleet(fleet: FleetSpec) -> None:
    exporter = build_baseline(fleet)
    try:
        result = exporter.scrape()
    finally:
        exporter.close()
    assert dict(result.api_calls) == {"GetMetricStatistics": 32}
    # Nothing else runs on the server during the pass: the baseline's own two statements
    # between its two readings (the first reading's and the pg_sleep) are the whole delta.
    assert {k: v for k, v in result.values.items() if k.startswith("pg-0/pg_qps_")} == {
        "pg-0/pg_qps_all": 2.0,
        "pg-0/pg_qps_read": 2.0,
        "pg-0/pg_qps_write": 0.0,
    }
    assert "docdb-1/mongo_uptime_seconds" in result.values


def test_importtime_breakdown_sums_self_time_per_package() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:      1500 |       1500 |     pg8000.core\n"
        "import time:       500 |       2000 |   pg8000\n"
        "import time:      3000 |       3000 | pymongo\n"
    )
    assert importtime_breakdown(stderr) == [("pymongo", 3.0), ("pg8000", 2.0)]


def test_exporter_query_file_names_every_statement_series() -> None:
    text = exporter_queries("1.11")
    assert text.startswith("pg_stat_statements:\n  query: |\n")
    assert "sum(s.shared_blk_read_time + s.local_blk_read_time) AS blk_read_time" in text
    assert text.count("usage: LABEL") == 4
    assert text.count("usage: GAUGE") == 9


def test_report_renders_a_figure_row() -> None:
    report = Report(
        {
            "nproc": "2",
            "memory": "1 GiB",
            "cpu": "x",
            "python": "3.12",
            "os": "linux",
            "date": "today",
        },
        {"runs": 1},
    )
    report.figures.append(Figure("1", "warm pass", "10 ms", "baseline 1 s", "100.0x", "cmd"))
    assert "| 1 | warm pass | 10 ms | baseline 1 s | 100.0x | `cmd` |" in report.render()
