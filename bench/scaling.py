"""Section 5 of `make bench`: the reference mix of targets repeated to n targets, product
against the older approach without its pg_sleep(1), the same runs and passes for both, warm
pass against warm pass."""

from __future__ import annotations

import statistics
from typing import Any

from bench import cloudwatch_data
from bench.fleet import scaled
from bench.harness import PG_VERSION, Servers, Sizes, peak_rss, run_worker, shown, worker_command
from bench.report import Figure, Part, counted, median_ratio, ms, warm


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
        measured.append({"n": n, "ours_s": ours_s, "base_s": base_s, "rss": peak_rss(ours_runs)})
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
