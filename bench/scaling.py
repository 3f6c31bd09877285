"""Section 5 of `make bench`: the reference mix of targets repeated to n targets, product
against the older approach without its pg_sleep(1), the same runs and passes for both, warm
pass against warm pass."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench import cloudwatch_data
from bench.fleet import scaled
from bench.harness import PG_VERSION, Servers, Sizes, peak_rss, run_worker, shown, worker_command
from bench.report import Figure, Part, counted, median_ratio, ms, warm
from bench.section import Section, Table, number


def scaling(s: Servers, sizes: Sizes) -> tuple[Part, list[dict[str, Any]]]:
    pg = [s.pg_ref(s.reference_pg), s.pg_ref(s.second_pg)]
    part = Part("5", "Scaling: the reference mix repeated, product against the older approach")
    rows: list[tuple[Any, ...]] = []
    slowest: list[str] = []
    measured: list[dict[str, Any]] = []
    for n in sizes.scaling:
        spec = scaled(n, pg, s.doc_ref, s.aws_env())
        cloudwatch_data.seed(s.aws, spec)
        path = s.write_spec(f"scale-{n}", spec)
        ours_runs: list[dict[str, Any]] = []
        base_runs: list[dict[str, Any]] = []
        ratios: list[float] = []
        for _ in range(sizes.scaling_runs):
            ours_runs.append(run_worker("ours", path, sizes.scaling_passes, timed=True))
            base_runs.append(
                run_worker("baseline", path, sizes.scaling_passes, "--no-sleep", timed=True)
            )
            ratios.append(warm(base_runs[-1]["durations"]) / warm(ours_runs[-1]["durations"]))
        ours_s = statistics.median(warm(r["durations"]) for r in ours_runs)
        base_s = statistics.median(warm(r["durations"]) for r in base_runs)
        last, base_last = ours_runs[-1], base_runs[-1]
        ours_calls = last["calls"][-1].get("GetMetricData", 0)
        base_calls = base_last["calls"][-1].get("GetMetricStatistics", 0)
        command = (
            f"{shown(worker_command('ours', path, sizes.scaling_passes))}; "
            f"{shown(worker_command('baseline', path, sizes.scaling_passes, '--no-sleep'))}"
        )
        rows.append(
            (
                n,
                len(spec.postgres),
                last["max_workers"],
                ms(ours_s),
                ms(base_s),
                median_ratio(ratios),
                spec.cloudwatch_queries,
                ours_calls,
                base_calls,
                spec.floor_calls,
                f"{last['up']}/{last['targets']}",
                f"{peak_rss(ours_runs):.0f} MB",
                f"{peak_rss(base_runs):.0f} MB",
            )
        )
        slowest.append(
            f"- {n} targets: "
            + ", ".join(f"{name} {ms(t)}" for name, t in sorted(last["slowest_source_s"].items()))
        )
        part.figures.append(
            Figure(
                "5",
                f"Warm pass, {n} targets of the reference mix ({spec.cloudwatch_queries} "
                f"CloudWatch queries: {ours_calls} GetMetricData against {base_calls} "
                "GetMetricStatistics)",
                ms(ours_s),
                f"older approach without its pg_sleep(1): {ms(base_s)}",
                median_ratio(ratios),
                command,
            )
        )
        measured.append(
            {
                "n": n,
                "ours_s": ours_s,
                "base_s": base_s,
                "rss": peak_rss(ours_runs),
                # The report's section (section() below) reads these too.
                "base_rss_mb": peak_rss(base_runs),
                "ratio": statistics.median(ratios),
                "postgres": len(spec.postgres),
                "workers": last["max_workers"],
                "up": last["up"],
                "targets": last["targets"],
                "cloudwatch_queries": spec.cloudwatch_queries,
                "getmetricdata_calls": ours_calls,
                "getmetricstatistics_calls": base_calls,
                "floor_calls": spec.floor_calls,
                "slowest_source_s": dict(last["slowest_source_s"]),
                "runs": sizes.scaling_runs,
                "passes": sizes.scaling_passes,
                "statements": s.statements,
                "postgres_version": PG_VERSION,
                "command": command,
            }
        )
    part.add(
        "n targets in the reference mix, repeated in order (a PostgreSQL target with its RDS "
        "metrics, a DocumentDB target, two DocumentDB instances, a DocumentDB cluster, an "
        f"ElastiCache cluster; bench/fleet.py). PostgreSQL targets alternate between two "
        f"PostgreSQL {PG_VERSION} servers holding {s.statements:,} statements each; DocumentDB "
        "targets share one stand-in; CloudWatch ids are distinct on the moto stand-in, seeded "
        f"before each size. Both approaches: {counted(sizes.scaling_runs, 'run')} of "
        f"{counted(sizes.scaling_passes, 'pass', 'passes')}, one fresh worker process each, "
        "product and older approach one after the other in each run; a run's figure is the "
        "median of its passes after the first, the table gives the median over the runs and "
        "the median of the per-run ratios (older / product). The older approach runs without "
        "its pg_sleep(1) (section 1 shows the sleep).",
        "",
    )
    part.table(
        (
            "targets",
            "PostgreSQL",
            "workers",
            "product warm pass",
            "older approach",
            "ratio",
            "CW queries",
            "GetMetricData calls",
            "GetMetricStatistics calls",
            "floor ceil(q/500)",
            "up",
            "product peak RSS",
            "older peak RSS",
        ),
        rows,
    )
    part.add(
        "Longest single source of the product's last pass, per kind (`SourceOutcome."
        "duration_seconds`):",
        "",
        *slowest,
    )
    return part, measured


def section(figures: Sequence[Mapping[str, Any]]) -> Section:
    """The report's section (bench/section.py), from the stored figures only: one entry per
    size (a list, as bench/charts.py reads it)."""
    sizes = sorted(figures, key=lambda m: int(m["n"]))
    largest = sizes[-1]
    rows = [
        (
            f"{m['n']:,} targets ({m['postgres']} PostgreSQL)",
            f"{m['up']}/{m['targets']}",
            m["ours_s"] * 1000,
            m["base_s"] * 1000,
            round(m["ratio"], 2),
            m["cloudwatch_queries"],
            m["getmetricdata_calls"],
            m["getmetricstatistics_calls"],
            m["rss"],
            m["base_rss_mb"],
        )
        for m in sizes
    ]
    slowest = ", ".join(
        f"{name} {number(t * 1000)} ms" for name, t in sorted(largest["slowest_source_s"].items())
    )
    return Section(
        question="How does the warm pass grow with the number of targets, against the older "
        "approach?",
        method=(
            "n targets of the reference mix, repeated in order (a PostgreSQL target with its RDS "
            "metrics, a DocumentDB target, two DocumentDB instances, a DocumentDB cluster, an "
            "ElastiCache cluster; bench/fleet.py); PostgreSQL targets alternate between two "
            f"PostgreSQL {largest['postgres_version']} servers with {largest['statements']:,} "
            "statements each; CloudWatch on the moto stand-in, seeded before each size. Both "
            f"approaches: {counted(largest['runs'], 'run')} of "
            f"{counted(largest['passes'], 'pass', 'passes')}, one fresh "
            "worker process each; a run's figure is the median of its passes after the first, "
            "the table the median over the runs and of the per-run ratios (older / product). "
            "The older approach runs without its pg_sleep(1) (section 1 shows the sleep)."
        ),
        command=str(largest["command"]),
        table=Table(
            (
                "fleet",
                "up",
                "product warm pass (ms)",
                "older approach (ms)",
                "older / product (x)",
                "CloudWatch queries",
                "GetMetricData calls",
                "GetMetricStatistics calls",
                "product peak RSS (MB)",
                "older peak RSS (MB)",
            ),
            rows,
        ),
        no_goal="A comparison with the older approach, which sets no limit; the goals for "
        "fleets are judged in the fleet section.",
        notes=[
            "GetMetricData calls against their floor ceil(queries / 500): "
            + ", ".join(f"{m['n']} targets {m['floor_calls']}" for m in sizes)
            + ".",
            f"Longest single source of the product's last pass at {largest['n']} targets: "
            f"{slowest}.",
        ],
    )
