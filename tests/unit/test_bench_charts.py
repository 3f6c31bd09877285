"""bench/charts.py: the charts and the sections that show them, drawn from stored figures
(bench/results.json as `make bench` writes it): what is plotted, against which goals."""

from __future__ import annotations

import copy
from pathlib import Path

from bench import charts
from bench.render import RESULTS_JSON, load, render

PNG = b"\x89PNG\r\n\x1a\n"


def test_scaling_points_come_from_the_fleet_scaling_and_discovery_figures() -> None:
    results = load(RESULTS_JSON)
    fleet = results["sections"]["fleet"]["figures"]
    warm = charts.warm_pass_series(results)
    assert warm["PostgreSQL fleet, targets file"] == sorted(
        (int(n), m["warm_pass_s"]) for n, m in fleet.items()
    )
    discovery = results["sections"]["discovery"]["figures"]
    assert warm["discovered fleet"] == [(discovery["targets"], discovery["warm_pass_s"])]
    pushes = results["sections"]["pushgateway_scale"]["figures"]["pushes"].values()
    assert charts.push_series(results) == {
        "the sink's push, one group": sorted((p["targets"], p["push_s"]) for p in pushes),
        "one PUT of the same body": sorted((p["targets"], p["one_put_s"]) for p in pushes),
    }


def test_cost_rows_per_fleet_and_interval() -> None:
    results = load(RESULTS_JSON)
    cost = results["sections"]["remote_write"]["figures"]["cost"]
    assert charts.cost_rows(results) == [
        row
        for fleet in cost
        for row in (
            (fleet["targets"], "every minute", 1, fleet["per_minute_now"]["monthly_usd"]),
            (
                fleet["targets"],
                "every 5 minutes, remote write",
                5,
                fleet["five_minute_remote_write"]["monthly_usd"],
            ),
            (
                fleet["targets"],
                "CloudWatch Metric Streams",
                0,
                fleet["metric_streams"]["monthly_usd"],
            ),
        )
    ]


def test_both_charts_are_drawn_as_png_and_shown_in_the_report(tmp_path: Path) -> None:
    results = load(RESULTS_JSON)
    made = charts.draw(results, tmp_path)
    assert made == [tmp_path / charts.SCALING_PNG, tmp_path / charts.COST_PNG]
    assert all(path.read_bytes().startswith(PNG) for path in made)
    text = render(results)
    assert f"![warm pass, push and peak memory against targets]({charts.SCALING_PNG})" in text
    assert f"![CloudWatch cost a month against the interval]({charts.COST_PNG})" in text


def test_the_scaling_section_judges_the_fleet_goals_at_100_targets() -> None:
    results = load(RESULTS_JSON)
    made = charts.scaling_section(results)
    assert made is not None
    at_100 = results["sections"]["fleet"]["figures"]["100"]
    assert [(g.what, g.measured, g.limit, g.unit) for g in made.goals] == [
        ("warm pass of 100 PostgreSQL targets", at_100["warm_pass_s"], 2.0, "s"),
        ("peak RSS per target at 100 targets", round(at_100["rss_mb"] / 100, 2), 2.0, "MB"),
    ]


def test_nothing_to_plot_draws_nothing(tmp_path: Path) -> None:
    results = copy.deepcopy(load(RESULTS_JSON))
    for key in ("fleet", "scaling", "discovery", "pushgateway_scale", "remote_write"):
        results["sections"][key]["figures"] = None
    assert charts.draw(results, tmp_path) == []
    assert charts.scaling_section(results) is None and charts.cost_section(results) is None
    assert "charts/" not in render(results)


def test_figures_an_older_run_stored_render_flat_with_a_note() -> None:
    results = copy.deepcopy(load(RESULTS_JSON))
    results["sections"] = {
        "question": {
            "number": 1,
            "title": "Question section",
            "module": "tests.integration.bench_fake_question",
            "seconds": 1.0,
            "figures": {"quick": False},  # no "pushes": measured before section() read them
        }
    }
    text = render(results)
    assert (
        "Stored by a run of older code: `tests.integration.bench_fake_question.section()` "
        "needs the figure 'pushes' it did not measure; `make bench` measures it."
    ) in text
    assert "| quick | false |" in text
