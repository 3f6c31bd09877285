"""`make bench` code on a minimal size, so it cannot rot between benchmark runs: one whole
`--quick` run (every built-in section, a module section that is there and one that is not),
which must name the commit and leave bench/RESULTS.md alone; the refusal to write from a dirty
tree; the pieces with exact answers. No timings are asserted (speed is what `make bench`
reports)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import provenance, render, run
from bench.baseline_exporter import older_metric
from bench.cloudwatch_data import OUT_SERIES
from bench.coldstart import importtime_breakdown
from bench.exporter_compare import exporter_queries
from bench.fleet import (
    DocServerRef,
    FleetSpec,
    PgServerRef,
    build_baseline,
    build_runtime,
    cloudwatch_declarations,
    scaled,
)
from bench.report import module_rows
from middleware_monitoring.cloudwatch.declarations import MINUTE
from tests.helpers import closing
from tests.standins.aws import MotoServer
from tests.standins.docdb import DocDBServer, start_demo_docdb
from tests.standins.postgres import PostgresServer

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]
FAKE_MODULE = "tests.integration.bench_fake_section"
QUESTION_MODULE = "tests.integration.bench_fake_question"
ABSENT_MODULE = "tests.integration.no_such_bench_module"


def head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


# --- one whole quick run ----------------------------------------------------------------------


_QUICK_OUTPUT: list[Path] = []


def quick_report_json() -> Path:
    """The raw figures the quick run wrote beside its report."""
    return _QUICK_OUTPUT[-1].with_suffix(".json")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes, int]]:
    """The report of `bench.run --quick`, with bench/RESULTS.md's bytes and mtime from before."""
    results = ROOT / "bench" / "RESULTS.md"
    before = (results.read_bytes(), results.stat().st_mtime_ns)
    output = tmp_path_factory.mktemp("bench") / "report.md"
    _QUICK_OUTPUT.append(output)
    sections = (
        run.ModuleSection("fake", FAKE_MODULE, "Fake section"),
        run.ModuleSection("absent", ABSENT_MODULE, "Absent section"),
        run.ModuleSection("question", QUESTION_MODULE, "Question section"),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "MODULE_SECTIONS", sections)
        run.main(["--quick", "--output", str(output)])
    yield output.read_text(), *before


def test_quick_run_names_the_commit_and_leaves_results_alone(
    quick_report: tuple[str, bytes, int],
) -> None:
    text, results_before, mtime_before = quick_report
    results = ROOT / "bench" / "RESULTS.md"
    assert (results.read_bytes(), results.stat().st_mtime_ns) == (results_before, mtime_before)
    assert text.startswith("# Benchmark results (partial run: not a result)\n")
    assert f"from commit `{head()}`" in text


def test_quick_run_has_every_section(quick_report: tuple[str, bytes, int]) -> None:
    text = quick_report[0]
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Goals",
        "## 1. How long does a warm pass of the reference fleet take, against the older approach?",
        "## 2. Does each CloudWatch series carry the newest value, and how many calls and "
        "clients does a pass make?",
        "## 3. How long does a scrape of pg_stat_statements take, against "
        "prometheus-postgres-exporter?",
        "## 4. How long does a cold start take, and how much memory does a function instance use?",
        "## 5. How does the warm pass grow with the number of targets, against the older approach?",
        "## 6. How far is each source's warm pass from the bare work it must do?",
        "## 7. How long does a warm pass of a PostgreSQL fleet from a targets file take, and how "
        "much memory does it use?",
        "## 8. What does a month cost at list prices, against the older approach on a host of its "
        "own?",
        "## 9. Fake section",
        "## 10. Absent section",
        "## 11. How long does a push of N targets take on a default Pushgateway?",
        # Gathered from the fleet and scaling sections' figures, with its chart.
        "## 12. How do the warm pass and peak memory grow with the number of targets?",
        "## 13. Time per section",
    ]


def older_approach_scores() -> tuple[int, dict[str, tuple[int, ...]]]:
    """The reference fleet's CloudWatch series and, per kind of data, the row section 2 must
    show: (series, product right, wrong, missing, older right, wrong, missing), worked out
    from the seeding scheme of bench/cloudwatch_data.py. Statistics in declaration order get
    the kinds in turn (distinct: newest 10+i, middle 110+i, oldest 210+i; zero newest: 0, 3+i,
    5+i; all zero); the older approach takes the first point moto returns (the oldest in its
    10-minute window: the middle one for 5-minute metrics), drops zeros, and asks the In
    metric for the Out series."""
    spec = scaled(6, [PgServerRef("h", 1, "u", "p")], DocServerRef({}), {})
    declarations = cloudwatch_declarations(spec)
    stats = list(dict.fromkeys(d.stat for d in declarations))
    kinds = ("distinct", "zero newest", "all zero")

    def newest(i: int) -> float:
        return 10.0 + i if kinds[i % 3] == "distinct" else 0.0

    def first_returned(i: int) -> float:
        one_minute = stats[i].period == MINUTE
        if kinds[i % 3] == "distinct":
            return 210.0 + i if one_minute else 110.0 + i
        if kinds[i % 3] == "zero newest":
            return 5.0 + i if one_minute else 3.0 + i
        return 0.0

    rows: dict[str, list[int]] = {kind: [0] * 7 for kind in (*kinds, OUT_SERIES)}
    for declaration in declarations:
        i = stats.index(declaration.stat)
        asked = older_metric(declaration.output, declaration.stat.metric)
        j = next(
            k
            for k, s in enumerate(stats)
            if s.metric == asked and s.dimensions == declaration.stat.dimensions
        )
        got = first_returned(j)
        older = 6 if got == 0 else 4 if got == newest(i) else 5
        for kind in [kinds[i % 3]] + ([OUT_SERIES] if declaration.output == OUT_SERIES else []):
            rows[kind][0] += 1
            rows[kind][1] += 1
            rows[kind][older] += 1
    return len(stats), {kind: tuple(row) for kind, row in rows.items()}


def test_quick_run_counts_the_older_approachs_cloudwatch_defects(
    quick_report: tuple[str, bytes, int],
) -> None:
    lines = quick_report[0].splitlines()
    queries, rows = older_approach_scores()
    for kind, row in rows.items():
        assert f"| {kind} | {' | '.join(str(n) for n in row)} |" in lines
    assert (
        f"- The stand-in answered {queries} of the older approach's {queries} "
        f"GetMetricStatistics calls with datapoints; in {queries} of them the first datapoint "
        "(`Datapoints[0]`, what the older approach takes) was not the newest." in lines
    )
    wrong = sum(row[5] for kind, row in rows.items() if kind != OUT_SERIES)
    missing = sum(row[6] for kind, row in rows.items() if kind != OUT_SERIES)
    assert (
        f"- The older approach: {wrong} wrong and {missing} missing, {queries} "
        f"GetMetricStatistics calls and {queries} CloudWatch clients a pass, against the "
        "product's 0 clients made a warm pass." in lines
    )
    assert [line for line in lines if line.startswith("- **Goal:** CloudWatch series")] == [
        "- **Goal:** CloudWatch series wrong or missing against the seeded newest values, at "
        "most 0 series. **Met: 0 series against at most 0 series, exactly at the limit.**"
    ]
    assert (
        f"- **Goal:** GetMetricData calls a pass for {queries} queries, against the floor "
        "ceil(queries / 500), at most 1 calls. **Met: 1 calls against at most 1 calls, exactly "
        "at the limit.**" in lines
    )


def test_older_approach_scores_on_this_catalogue() -> None:
    """The worked-out rows for the catalogue of SPEC 3.3-3.6, 13, 16 (DBLoad*) and 18 (38
    statistics: the kinds in turn give 13 distinct, 13 zero newest, 12 all zero)."""
    assert older_approach_scores() == (
        38,
        {
            "distinct": (13, 13, 0, 0, 0, 13, 0),
            "zero newest": (13, 13, 0, 0, 0, 13, 0),
            "all zero": (12, 12, 0, 0, 0, 0, 12),
            OUT_SERIES: (1, 1, 0, 0, 0, 1, 0),
        },
    )


def test_quick_run_fleet_holds_one_connection_per_target(
    quick_report: tuple[str, bytes, int],
) -> None:
    rows = [line.split(" | ") for line in quick_report[0].splitlines()]
    fleet = {
        row[0]: (row[1], row[-1])
        for row in rows
        if row[0] in ("| 2 PostgreSQL targets", "| 4 PostgreSQL targets")
    }
    assert fleet == {
        "| 2 PostgreSQL targets": ("2/2", "1 + 1 = 2 |"),
        "| 4 PostgreSQL targets": ("4/4", "2 + 2 = 4 |"),
    }
    assert (
        "- **Goal:** none. The goals are judged at 100 targets; this run's largest size was 4."
        in quick_report[0]
    )


def test_quick_run_fleet_measures_the_first_pass_floor_and_cpu_per_series(
    quick_report: tuple[str, bytes, int],
) -> None:
    """At its largest size the fleet section measures the first pass's floor (a bare
    connect per target, each server's server-wide statements once) and the CPU of the
    first pass and of a warm invocation per series."""
    largest = json.loads(quick_report_json().read_text())["sections"]["fleet"]["figures"]["4"]
    assert (largest["first_pass_floor_connects"], largest["first_pass_floor_passes"]) == (4, 1)
    assert largest["first_pass_floor_workers"] == largest["workers"]
    # Two servers, each with its carrier's statements: at least extension version, snapshot
    # header and calls (twice each: the cold QPS window), classification, top N, texts,
    # activity with users and sizes (one statement).
    assert largest["first_pass_floor_statements"] >= 2 * 9
    # Each carrier's cold QPS window, replayed as a wait between its two snapshots.
    assert largest["first_pass_floor_qps_windows"] == 2
    assert 0 < largest["first_pass_floor_qps_window_s"] <= 1.0
    assert largest["first_pass_floor_s"] > 0 and largest["first_pass_cpu_s"] > 0
    assert largest["series"] > 0
    assert largest["cpu_us_per_series"] == pytest.approx(
        largest["warm_invocation_cpu_s"] / largest["series"] * 1e6
    )


def test_quick_run_cold_start_from_the_sam_artifact(quick_report: tuple[str, bytes, int]) -> None:
    """Section 4 measures the `sam build` artifact beside the repository's code, from its
    stored figures."""
    text = quick_report[0]
    part = text.split("## 4. ", 1)[1].split("## 5. ", 1)[0]
    rows = [line.split(" | ")[0] for line in part.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| reference fleet (6 targets), from the repository",
        "| PostgreSQL-only configuration, from the repository",
        "| reference fleet (6 targets), from the `sam build` artifact",
    ]
    stored = json.loads(quick_report_json().read_text())["sections"]["coldstart"]
    assert (stored["module"], stored["declare"]) == ("bench.coldstart", "section")
    artifact = stored["figures"]["configurations"]["sam_artifact"]
    assert set(artifact) == {
        "wall_s",
        "import_s",
        "first_invocation_s",
        "warm_invocation_s",
        "rss_mb",
    }
    assert artifact["wall_s"] > artifact["import_s"] + artifact["first_invocation_s"] > 0


def test_quick_run_exporter_section(quick_report: tuple[str, bytes, int]) -> None:
    text = quick_report[0]
    if shutil.which("prometheus-postgres-exporter") is None:
        assert (
            "Not measured: `prometheus-postgres-exporter` is not installed (`make bench` "
            "installs it)." in text
        )
        return
    rows = [line.split(" | ") for line in text.splitlines() if " | steady | " in line]
    rows += [line.split(" | ") for line in text.splitlines() if " | new statements | " in line]
    # Both return the top 20; with new statements, each scrape's top has new entries (a
    # median over an even number of scrapes can be a half).
    assert [row[-1] for row in rows] == ["20 / 20 |", "20 / 20 |"]
    assert rows[0][3] == "0 / 0"
    assert all(float(n) > 0 for n in rows[1][3].split(" / "))


def test_quick_run_renders_a_module_section(quick_report: tuple[str, bytes, int]) -> None:
    text = quick_report[0]
    part = text.split("## 9. Fake section\n", 1)[1].split("## 10.", 1)[0]
    table = [line for line in part.splitlines() if line.startswith("| ")]
    assert table == [
        "| figure | value | command |",
        "| setup.servers | 2 | `python -m tests.integration.bench_fake_section` |",
        "| runs[0].n | 1 | `python -m tests.integration.bench_fake_section` |",
        "| runs[0].ms | 2.5 | `python -m tests.integration.bench_fake_section` |",
        "| runs[1].n | 10 | `python -m tests.integration.bench_fake_section` |",
        "| runs[1].ms | 12,346 | `python -m tests.integration.bench_fake_section` |",
        "| quick | true | `python -m tests.integration.bench_fake_section` |",
        "| given | 7 ms | `own command` |",
    ]
    assert "Not run: `tests/integration/no_such_bench_module.py` is not on this branch." in text


def test_quick_run_renders_a_question_section_with_its_goal(
    quick_report: tuple[str, bytes, int],
) -> None:
    text = quick_report[0]
    part = text.split("## 11. How long", 1)[1].split("## 12.", 1)[0]
    assert [line for line in part.splitlines() if line.startswith(("| ", "- "))] == [
        "| scenario | push (s) |",
        "| 25 targets, default Pushgateway | 0.229 |",
        "| 200 targets, default Pushgateway | 11.5 |",
        "- **Goal:** push of 200 targets, at most 5 s. "
        "**NOT met: 11.5 s against at most 5 s, 6.53 s (131%) over.**",
    ]
    summary = text.split("## Goals\n", 1)[1].split("## ", 1)[0]
    assert [line for line in summary.splitlines() if line.startswith("| [11]")] == [
        "| [11](#11-how-long-does-a-push-of-n-targets-take-on-a-default-pushgateway) | push of "
        "200 targets | at most 5 s | 11.5 s | NOT met: 6.53 s (131%) over |"
    ]
    # Every goal of the run is in the summary: the built-in sections' too (CloudWatch values
    # and calls, cold start's memory from the repository and from the artifact; the fleet's
    # are judged at 100 targets only).
    assert [line.split("](", 1)[0] for line in summary.splitlines() if line.startswith("| [")] == [
        "| [2",
        "| [2",
        "| [4",
        "| [4",
        "| [11",
    ]
    assert (
        "| [4](#4-how-long-does-a-cold-start-take-and-how-much-memory-does-a-function-instance-"
        "use) | peak RSS of a function instance, reference fleet (6 targets), from the `sam "
        "build` artifact, within the template's MemorySize | at most 256 MB |" in summary
    )


def test_quick_run_stores_raw_figures_and_renders_again_from_them(
    quick_report: tuple[str, bytes, int], tmp_path: Path
) -> None:
    text, *_ = quick_report
    stored = json.loads(quick_report_json().read_text())
    assert stored["commit"] == head()
    assert stored["partial"] is True
    assert stored["sections"]["question"] == {
        "number": 11,
        "title": "Question section",
        "module": QUESTION_MODULE,
        "seconds": stored["sections"]["question"]["seconds"],
        "figures": {"pushes": {"25": {"push_s": 0.229}, "200": {"push_s": 11.53}}, "quick": True},
    }
    assert stored["sections"]["absent"]["figures"] is None
    # The chart of the gathering section, drawn beside the report.
    chart = quick_report_json().parent / "charts" / "scaling.png"
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    again = tmp_path / "again.md"
    render.main(["--results", str(quick_report_json()), "--output", str(again)])
    assert again.read_text() == text


# --- the tree must be clean to write RESULTS.md -----------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed tree shaped like this one: code, bench, the report."""
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "bench@example.invalid")
    git(tmp_path, "config", "user.name", "bench")
    for name in ("functions/collector/app.py", "bench/run.py", "bench/RESULTS.md", "Makefile"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("committed\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmark.md").write_text("committed\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "start")
    return tmp_path


def test_clean_tree_gives_its_commit(repo: Path) -> None:
    # The report itself and what the benchmark does not measure may differ.
    (repo / "bench" / "RESULTS.md").write_text("rewritten by the last run\n")
    (repo / "bench" / "results.json").write_text("{}\n")
    (repo / "bench" / "charts").mkdir()
    (repo / "bench" / "charts" / "warm-pass.png").write_bytes(b"png")
    (repo / "docs" / "benchmark.md").write_text("edited\n")
    assert provenance.uncommitted(repo) == []
    assert provenance.require_clean(repo) == git(repo, "rev-parse", "HEAD")


def test_dirty_tree_is_refused_naming_every_file(repo: Path) -> None:
    (repo / "functions" / "collector" / "app.py").write_text("changed\n")
    (repo / "bench" / "new_section.py").write_text("not committed\n")
    (repo / "Makefile").write_text("staged\n")
    git(repo, "add", "Makefile")
    with pytest.raises(provenance.DirtyTree) as refused:
        provenance.require_clean(repo)
    assert str(refused.value) == (
        "refusing to write bench/RESULTS.md: the tree holds uncommitted changes to what the "
        "benchmark measures (Makefile, bench/new_section.py, functions/collector/app.py); "
        "commit or stash them first (`--quick` runs on a dirty tree and writes no RESULTS.md)"
    )
    stamp = provenance.stamp(repo)
    assert stamp.uncommitted == ("Makefile", "bench/new_section.py", "functions/collector/app.py")


def test_make_bench_exits_before_measuring_on_a_dirty_tree(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "bench" / "run.py").write_text("changed\n")
    monkeypatch.setattr(run, "ROOT", repo)
    monkeypatch.setattr(run, "RESULTS", repo / "bench" / "RESULTS.md")
    with pytest.raises(SystemExit) as exited:
        run.main([])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "bench: refusing to write bench/RESULTS.md: the tree holds uncommitted changes to what "
        "the benchmark measures (bench/run.py); commit or stash them first (`--quick` runs on "
        "a dirty tree and writes no RESULTS.md)\n"
    )
    assert (repo / "bench" / "RESULTS.md").read_text() == "committed\n"


def test_quick_never_writes_results(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run.main(["--quick", "--output", str(run.RESULTS)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "bench: --quick and --only never write bench/RESULTS.md; give another --output\n"
    )


# --- pieces with exact answers -------------------------------------------------------------------


def test_module_rows_flatten_nested_figures() -> None:
    figures: dict[str, Any] = {
        "command": "python -m bench.x",
        "a": {"b": 1.5, "c": [1, 2]},
        "d": {"value": 3, "unit": "s"},
        "e": None,
    }
    assert module_rows(figures, "default") == [
        ("a.b", "1.5", "python -m bench.x"),
        ("a.c", "1, 2", "python -m bench.x"),
        ("d", "3 s", "python -m bench.x"),
        ("e", "none", "python -m bench.x"),
    ]
    assert module_rows({"x": 1}, "default") == [("x", "1", "default")]


def test_importtime_breakdown_sums_self_time_per_package() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:      1500 |       1500 |     pg8000.core\n"
        "import time:       500 |       2000 |   pg8000\n"
        "import time:      3000 |       3000 | pymongo\n"
    )
    assert importtime_breakdown(stderr) == [("pymongo", 3.0), ("pg8000", 2.0)]


def test_exporter_query_file_names_every_statement_series() -> None:
    text = exporter_queries("1.11", 20, 300)
    assert text.startswith("pg_stat_statements:\n  query: |\n")
    assert "sum(s.shared_blk_read_time + s.local_blk_read_time) AS blk_read_time" in text
    assert "regexp_replace(max(s.query), '\\s+', ' ', 'g')), 300)" in text
    assert text.count("LIMIT 20") == 1
    assert text.count("usage: LABEL") == 4
    assert text.count("usage: GAUGE") == 9


# --- the fleet the bench builds, each side's pass ------------------------------------------------


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
    from bench import cloudwatch_data

    pg17.create_extension()
    spec = scaled(
        6,
        [PgServerRef(pg17.host, pg17.port, pg17.superuser, pg17.password)],
        DocServerRef(json.loads(docdb[1])),
        clean_moto.env(),
    )
    cloudwatch_data.seed(clean_moto, spec)
    for name, value in spec.env.items():  # boto3's credential chain, as in the worker
        monkeypatch.setenv(name, value)
    return spec


def test_reference_fleet_is_issue_8s(fleet: FleetSpec) -> None:
    # The RDS instance's 9 (DBLoad, DBLoadCPU, DBLoadNonCPU among them), 2 DocumentDB
    # instances x 6, the DocumentDB cluster's 3 and the ElastiCache node's 14.
    assert (fleet.targets, fleet.cloudwatch_queries, fleet.floor_calls) == (6, 38, 1)
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
    assert collector["middleware_cloudwatch_metrics_requested"] == 38


@pytest.mark.parametrize(("sleep", "statements"), [(True, 2.0), (False, 1.0)])
def test_baseline_pass_on_the_bench_fleet(fleet: FleetSpec, sleep: bool, statements: float) -> None:
    exporter = build_baseline(fleet, sleep=sleep)
    try:
        result = exporter.scrape()
    finally:
        exporter.close()
    assert dict(result.api_calls) == {"GetMetricStatistics": fleet.cloudwatch_queries}
    # Nothing else runs on the server during the pass: between its two readings the
    # baseline's own statements are the whole delta: the first reading, and the pg_sleep.
    assert {k: v for k, v in result.values.items() if k.startswith("pg-0/pg_qps_")} == {
        "pg-0/pg_qps_all": statements,
        "pg-0/pg_qps_read": statements,
        "pg-0/pg_qps_write": 0.0,
    }
    # The Out series carries the In metric's first (oldest) point, as seeded for its kind.
    stats = list(dict.fromkeys(d.stat for d in cloudwatch_declarations(fleet)))
    inbound = next(i for i, s in enumerate(stats) if s.metric == older_metric(OUT_SERIES, ""))
    oldest = (210.0 + inbound, 5.0 + inbound, None)[inbound % 3]
    assert result.values.get(f"{OUT_SERIES}/bench-redis-5") == oldest
    queries = fleet.cloudwatch_queries
    assert (result.answered, result.first_not_newest) == (queries, queries)
