"""Charts of bench/results.json (matplotlib, PNG), and the two sections that show them: how the
warm pass, the push and peak memory grow with the number of targets, and what CloudWatch
costs a month against the interval.

These sections measure nothing of their own: they gather figures the other sections stored
(the fleet, scaling, discovery, Pushgateway and remote-write sections) and draw them against
the goals. A figure a run did not make (a section not run, a quick run's sizes) is simply not
plotted; a chart with nothing to plot is not drawn and not shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.section import Chart, Goal, Section, Table

SCALING_PNG = "charts/scaling.png"
COST_PNG = "charts/cost.png"
# Goals drawn as lines (the sections that judge them say so in their own words too).
GOAL_WARM_PASS_S = 2.0  # 100 PostgreSQL targets warm (bench/pg_fleet.py)
GOAL_TARGETS = 100
GOAL_RSS_MB_PER_TARGET = 2.0  # (bench/pg_fleet.py)
MEMORY_SIZE_MB = 256  # template.yaml's MemorySize default

Point = tuple[int, float]


def _figures(results: Mapping[str, Any], key: str) -> Any:
    record = results.get("sections", {}).get(key)
    return None if record is None else record.get("figures")


def warm_pass_series(results: Mapping[str, Any]) -> dict[str, list[Point]]:
    """Warm pass (s) by number of targets, per kind of fleet."""
    out: dict[str, list[Point]] = {}
    fleet = _figures(results, "fleet")
    if isinstance(fleet, Mapping):
        out["PostgreSQL fleet, targets file"] = sorted(
            (int(n), float(m["warm_pass_s"])) for n, m in fleet.items()
        )
    scaling = _figures(results, "scaling")
    if isinstance(scaling, list):
        out["reference mix (PostgreSQL, DocumentDB, CloudWatch)"] = sorted(
            (int(m["n"]), float(m["ours_s"])) for m in scaling
        )
    discovery = _figures(results, "discovery")
    if isinstance(discovery, Mapping) and "warm_pass_s" in discovery:
        out["discovered fleet"] = [(int(discovery["targets"]), float(discovery["warm_pass_s"]))]
    return {name: points for name, points in out.items() if points}


def push_series(results: Mapping[str, Any]) -> dict[str, list[Point]]:
    """Push (s) by number of targets: the sink's push of the shard's one group (encoding
    included) and one plain PUT of the same body, both to a default Pushgateway."""
    pushes = _figures(results, "pushgateway_scale")
    if not isinstance(pushes, Mapping) or not isinstance(pushes.get("pushes"), Mapping):
        return {}
    rows = [r for r in pushes["pushes"].values() if "targets" in r]
    return {
        name: sorted((int(r["targets"]), float(r[key])) for r in rows)
        for name, key in (
            ("the sink's push, one group", "push_s"),
            ("one PUT of the same body", "one_put_s"),
        )
        if rows
    }


def memory_series(results: Mapping[str, Any]) -> dict[str, list[Point]]:
    """Peak RSS (MB) by number of targets, per kind of fleet."""
    out: dict[str, list[Point]] = {}
    fleet = _figures(results, "fleet")
    if isinstance(fleet, Mapping):
        out["PostgreSQL fleet, targets file"] = sorted(
            (int(n), float(m["rss_mb"])) for n, m in fleet.items()
        )
    scaling = _figures(results, "scaling")
    if isinstance(scaling, list):
        out["reference mix (PostgreSQL, DocumentDB, CloudWatch)"] = sorted(
            (int(m["n"]), float(m["rss"])) for m in scaling if m.get("rss") is not None
        )
    discovery = _figures(results, "discovery")
    if isinstance(discovery, Mapping) and "peak_rss_mb" in discovery:
        out["discovered fleet"] = [(int(discovery["targets"]), float(discovery["peak_rss_mb"]))]
    return {name: points for name, points in out.items() if points}


# (scenario, interval in minutes, monthly $) per fleet of the remote-write section.
COST_WAYS = (
    ("every minute", 1, "per_minute_now"),
    ("every 5 minutes, remote write", 5, "five_minute_remote_write"),
)


def fleet_name(targets: int) -> str:
    """The remote-write section's fleets: its reference fleet is 6 targets."""
    return "reference fleet (6 targets)" if targets == 6 else f"{targets} targets"


def cost_rows(results: Mapping[str, Any]) -> list[tuple[int, str, int, float]]:
    """(targets, way, interval in minutes, $ a month) for each fleet the remote-write section
    priced; Metric Streams (no interval: every minute, pushed by AWS) with interval 0."""
    figures = _figures(results, "remote_write")
    if not isinstance(figures, Mapping) or not isinstance(figures.get("cost"), list):
        return []
    rows: list[tuple[int, str, int, float]] = []
    for fleet in figures["cost"]:
        targets = int(fleet["targets"])
        for way, minutes, key in COST_WAYS:
            if isinstance(fleet.get(key), Mapping):
                rows.append((targets, way, minutes, float(fleet[key]["monthly_usd"])))
        if isinstance(fleet.get("metric_streams"), Mapping):
            streams = float(fleet["metric_streams"]["monthly_usd"])
            rows.append((targets, "CloudWatch Metric Streams", 0, streams))
    return rows


# --- drawing -------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _plot_lines(axis: Any, series: Mapping[str, list[Point]]) -> None:
    for name, points in series.items():
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)


def draw_scaling(results: Mapping[str, Any], path: Path) -> bool:
    """Warm pass, push and peak memory against targets, with the goals; False if no data."""
    panels: list[tuple[str, str, dict[str, list[Point]], Callable[[Any], None]]] = [
        (
            "warm pass",
            "seconds",
            warm_pass_series(results),
            lambda ax: ax.axhline(
                GOAL_WARM_PASS_S,
                color="red",
                linestyle="--",
                label=f"goal: {GOAL_TARGETS} targets under {GOAL_WARM_PASS_S:g} s",
            ),
        ),
        (
            "push to one Pushgateway",
            "seconds",
            push_series(results),
            lambda ax: None,  # its goal is a ratio to the plotted PUT line (section 13)
        ),
        (
            "peak memory of a function instance",
            "MB (peak RSS)",
            memory_series(results),
            lambda ax: ax.axhline(
                MEMORY_SIZE_MB,
                color="red",
                linestyle="--",
                label=f"template MemorySize {MEMORY_SIZE_MB} MB",
            ),
        ),
    ]
    drawn = [panel for panel in panels if panel[2]]
    if not drawn:
        return False
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(drawn), figsize=(5 * len(drawn), 4), squeeze=False)
    for axis, (title, unit, series, goal_line) in zip(axes[0], drawn, strict=True):
        _plot_lines(axis, series)
        goal_line(axis)
        axis.set_xscale("log")
        shown = sorted({p[0] for points in series.values() for p in points})
        axis.set_xticks(shown, [f"{n:,}" for n in shown])
        axis.minorticks_off()
        axis.set_xlabel("targets")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def draw_cost(results: Mapping[str, Any], path: Path) -> bool:
    """CloudWatch's monthly cost against the interval, per fleet; False if no data."""
    rows = cost_rows(results)
    if not rows:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for targets in sorted({r[0] for r in rows}):
        timed = sorted((m, usd) for t, _, m, usd in rows if t == targets and m)
        line = axis.plot([m for m, _ in timed], [u for _, u in timed], marker="o")[0]
        line.set_label(fleet_name(targets))
        for t, way, minutes, usd in rows:
            if t == targets and not minutes:
                label = f"{way}, {fleet_name(t)}"
                axis.axhline(usd, color=line.get_color(), linestyle=":", label=label)
    axis.set_yscale("log")
    intervals = sorted({r[2] for r in rows if r[2]})
    axis.set_xticks(intervals, [f"{m} min" for m in intervals])
    axis.set_xlabel("interval between CloudWatch queries (minutes)")
    axis.set_ylabel("$ a month (log scale)")
    axis.set_title("CloudWatch GetMetricData cost a month")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


# --- the sections ------------------------------------------------------------------------------


def _scaling_rows(results: Mapping[str, Any]) -> Iterator[tuple[str, int, object, object]]:
    warm = warm_pass_series(results)
    memory = {name: dict(points) for name, points in memory_series(results).items()}
    for name, points in warm.items():
        for n, seconds in points:
            yield (name, n, round(seconds, 3), memory.get(name, {}).get(n))


def scaling_section(results: Mapping[str, Any]) -> Section | None:
    warm = warm_pass_series(results)
    if not warm:
        return None
    goals: list[Goal] = []
    fleet = warm.get("PostgreSQL fleet, targets file", [])
    memory = dict(memory_series(results).get("PostgreSQL fleet, targets file", []))
    at_goal = dict(fleet).get(GOAL_TARGETS)
    if at_goal is not None:
        goals.append(Goal(f"warm pass of {GOAL_TARGETS} PostgreSQL targets", at_goal, 2.0, "s"))
        rss = memory.get(GOAL_TARGETS)
        if rss is not None:
            goals.append(
                Goal(
                    f"peak RSS per target at {GOAL_TARGETS} targets",
                    round(rss / GOAL_TARGETS, 2),
                    GOAL_RSS_MB_PER_TARGET,
                    "MB",
                )
            )
    return Section(
        question="How do the warm pass and peak memory grow with the number of targets?",
        method=(
            "The figures of the fleet, scaling and discovery sections, side by side: warm pass "
            "= median of the passes after the first; peak RSS of the function's process. The "
            "chart adds the push of the Pushgateway section."
        ),
        command=".venv/bin/python -m bench.render (from bench/results.json)",
        table=Table(
            ("fleet", "targets", "warm pass (s)", "peak RSS (MB)"), list(_scaling_rows(results))
        ),
        goals=goals,
        no_goal="" if goals else f"The goals are judged at {GOAL_TARGETS} PostgreSQL targets.",
        charts=[Chart(SCALING_PNG, "warm pass, push and peak memory against targets")],
    )


def cost_section(results: Mapping[str, Any]) -> Section | None:
    rows = cost_rows(results)
    if not rows:
        return None
    return Section(
        question="What does CloudWatch cost a month, by interval and fleet size?",
        method=(
            "GetMetricData metrics requested a month at list price, from the remote-write "
            "section's counted queries per pass; Metric Streams priced per metric update."
        ),
        command=".venv/bin/python -m bench.render (from bench/results.json)",
        table=Table(
            ("fleet", "way", "per month ($)"),
            [(fleet_name(t), way, f"${usd:,.2f}") for t, way, _, usd in rows],
        ),
        no_goal="The cost is the user's to weigh against freshness; the remote-write section "
        "judges the interval's saving.",
        charts=[Chart(COST_PNG, "CloudWatch cost a month against the interval")],
    )


def draw(results: Mapping[str, Any], bench_dir: Path) -> list[Path]:
    """Every chart that has data, written under ``bench_dir``; the files written."""
    made = []
    for relative, drawer in ((SCALING_PNG, draw_scaling), (COST_PNG, draw_cost)):
        path = bench_dir / relative
        if drawer(results, path):
            made.append(path)
    return made
