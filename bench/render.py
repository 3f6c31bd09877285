"""bench/RESULTS.md rendered from bench/results.json: nothing in the report is typed by hand.

    .venv/bin/python -m bench.render [--results bench/results.json] [--output bench/RESULTS.md]

`make bench` measures (bench/run.py), writes every raw figure to bench/results.json, then
renders the report from that file with ``render()``; this command renders it again from the
stored figures without measuring (after a change to a section's wording, say).

bench/results.json (``SCHEMA``)::

    {"schema": 1, "commit": "<sha>", "uncommitted": [], "partial": false,
     "command": ".venv/bin/python -m bench.run", "machine": {"nproc": "2", ...},
     "load_average": {"start": [1m, 5m, 15m], "end": [...]}, "elapsed_s": 339.2,
     "budget_s": 600.0,
     "sections": {"<key>": {"number": 9, "title": "...", "module": "bench.x" | null,
                            "declare": "reference_section" | absent (default "section"),
                            "seconds": 7.5, "figures": {...} | null,
                            "part": {"lines": [...], "figures": [...]} | absent}}}

``figures`` is what the section's ``measure()`` returned, as it returned it (``null``: not
run). A section whose module declares ``section(figures)`` (bench/section.py) renders from
them (a built-in section names its module and function, bench/run.py ``BUILTIN_SECTIONS``);
the built-in sections of bench/run.py that have not moved to that form yet store the
report text their run made under ``part``, and a module without ``section()`` gets the
figures flattened into one table (bench/report.py ``module_part``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import charts
from bench.report import Figure, Part, Report, module_part
from bench.section import Goal, Section, quantity

ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "bench" / "results.json"
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
SCHEMA = 1


def part_record(part: Part) -> dict[str, Any]:
    """A built-in section's report text, as stored in results.json."""
    return {"lines": list(part.lines), "figures": [asdict(f) for f in part.figures]}


def section_of(record: Mapping[str, Any]) -> Section | None:
    """The section a module declares for its stored figures, or None when it declares none
    (a built-in section stored by older code: module null, its text under "part")."""
    module = record.get("module")
    figures = record.get("figures")
    if not module or figures is None or importlib.util.find_spec(module) is None:
        return None
    # A module with more than one section (bench/headline.py) names the one in "declare".
    declare = getattr(importlib.import_module(module), record.get("declare") or "section", None)
    if declare is None:
        return None
    made = declare(figures)
    if not isinstance(made, Section):
        raise TypeError(f"{module}.section() returned {type(made).__name__}, expected Section")
    return made


def header(results: Mapping[str, Any]) -> list[str]:
    m = results["machine"]
    load = results["load_average"]
    elapsed = float(results["elapsed_s"])
    budget = float(results["budget_s"])
    within = "met" if elapsed < budget else "NOT met"
    if results["uncommitted"]:
        tree = (
            f"commit `{results['commit']}` plus uncommitted changes to "
            f"{', '.join(results['uncommitted'])} (a partial run: not a result)"
        )
    else:
        tree = f"commit `{results['commit']}` (clean tree)"
    return [
        "# Benchmark results" + (" (partial run: not a result)" if results["partial"] else ""),
        "",
        f"Written by `{results['command']}` (`make bench` runs it without arguments) from "
        f"{tree}; rendered from bench/results.json by `.venv/bin/python -m bench.render`; do "
        "not edit by hand. How each section measures: docs/benchmark.md and the text under "
        "each section.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, Python {m['python']}, "
        f"{m['os']}; run {m['date']}. Load average (1 / 5 / 15 min) at the start "
        f"{' / '.join(f'{x:.2f}' for x in load['start'])}, at the end "
        f"{' / '.join(f'{x:.2f}' for x in load['end'])}. The run took {elapsed / 60:.1f} min "
        f"(goal for `make bench`: under {budget / 60:.0f} min: {within}).",
        "",
    ]


def goals_table(rows: Sequence[tuple[str, str, Goal]]) -> list[str]:
    """Every goal of the run with its status: the summary at the top of the report."""
    if not rows:
        return []
    met = sum(1 for *_, g in rows if g.met)
    lines = [
        "## Goals",
        "",
        f"{met} of {len(rows)} goals met.",
        "",
        "| section | goal | target | measured | status |",
        "|---|---|---|---|---|",
    ]
    for number, question, goal in rows:
        anchor = f"[{number}](#{slug(f'{number}. {question}')})"
        lines.append(
            f"| {anchor} | {goal.what} | {goal.target()} | "
            f"{quantity(goal.measured, goal.unit)} | {goal.status()}: {goal.margin()} |"
        )
    lines.append("")
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def render(results: Mapping[str, Any], bench_dir: Path | None = None) -> str:
    """The report. With ``bench_dir``, the charts (bench/charts.py) are drawn under it too
    (the report names them by paths relative to it: bench/ for bench/RESULTS.md)."""
    if results.get("schema") != SCHEMA:
        raise ValueError(f"results.json schema {results.get('schema')!r}, expected {SCHEMA}")
    records = sorted(results["sections"].items(), key=lambda item: int(item[1]["number"]))
    parts: list[Part] = []
    goals: list[tuple[str, str, Goal]] = []
    for _key, record in records:
        number = str(record["number"])
        seconds = float(record.get("seconds") or 0.0)
        try:
            made = section_of(record)
        except KeyError as missing:
            # Figures stored by a run of older code lack a key its section() now reads: shown
            # as stored (flattened), saying so, until the next `make bench`.
            made = None
            record = {
                **record,
                "stale": f"Stored by a run of older code: `{record['module']}.section()` "
                f"needs the figure {missing} it did not measure; `make bench` measures it.",
            }
        if made is not None:
            part = Part(number, made.question, seconds=seconds)
            part.lines = made.markdown(number)[2:]  # Report.render writes the heading
            goals += [(number, made.question, goal) for goal in made.goals]
        elif "part" in record:
            part = Part(number, record["title"], list(record["part"]["lines"]), seconds=seconds)
            part.figures = [Figure(**f) for f in record["part"]["figures"]]
        else:
            part = module_part(
                number,
                record["title"],
                record.get("module") or "bench",
                record.get("figures"),
                seconds,
                bool(results["partial"]),
            )
            if "stale" in record:
                part.lines[:0] = [record["stale"], ""]
        parts.append(part)
    # Sections that gather the others' stored figures into charts: numbered after them.
    last = max((int(p.number) for p in parts), default=0)
    measured = list(parts)
    for made in (charts.scaling_section(results), charts.cost_section(results)):
        if made is None:
            continue
        last += 1
        part = Part(str(last), made.question)
        part.lines = made.markdown(str(last))[2:]
        goals += [(str(last), made.question, goal) for goal in made.goals]
        parts.append(part)
    if bench_dir is not None:
        charts.draw(results, bench_dir)
    report = Report([*header(results), *goals_table(goals)], parts)
    report.parts.append(timings(measured, float(results["elapsed_s"]), str(last + 1)))
    return report.render()


def timings(parts: Sequence[Part], elapsed: float, number: str) -> Part:
    """The time each measured section took (the gathering sections of bench/charts.py
    measure nothing), numbered last."""
    part = Part(number, "Time per section")
    part.table(
        ("section", "seconds"),
        [
            *((f"{p.number}. {p.title}", f"{p.seconds:.0f}") for p in parts),
            ("whole run", f"{elapsed:.0f}"),
        ],
    )
    return part


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def dump(results: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_JSON)
    parser.add_argument("--output", type=Path, default=RESULTS_MD)
    args = parser.parse_args(argv)
    args.output.write_text(render(load(args.results), args.output.parent))
    print(f"wrote {args.output} from {args.results}")


if __name__ == "__main__":
    main()
