"""Figures in the docs come from bench/results.json: marked blocks that `make bench` rewrites.

    .venv/bin/python -m bench.docs_blocks [--check]

A block in README.md or docs/*.md is

    <!-- bench: remote_write.cost -->
    ...rendered text...
    <!-- /bench -->

and its text is ``BLOCKS[key](results)``: nothing between the markers is typed by hand.
`make bench` rewrites every block after writing results.json; ``--check`` (and
tests/unit/test_docs_figures.py) fails when a block differs from its render. The rule for
figures outside blocks (they must be inputs, not measurements): docs/benchmark.md, "Figures
in the docs".
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.section import number, quantity

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^(<!-- bench: ([\w.]+) -->\n)(.*?)^(<!-- /bench -->)", re.S | re.M)


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _figures(results: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    record = results["sections"].get(key)
    figures = None if record is None else record.get("figures")
    if not isinstance(figures, Mapping):
        raise KeyError(f"bench/results.json holds no figures of section {key!r}")
    return figures


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _source(results: Mapping[str, Any], key: str) -> str:
    number_ = results["sections"][key]["number"]
    return (
        f"From `make bench` at commit `{str(results['commit'])[:12]}`, "
        f"[bench/RESULTS.md section {number_}](../bench/RESULTS.md)."
    )


FLEET_NAMES = {6: "reference fleet: 1 RDS, 2 DocumentDB instances + 1 cluster, 1 ElastiCache"}


def remote_write_cost(results: Mapping[str, Any]) -> list[str]:
    """docs/cloudwatch.md: GetMetricData a month, per interval, per fleet."""
    figures = _figures(results, "remote_write")
    rows = []
    for fleet in figures["cost"]:
        targets = int(fleet["targets"])
        rows.append(
            [
                FLEET_NAMES.get(targets, f"{targets} targets of the same mix"),
                number(fleet["metrics"]),
                quantity(fleet["per_minute_before_this_change"]["monthly_usd"], "$"),
                quantity(fleet["per_minute_now"]["monthly_usd"], "$"),
                quantity(fleet["five_minute_remote_write"]["monthly_usd"], "$"),
                quantity(fleet["metric_streams"]["monthly_usd"], "$"),
            ]
        )
    delivered = "; ".join(
        f"{number(f['five_minute_remote_write']['points_delivered'])} of "
        f"{number(f['five_minute_remote_write']['points_expected'])} points delivered for "
        f"{int(f['targets'])} targets"
        for f in figures["cost"]
    )
    return [
        *_table(
            (
                "fleet",
                "metrics",
                "every minute, all metrics every pass",
                "every minute now (Volume* every 5 min)",
                "every 5 minutes, remote write",
                "Metric Streams, same updates",
            ),
            rows,
        ),
        "",
        f"The 5-minute runs sent by remote write to a real Prometheus: {delivered}. "
        + _source(results, "remote_write"),
    ]


BLOCKS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "remote_write.cost": remote_write_cost,
}


def blocks(text: str) -> Iterator[tuple[str, str]]:
    """(key, current text) of every block of a document."""
    for match in BLOCK.finditer(text):
        yield match.group(2), match.group(3)


def rendered(key: str, results: Mapping[str, Any]) -> str:
    if key not in BLOCKS:
        raise KeyError(f"unknown bench block {key!r}; known: {sorted(BLOCKS)}")
    return "\n".join(BLOCKS[key](results)) + "\n"


def rewrite(text: str, results: Mapping[str, Any]) -> str:
    """The document with every block rendered again from ``results``; a block whose
    section the run did not measure is left as it was (the docs-figures test then says it
    is stale), so a partial run never fails at its very end."""

    def again(match: re.Match[str]) -> str:
        try:
            body = rendered(match.group(2), results)
        except KeyError:
            return match.group(0)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(again, text)


def rewrite_all(results: Mapping[str, Any], root: Path = ROOT) -> list[Path]:
    """Rewrites the blocks of every document; the documents changed."""
    changed = []
    for path in documents(root):
        text = path.read_text()
        new = rewrite(text, results)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> None:
    from bench.render import RESULTS_JSON, load

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_JSON)
    parser.add_argument("--check", action="store_true", help="fail if a block is stale")
    args = parser.parse_args(argv)
    results = load(args.results)
    if args.check:
        stale = [
            f"{path.relative_to(ROOT)}: {key}"
            for path in documents()
            for key, text in blocks(path.read_text())
            if text != rendered(key, results)
        ]
        if stale:
            raise SystemExit("stale bench blocks (run make bench): " + ", ".join(stale))
        return
    for path in rewrite_all(results):
        print(f"rewrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
