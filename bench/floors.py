"""Section 6 of `make bench`: for each source, the product's warm pass beside the floor for
the same work measured in the same process right after it (bench/worker.py ``floor``): the
SQL the product ran, replayed back to back over one connection; one GetMetricData round trip
for the same queries; one serverStatus round trip."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

from bench import cloudwatch_data
from bench.fleet import FleetSpec
from bench.harness import Servers, Sizes, run_worker, shown, worker_command
from bench.report import Figure, Part, counted, median_ratio, ms
from bench.section import Section, Table

FLOORS = {
    "postgres": "the product's SQL of that pass, replayed back to back over one open connection",
    "cloudwatch": "GetMetricData with the same queries, on an open client: {calls}",
    "mongo": "one serverStatus on an open client",
}


def floors(s: Servers, sizes: Sizes, reference: FleetSpec) -> tuple[Part, dict[str, Any]]:
    env = s.aws_env()
    specs = {
        "postgres": FleetSpec(
            postgres=[{k: v for k, v in reference.postgres[0].items() if k != "rds_id"}],
            env=env,
        ),
        "cloudwatch": FleetSpec(
            rds_instances=[p["rds_id"] for p in reference.postgres],
            docdb_instances=list(reference.docdb_instances),
            docdb_clusters=list(reference.docdb_clusters),
            elasticache=list(reference.elasticache),
            env=env,
        ),
        "mongo": FleetSpec(docdb=list(reference.docdb), env=env),
    }
    part = Part("6", "Floors: each source's warm pass against the same work without the product")
    rows: list[tuple[Any, ...]] = []
    measured: dict[str, Any] = {"passes": sizes.floor_passes, "sources": {}}
    for source, spec in specs.items():
        if source == "cloudwatch":
            # Pass k runs on a clock k minutes ahead (bench/worker.py on_schedule) and looks
            # back CLOUDWATCH_LOOKBACK_SECONDS (15 minutes): a set of datapoints every ten
            # minutes of the passes' span keeps one in every pass's window.
            now = time.time()
            for offset in range(0, 60 * sizes.floor_passes + 1, 600):
                cloudwatch_data.seed(s.aws, spec, now=now + offset, reset=offset == 0)
        path = s.write_spec(f"floor-{source}", spec)
        out = run_worker("floor", path, sizes.floor_passes, "--source", source)
        product, floor = out["product"], out["floor"]
        ratios = [p / f for p, f in zip(product, floor, strict=True)]
        what = FLOORS[source].format(calls=counted(out["floor_calls"], "call"))
        if source == "postgres":
            what += f" ({out['floor_calls']} statements)"
        command = shown(worker_command("floor", path, sizes.floor_passes, "--source", source))
        rows.append(
            (
                source,
                f"{spec.targets} ({spec.cloudwatch_queries} queries)"
                if source == "cloudwatch"
                else spec.targets,
                ms(statistics.median(product)),
                ms(statistics.median(floor)),
                median_ratio(ratios),
                what,
            )
        )
        measured["sources"][source] = {
            "targets": spec.targets,
            "cloudwatch_queries": spec.cloudwatch_queries,
            "product_warm_pass_s": statistics.median(product),
            "floor_s": statistics.median(floor),
            "ratio": statistics.median(ratios),
            "floor_is": what,
            "command": command,
        }
        part.figures.append(
            Figure(
                "6",
                f"Floor, {source}: warm pass against {what}",
                ms(statistics.median(product)),
                f"floor {ms(statistics.median(floor))}",
                median_ratio(ratios),
                command,
            )
        )
    part.add(
        "One worker process per source builds the product's Runtime for that source's targets "
        "of the reference fleet alone, runs one cold pass, then "
        f"{sizes.floor_passes} times: a warm pass (`Runtime.collect()`), then the floor. "
        "Figures are medians; the ratio is the median of the per-pass ratios (product / "
        "floor): how many times the bare round trips the product's pass takes.",
        "",
    )
    part.table(("source", "targets", "product warm pass", "floor", "ratio", "floor is"), rows)
    return part, measured


SOURCES = {
    "postgres": "PostgreSQL (one target)",
    "cloudwatch": "CloudWatch (the reference fleet's ids)",
    "mongo": "DocumentDB (serverStatus)",
}


def section(figures: Mapping[str, Any]) -> Section:
    """Section 6 of the report (bench/section.py), from the stored figures only."""
    sources = figures["sources"]
    return Section(
        question="How far is each source's warm pass from the bare work it must do?",
        method=(
            "One worker process per source builds the product's Runtime for that source's "
            "targets of the reference fleet alone, runs one cold pass, then "
            f"{figures['passes']} times: a warm pass (`Runtime.collect()`), then the floor, the "
            "same work without the product. Medians; the ratio is the median of the per-pass "
            "ratios (product / floor)."
        ),
        command="; ".join(str(f["command"]) for f in sources.values()),
        table=Table(
            (
                "source",
                "targets",
                "product warm pass (ms)",
                "floor (ms)",
                "product / floor (x)",
                "the floor is",
            ),
            [
                (
                    SOURCES.get(key, key),
                    f["targets"],
                    f["product_warm_pass_s"] * 1000,
                    f["floor_s"] * 1000,
                    round(f["ratio"], 2),
                    f["floor_is"],
                )
                for key, f in sources.items()
            ],
        ),
        no_goal="No limit is stated for the reference fleet's sources; the every-database and "
        "health sections judge PostgreSQL against its floor.",
    )
