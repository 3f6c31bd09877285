"""Sections 1 and 2 of `make bench`: the reference fleet's warm pass, product against the older
approach (bench/baseline_exporter.py) without its pg_sleep(1), the sleep shown apart; and the
CloudWatch values each got right against seeded data, with the calls and clients per pass."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from bench import cloudwatch_data
from bench.fleet import REFERENCE_TARGETS, FleetSpec, scaled
from bench.harness import Servers, Sizes, run_worker, shown, worker_command
from bench.report import Figure, Part, counted, median_ratio, ms, times, warm
from bench.section import Goal, Section, Table, number


def reference_spec(s: Servers) -> FleetSpec:
    return scaled(REFERENCE_TARGETS, [s.pg_ref(s.reference_pg)], s.doc_ref, s.aws_env())


def describe(spec: FleetSpec, statements: int) -> str:
    return (
        f"{spec.targets} targets: {len(spec.postgres)} PostgreSQL with {statements:,} "
        f"statements, {len(spec.docdb)} DocumentDB, {spec.cloudwatch_queries} CloudWatch "
        "queries"
    )


def warm_pass(s: Servers, sizes: Sizes) -> tuple[Part, dict[str, Any]]:
    spec = reference_spec(s)
    cloudwatch_data.seed(s.aws, spec)
    path = s.write_spec("reference-fleet", spec)
    sleep_passes = 2
    ours: list[float] = []
    base: list[float] = []
    slept: list[float] = []
    ratios: list[float] = []
    sleep_cost: list[float] = []
    last: dict[str, Any] = {}
    base_rss: list[float] = []
    for _ in range(sizes.runs):
        o = run_worker("ours", path, sizes.passes, timed=True)
        b = run_worker("baseline", path, sizes.passes, "--no-sleep", timed=True)
        w = run_worker("baseline", path, sleep_passes, timed=True)
        ours.append(warm(o["durations"]))
        base.append(warm(b["durations"]))
        slept.append(warm(w["durations"]))
        ratios.append(base[-1] / ours[-1])
        sleep_cost.append(slept[-1] - base[-1])
        last = {"ours": o, "base": b, "slept": w}
        base_rss += [b["peak_rss_mb"], w["peak_rss_mb"]]
    o_med, b_med, w_med = (statistics.median(x) for x in (ours, base, slept))
    ours_cmd = shown(worker_command("ours", path, sizes.passes))
    base_cmd = shown(worker_command("baseline", path, sizes.passes, "--no-sleep"))
    sleep_cmd = shown(worker_command("baseline", path, sleep_passes))
    part = Part("1", "Warm pass, reference fleet: product against the older approach")
    part.figures += [
        Figure(
            "1",
            f"Warm pass, reference fleet ({describe(spec, s.statements)})",
            ms(o_med),
            f"older approach without its pg_sleep(1): {ms(b_med)}",
            median_ratio(ratios),
            f"{ours_cmd}; {base_cmd}",
        ),
        Figure(
            "1b",
            "The older approach's pg_sleep(1), shown apart",
            "",
            f"with the sleep: {ms(w_med)} (the sleep adds {ms(statistics.median(sleep_cost))})",
            times(w_med / o_med),
            sleep_cmd,
        ),
    ]
    part.add(
        f"{counted(sizes.runs, 'run')}; in each, one fresh worker process per approach, one "
        f"after the other: the product ({sizes.passes} passes), the older approach without its "
        f"pg_sleep(1) ({sizes.passes} passes) and with it ({sleep_passes} passes). A run's "
        "figure is the median of its passes after the first; the table gives the median over "
        "the runs, and the ratio is the median of the per-run ratios (older / product).",
        "",
    )
    part.table(
        ("run", "product", "older, no sleep", "ratio", "older, with sleep", "sleep adds"),
        (
            (i + 1, ms(o), ms(b), times(b / o), ms(w), ms(w - b))
            for i, (o, b, w) in enumerate(zip(ours, base, slept, strict=True))
        ),
    )
    o = last["ours"]
    part.add(
        f"Product, last run: {o['up']} of {o['targets']} targets up, {o['series']} series per "
        f"pass, COLLECTOR_MAX_WORKERS={o['max_workers']}; the pass is `Runtime.collect()` "
        "(no push). The older approach runs its targets one after another in one process "
        "(bench/baseline_exporter.py: a labelled re-implementation, not code that ships).",
    )
    return part, {
        "description": describe(spec, s.statements),
        "ours_warm": ours,
        "base_warm": base,
        "slept_warm": slept,
        "base_rss_mb": max(base_rss),
        # The report's section (reference_section() below) reads these too.
        "runs": sizes.runs,
        "passes": sizes.passes,
        "sleep_passes": sleep_passes,
        "ratios": ratios,
        "targets": o["targets"],
        "up": o["up"],
        "series": o["series"],
        "max_workers": o["max_workers"],
        "command": f"{ours_cmd}; {base_cmd}; {sleep_cmd}",
    }


def reference_section(figures: Mapping[str, Any]) -> Section:
    """Section 1 of the report (bench/section.py), from the stored figures only."""
    ours = statistics.median(figures["ours_warm"])
    base = statistics.median(figures["base_warm"])
    slept = statistics.median(figures["slept_warm"])
    ratio = statistics.median(figures["ratios"])
    return Section(
        question="How long does a warm pass of the reference fleet take, against the older "
        "approach?",
        method=(
            f"The reference fleet: {figures['description']}. "
            f"{counted(figures['runs'], 'run')}; in each, "
            f"one fresh worker process per approach, one after the other: the product "
            f"({figures['passes']} passes, `Runtime.collect()`, no push), the older approach "
            f"(bench/baseline_exporter.py, a labelled re-implementation running its targets one "
            f"after another) without its pg_sleep(1) ({figures['passes']} passes) and with it "
            f"({figures['sleep_passes']} passes). A run's figure is the median of its passes "
            "after the first; the table gives the median over the runs."
        ),
        command=str(figures["command"]),
        table=Table(
            ("approach", "warm pass (ms)", "older / product (x)"),
            [
                ("product", ours * 1000, 1.0),
                ("older approach, without its pg_sleep(1)", base * 1000, round(ratio, 2)),
                ("older approach, with its pg_sleep(1)", slept * 1000, round(slept / ours, 2)),
            ],
        ),
        no_goal="A comparison with the older approach, which sets no limit; the ratio is the "
        "median of the per-run ratios.",
        notes=[
            f"Product, last run: {figures['up']} of {figures['targets']} targets up, "
            f"{figures['series']} series per pass, COLLECTOR_MAX_WORKERS="
            f"{figures['max_workers']}.",
            f"The older approach's pg_sleep(1) adds {number((slept - base) * 1000)} ms to its "
            "pass.",
        ],
    )


def cloudwatch_values(s: Servers, spec: FleetSpec) -> tuple[Part, dict[str, Any]]:
    seeded = cloudwatch_data.seed(s.aws, spec)
    path = s.write_spec("reference-fleet-values", spec)
    o = run_worker("ours", path, 2)
    b = run_worker("baseline", path, 2, "--no-sleep")
    ours = cloudwatch_data.by_case(seeded, o["cloudwatch_values"])
    base = cloudwatch_data.by_case(seeded, b["cloudwatch_values"])
    ours_all = cloudwatch_data.score(seeded, o["cloudwatch_values"])
    base_all = cloudwatch_data.score(seeded, b["cloudwatch_values"])
    ours_calls = o["calls"][-1].get("GetMetricData", 0)
    base_calls = b["calls"][-1].get("GetMetricStatistics", 0)
    ours_clients = o["clients"][-1].get("cloudwatch", 0)
    base_clients = b["clients"][-1].get("cloudwatch", 0)
    total = len(seeded.expected)
    command = (
        f"{shown(worker_command('ours', path, 2))}; "
        f"{shown(worker_command('baseline', path, 2, '--no-sleep'))}"
    )
    part = Part("2", "CloudWatch: values against seeded data, calls and clients per pass")
    part.figures += [
        Figure(
            "2",
            f"CloudWatch series wrong / missing against the seeded newest values ({total} "
            "series, reference fleet)",
            f"{ours_all.wrong} wrong, {ours_all.missing} missing",
            f"older approach: {base_all.wrong} wrong, {base_all.missing} missing",
            "",
            command,
        ),
        Figure(
            "2b",
            "CloudWatch API calls per warm pass, reference fleet "
            f"({spec.cloudwatch_queries} queries; floor ceil(q/500) = {spec.floor_calls})",
            f"{ours_calls} GetMetricData",
            f"older approach: {base_calls} GetMetricStatistics",
            times(base_calls / ours_calls) if ours_calls else "n/a",
            command,
        ),
        Figure(
            "2c",
            "CloudWatch clients created per warm pass, reference fleet",
            str(ours_clients),
            f"older approach: {base_clients}",
            "",
            command,
        ),
    ]
    part.add(
        "The moto stand-in is emptied and seeded right before one worker run of each approach "
        f"(2 passes each, the last one counted): every metric gets {seeded.points_per_metric} "
        "datapoints one period apart, put in the order middle, newest, oldest, with kinds of "
        "data taken in turn (bench/cloudwatch_data.py). Each exported series is compared with "
        "the newest value seeded for it: right, wrong, or missing.",
        "",
    )
    part.table(
        ("data", "series", "product right", "wrong", "missing", "older right", "wrong", "missing"),
        (
            (
                kind,
                ours[kind].right + ours[kind].wrong + ours[kind].missing,
                ours[kind].right,
                ours[kind].wrong,
                ours[kind].missing,
                base[kind].right,
                base[kind].wrong,
                base[kind].missing,
            )
            for kind in (*cloudwatch_data.CASES, cloudwatch_data.OUT_SERIES)
        ),
    )
    part.add(
        f"The last row is a subset of the rows above: the series `{cloudwatch_data.OUT_SERIES}`, "
        "which the older approach fills from NetworkBandwidthInAllowanceExceeded.",
        "",
        f"The stand-in answered {b['answered']} of the older approach's {base_calls} "
        f"GetMetricStatistics calls with datapoints; in {b['first_not_newest']} of them the "
        "first datapoint (`Datapoints[0]`, what the older approach takes) was not the newest.",
    )
    return part, {
        "metrics_requested": o["metrics_requested"],
        "base_requests": base_calls,
        # The report's section (cloudwatch_section() below) reads these too.
        "series": total,
        "points_per_metric": seeded.points_per_metric,
        "cloudwatch_queries": spec.cloudwatch_queries,
        "floor_calls": spec.floor_calls,
        "product": {
            "wrong": ours_all.wrong,
            "missing": ours_all.missing,
            "getmetricdata_calls": ours_calls,
            "clients": ours_clients,
        },
        "older": {
            "wrong": base_all.wrong,
            "missing": base_all.missing,
            "getmetricstatistics_calls": base_calls,
            "clients": base_clients,
            "answered": b["answered"],
            "first_not_newest": b["first_not_newest"],
        },
        "by_kind": {
            kind: {
                "series": ours[kind].right + ours[kind].wrong + ours[kind].missing,
                "product": [ours[kind].right, ours[kind].wrong, ours[kind].missing],
                "older": [base[kind].right, base[kind].wrong, base[kind].missing],
            }
            for kind in (*cloudwatch_data.CASES, cloudwatch_data.OUT_SERIES)
        },
        "out_series": cloudwatch_data.OUT_SERIES,
        "command": command,
    }


def cloudwatch_section(figures: Mapping[str, Any]) -> Section:
    """Section 2 of the report (bench/section.py), from the stored figures only."""
    product, older = figures["product"], figures["older"]
    return Section(
        question="Does each CloudWatch series carry the newest value, and how many calls and "
        "clients does a pass make?",
        method=(
            "The moto stand-in is emptied and seeded right before one worker run of each "
            f"approach (2 passes each, the last one counted): every metric gets "
            f"{figures['points_per_metric']} datapoints one period apart, put in the order "
            "middle, newest, oldest, with kinds of data taken in turn (bench/cloudwatch_data.py). "
            f"Each of the {figures['series']} exported series of the reference fleet is compared "
            "with the newest value seeded for it: right, wrong, or missing."
        ),
        command=str(figures["command"]),
        table=Table(
            (
                "data",
                "series",
                "product right",
                "wrong",
                "missing",
                "older right",
                "wrong",
                "missing",
            ),
            [
                (kind, row["series"], *row["product"], *row["older"])
                for kind, row in figures["by_kind"].items()
            ],
        ),
        goals=[
            Goal(
                "CloudWatch series wrong or missing against the seeded newest values",
                product["wrong"] + product["missing"],
                0,
                "series",
            ),
            Goal(
                f"GetMetricData calls a pass for {figures['cloudwatch_queries']} queries, "
                "against the floor ceil(queries / 500)",
                product["getmetricdata_calls"],
                figures["floor_calls"],
                "calls",
            ),
        ],
        notes=[
            f"The last row is a subset of the rows above: the series `{figures['out_series']}`, "
            "which the older approach fills from NetworkBandwidthInAllowanceExceeded.",
            f"The older approach: {older['wrong']} wrong and {older['missing']} missing, "
            f"{older['getmetricstatistics_calls']} GetMetricStatistics calls and "
            f"{older['clients']} CloudWatch clients a pass, against the product's "
            f"{product['clients']} clients made a warm pass.",
            f"The stand-in answered {older['answered']} of the older approach's "
            f"{older['getmetricstatistics_calls']} GetMetricStatistics calls with datapoints; "
            f"in {older['first_not_newest']} of them the first datapoint (`Datapoints[0]`, what "
            "the older approach takes) was not the newest.",
        ],
    )
