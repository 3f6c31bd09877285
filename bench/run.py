"""`make bench`: how fast, how cheap, how far it scales, side by side with the older approach
(bench/baseline_exporter.py) and with prometheus-postgres-exporter. Writes bench/RESULTS.md.

    .venv/bin/python -m bench.run [--runs 5] [--quick] [--only KEY,...] [--output FILE]

Every figure and sentence of the report is made by the run that writes it: the built-in
sections below measure on local servers (bench/harness.py), each in fresh worker processes
(bench/worker.py); module sections are other engineers' ``bench/<subject>.py`` modules with
``measure(quick: bool) -> dict``, run when the module exists and rendered as a table of the
figures they return (bench/report.py ``module_part``); an absent one is reported as not run.
Methods: docs/benchmark.md.

The report names the commit it measured. A run that would write bench/RESULTS.md refuses to
start (exit status 2) when the tree holds uncommitted changes to what it measures
(bench/provenance.py), and refuses to write when the tree changed during the run. ``--quick``
(tiny sizes: the smoke test) and ``--only`` (some sections) run on any tree and never write
bench/RESULTS.md: they print the report, or write it to ``--output``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import charts, docs_blocks, provenance, render
from bench.harness import ROOT, Sizes, servers
from bench.report import Part, goal, module_part

RESULTS = ROOT / "bench" / "RESULTS.md"
FIRST_MODULE_SECTION = 9
BUDGET_SECONDS = 600.0  # `make bench` stays under 10 minutes here


@dataclass(frozen=True)
class ModuleSection:
    """A section measured by ``<module>.measure(quick)``, run when the module exists."""

    key: str
    module: str
    title: str


# Other branches add their module here by name only; nothing else in this file changes.
MODULE_SECTIONS: tuple[ModuleSection, ...] = (
    ModuleSection("pg_health", "bench.pg_health", "PostgreSQL health collectors"),
    ModuleSection("elasticache", "bench.elasticache", "ElastiCache Redis INFO"),
    ModuleSection("remote_write", "bench.remote_write", "Remote write and the CloudWatch interval"),
    ModuleSection("discovery", "bench.discovery", "Discovery"),
    ModuleSection("pushgateway_scale", "bench.pushgateway_scale", "A fleet on one Pushgateway"),
    ModuleSection("enhanced_monitoring", "bench.enhanced_monitoring", "Enhanced Monitoring"),
    ModuleSection("cost_per_sink", "bench.cost_per_sink", "Cost per sink"),
    ModuleSection("pg_databases", "bench.pg_databases", "PostgreSQL, every database of a server"),
    ModuleSection("docdb_collections", "bench.docdb_collections", "DocumentDB collections"),
    ModuleSection("lambda_sizes", "bench.lambda_sizes", "MemorySize and Shards"),
    ModuleSection("pg_cold", "bench.pg_cold", "PostgreSQL, collector CPU per cold target"),
)
BUILTIN = ("reference", "cloudwatch", "exporter", "coldstart", "scaling", "floors", "fleet", "cost")
# Built-in sections that render from their stored figures: key -> (module, its function
# making the Section). Their results.json record names them, as a module section's does.
BUILTIN_SECTIONS: dict[str, tuple[str, str]] = {
    "reference": ("bench.headline", "reference_section"),
    "cloudwatch": ("bench.headline", "cloudwatch_section"),
    "exporter": ("bench.exporter_compare", "section"),
    "coldstart": ("bench.coldstart", "section"),
    "scaling": ("bench.scaling", "section"),
    "floors": ("bench.floors", "section"),
    "cost": ("bench.cost", "section"),
    "fleet": ("bench.pg_fleet", "section"),
}


def run_module(section: ModuleSection, quick: bool) -> tuple[Mapping[str, Any] | None, float]:
    """The module's figures (None when the module is not there) and the seconds it took."""
    if importlib.util.find_spec(section.module) is None:
        return None, 0.0
    module = importlib.import_module(section.module)
    started = time.perf_counter()
    figures = module.measure(quick)
    seconds = time.perf_counter() - started
    if not isinstance(figures, Mapping):
        raise TypeError(
            f"{section.module}.measure() returned {type(figures).__name__}, expected a dict"
        )
    return figures, seconds


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--large-statements", type=int, default=20000)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run (smoke)")
    keys = [*BUILTIN, *(s.key for s in MODULE_SECTIONS)]
    parser.add_argument("--only", default="", help=f"comma-separated sections of {keys}")
    args = parser.parse_args(argv)
    args.only = [k for k in args.only.split(",") if k]
    unknown = [k for k in args.only if k not in keys]
    if unknown:
        parser.error(f"--only: unknown sections {unknown}; known: {keys}")
    return args


def refuse(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    started = time.perf_counter()
    partial = args.quick or bool(args.only)
    output: Path | None = args.output or (None if partial else RESULTS)
    if partial and output is not None and output.resolve() == RESULTS.resolve():
        refuse("--quick and --only never write bench/RESULTS.md; give another --output")
    if not partial:
        try:
            provenance.require_clean(ROOT)
        except provenance.DirtyTree as exc:
            refuse(str(exc))
    stamp = provenance.stamp(ROOT)
    load_start = provenance.load_average()
    sizes = (
        Sizes.tiny()
        if args.quick
        else Sizes.full(args.runs, args.statements, args.large_statements)
    )
    wanted = set(args.only) or {*BUILTIN, *(s.key for s in MODULE_SECTIONS)}

    def step(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {name}", flush=True)

    parts: list[Part] = []
    data: dict[str, Any] = {}

    def timed(key: str, title: str, work: Callable[[], Any]) -> None:
        if key not in wanted:
            return
        step(title)
        begun = time.perf_counter()
        part, data[key] = work()
        part.seconds = time.perf_counter() - begun
        parts.append(part)

    from bench import coldstart, exporter_compare, floors, headline, pg_fleet, scaling

    servers_needed = wanted & set(BUILTIN) - {"cost"}
    if servers_needed:
        step(f"starting servers, filling pg_stat_statements with {sizes.statements:,} statements")
        with servers(sizes.statements) as s:
            reference = headline.reference_spec(s)
            timed(
                "reference", "1. warm pass, reference fleet", lambda: headline.warm_pass(s, sizes)
            )
            timed(
                "cloudwatch",
                "2. CloudWatch values, calls, clients",
                lambda: headline.cloudwatch_values(s, reference),
            )
            timed(
                "exporter",
                "3. pg_stat_statements vs prometheus-postgres-exporter",
                lambda: exporter_compare.compare(s, sizes),
            )
            timed(
                "coldstart",
                "4. cold start and memory",
                lambda: coldstart.cold_start(s, sizes, reference),
            )
            timed("scaling", "5. scaling", lambda: scaling.scaling(s, sizes))
            timed("floors", "6. floors", lambda: floors.floors(s, sizes, reference))
            timed("fleet", "7. fleet", lambda: pg_fleet.pg_fleet(s, sizes))
    module_figures: dict[str, Mapping[str, Any] | None] = {}
    for index, section in enumerate(MODULE_SECTIONS):
        if section.key not in wanted:
            continue
        number = FIRST_MODULE_SECTION + index
        step(f"{number}. {section.title} ({section.module})")
        figures, seconds = run_module(section, args.quick)
        module_figures[section.key] = figures
        parts.append(
            module_part(str(number), section.title, section.module, figures, seconds, args.quick)
        )
    if "cost" in wanted:
        step("8. cost")
        from bench.cost import cost_figures

        if {"reference", "cloudwatch", "coldstart"} <= data.keys():
            data["cost"] = cost_figures(
                {**data["reference"], **data["cloudwatch"]}, data["coldstart"], data.get("fleet")
            )
            parts.append(Part("8", "Cost: a month at list prices"))
        else:
            parts.append(
                Part("8", "Cost: a month at list prices", ["Not run: needs sections 1, 2 and 4."])
            )
    parts.sort(key=lambda p: int(p.number))
    elapsed = time.perf_counter() - started
    load_end = provenance.load_average()
    results = {
        "schema": render.SCHEMA,
        "commit": stamp.commit,
        "uncommitted": list(stamp.uncommitted),
        "partial": partial,
        "command": command_line(argv),
        "machine": provenance.machine(),
        "load_average": {"start": list(load_start), "end": list(load_end)},
        "elapsed_s": round(elapsed, 1),
        "budget_s": BUDGET_SECONDS,
        "sections": records(parts, data, module_figures),
    }
    text = render.render(results)
    step(f"took {elapsed:.0f} s (budget {BUDGET_SECONDS:.0f} s: {goal(elapsed < BUDGET_SECONDS)})")
    if output is None:
        print(text)
        return
    if not partial:
        # The tree or HEAD may have moved while the run ran: then the figures are not the
        # named commit's.
        try:
            now = provenance.require_clean(ROOT)
        except provenance.DirtyTree as exc:
            refuse(str(exc))
        if now != stamp.commit:
            refuse(f"HEAD moved from {stamp.commit} to {now} during the run; run it again")
    # The raw figures beside the report: bench/results.json for a full run, else the
    # output's name with .json.
    figures_file = render.RESULTS_JSON if output == RESULTS else output.with_suffix(".json")
    render.dump(results, figures_file)
    output.write_text(text)
    stored = render.load(figures_file)
    drawn = charts.draw(stored, output.parent)
    step(f"wrote {figures_file}, {output} and {len(drawn)} charts")
    if not partial:
        # The docs' figures come from the run too (bench/docs_blocks.py).
        for path in docs_blocks.rewrite_all(stored):
            step(f"rewrote the bench blocks of {path.relative_to(ROOT)}")


def records(
    parts: Sequence[Part],
    data: Mapping[str, Any],
    module_figures: Mapping[str, Mapping[str, Any] | None],
) -> dict[str, dict[str, Any]]:
    """results.json's sections: a module's raw figures as it returned them; a built-in
    section's figures (what bench/cost.py reads) and the report text its run made."""
    modules = {str(FIRST_MODULE_SECTION + i): s for i, s in enumerate(MODULE_SECTIONS)}
    builtin_keys = {"1": "reference", "2": "cloudwatch", "3": "exporter", "4": "coldstart"}
    builtin_keys |= {"5": "scaling", "6": "floors", "7": "fleet", "8": "cost"}
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        module = modules.get(part.number)
        if module is not None:
            out[module.key] = {
                "number": int(part.number),
                "title": module.title,
                "module": module.module,
                "seconds": round(part.seconds, 3),
                "figures": module_figures.get(module.key),
            }
            continue
        key = builtin_keys[part.number]
        if key in BUILTIN_SECTIONS and data.get(key) is not None:
            module_name, declare = BUILTIN_SECTIONS[key]
            out[key] = {
                "number": int(part.number),
                "title": part.title,
                "module": module_name,
                "declare": declare,
                "seconds": round(part.seconds, 3),
                "figures": data.get(key),
            }
            continue
        out[key] = {
            "number": int(part.number),
            "title": part.title,
            "module": None,
            "seconds": round(part.seconds, 3),
            "figures": data.get(key),
            "part": render.part_record(part),
        }
    return out


def command_line(argv: Sequence[str] | None) -> str:
    return " ".join(
        [".venv/bin/python -m bench.run", *(argv if argv is not None else sys.argv[1:])]
    )


if __name__ == "__main__":
    main()
