"""Figures in the docs cannot drift from the benchmark (docs/benchmark.md, "Figures in the
docs"): every bench block of README.md and docs/*.md is what bench/docs_blocks.py renders
from bench/results.json, and every figure outside a block is a declared input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import docs_blocks
from bench.render import RESULTS_JSON, load

ROOT = Path(__file__).resolve().parents[2]

# A figure: a number with a unit of time or size, a dollar amount, or a ratio (28x).
FIGURE = re.compile(
    r"(?<![\w.$])(\$\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?(?:\s?(?:ms|s|KB|MB|GB|KiB|MiB|GiB)|x))"
    r"(?!\w)"
)

# Figures outside bench blocks that are inputs, not measurements: a setting's default or
# bound, a timeout, a CloudWatch period, an AWS limit or list price, arithmetic on those, a
# goal. A figure the benchmark measures goes in a bench block or becomes a link to its
# section of bench/RESULTS.md; it never joins this list.
INPUTS: dict[str, set[str]] = {
    # goals, and how a verdict line reads
    "docs/benchmark.md": {
        "2 s",
        "2 MB",
        "1,836 ms",
        "2,000 ms",
        "164 ms",
        "28x",
        "60 s",
        "1.5x",
        "1.3x",
        # the fleet's first pass and memory per added target
        *("2x", "0.5 MB", "50 ms"),
        # the Lambda sizes section: the memory sizes it emulates, Lambda's one-vCPU size
        *("256 MB", "1,024 MB", "1,769 MB"),
    },
    # metric periods; list prices
    "docs/cloudwatch.md": {"60 s", "300 s", "$0.01", "$0.003"},
    # Lambda sizes and limits; the EventBridge interval
    "docs/deploy.md": {"128 MB", "256 MB", "4 KB", "8 KB", "60 s"},
    # timeouts
    "docs/discovery.md": {"3 s", "10 s"},
    # the period; list prices and the monthly arithmetic on them
    "docs/elasticache.md": {
        *("60 s", "$0.01", "$4.32", "$6.05", "$604.80", "$0.86", "$0.30", "$34", "$2.70"),
    },
    # fault deadlines and the template's timeout and memory
    "docs/faults.md": {"20 s", "8 s", "50 s", "256 MB"},
    # Lambda limits and memory sizes
    "docs/fleet.md": {"4 KB", "8 KB", "1,769 MB", "256 MB"},
    # event age bounds; 200 instances at the collector's 20 calls per second
    "docs/insights.md": {"300 s", "60 s", "10 s"},
    # the series' thresholds
    "docs/metrics.md": {"5 s", "1 s", "300 s"},
    # alert thresholds
    "docs/operations.md": {"10 s", "256 MiB", "5 GiB", "512 MiB"},
    "docs/postgresql.md": {"1 s", "5 s", "0.1 s", "0.05 s", "5 GiB", "100 MiB"},
    # scrape timeouts
    "docs/pull-mode.md": {"0.5 s", "10 s"},
    # reserves and backoff; the size from which a push goes in pieces
    "docs/sinks.md": {"1 s", "0.5 s", "2 s", "256 KiB"},
}


def prose(text: str) -> str:
    """What a reader reads as figures: bench blocks, code blocks and code spans left out."""
    text = docs_blocks.BLOCK.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"`[^`]+`", "", text)


def figures(text: str) -> set[str]:
    return {re.sub(r"\s+", " ", m.group(1)) for m in FIGURE.finditer(prose(text))}


def test_every_bench_block_is_what_results_json_renders() -> None:
    results = load(RESULTS_JSON)
    seen = []
    for path in docs_blocks.documents(ROOT):
        for key, text in docs_blocks.blocks(path.read_text()):
            seen.append(key)
            assert text == docs_blocks.rendered(key, results), (
                f"{path.relative_to(ROOT)}: bench block {key} differs from bench/results.json "
                "(`.venv/bin/python -m bench.docs_blocks` rewrites it; `make bench` does too)"
            )
    assert sorted(seen) == sorted(docs_blocks.BLOCKS)


def test_every_figure_outside_a_block_is_a_declared_input() -> None:
    unsourced = []
    for path in docs_blocks.documents(ROOT):
        name = str(path.relative_to(ROOT))
        unsourced += [
            f"{name}: {f}" for f in sorted(figures(path.read_text()) - INPUTS.get(name, set()))
        ]
    assert unsourced == [], (
        "figures with no source: put a measured figure in a bench block (docs/benchmark.md) "
        "or link to its section of bench/RESULTS.md; an input (a default, a limit, a price) "
        "goes in INPUTS of tests/unit/test_docs_figures.py"
    )


def test_the_figure_rule_reads_units_prices_and_ratios_outside_code() -> None:
    text = (
        "A pass takes 1,836 ms (was 2.5 s), peaks at 83 MB, costs $424.14 a month, 28x "
        "faster; `12 ms` in code and 15.x and v2 are not figures.\n"
        "```\nscrape_timeout: 15s\n```\n"
        "<!-- bench: remote_write.cost -->\n| 9 ms |\n<!-- /bench -->\n"
    )
    assert figures(text) == {"1,836 ms", "2.5 s", "83 MB", "$424.14", "28x"}


def test_a_stale_block_is_rewritten_from_results() -> None:
    results = load(RESULTS_JSON)
    stale = "intro\n<!-- bench: remote_write.cost -->\n| typed | 63 ms |\n<!-- /bench -->\nend\n"
    fresh = docs_blocks.rewrite(stale, results)
    assert fresh == (
        "intro\n<!-- bench: remote_write.cost -->\n"
        + docs_blocks.rendered("remote_write.cost", results)
        + "<!-- /bench -->\nend\n"
    )
    assert "63 ms" not in fresh
    with pytest.raises(KeyError, match="unknown bench block 'nope'"):
        docs_blocks.rendered("nope", results)


def test_make_bench_rewrites_the_blocks_of_every_document(tmp_path: Path) -> None:
    results = load(RESULTS_JSON)
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("no blocks\n")
    block = "<!-- bench: remote_write.cost -->\ntyped\n<!-- /bench -->\n"
    (tmp_path / "docs" / "cost.md").write_text("# Cost\n" + block)
    assert docs_blocks.rewrite_all(results, tmp_path) == [tmp_path / "docs" / "cost.md"]
    assert (tmp_path / "docs" / "cost.md").read_text() == (
        "# Cost\n<!-- bench: remote_write.cost -->\n"
        + docs_blocks.rendered("remote_write.cost", results)
        + "<!-- /bench -->\n"
    )
    # A section the run did not measure leaves its block as it was.
    unmeasured = {**results, "sections": {}}
    assert docs_blocks.rewrite(block, unmeasured) == block
