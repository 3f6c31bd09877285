"""`bench/cost_per_sink.py` on its tiny size, so it cannot rot between benchmark runs, and its
arithmetic on known figures. No timing is asserted (speed is what the bench reports)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.cost_per_sink import COLUMNS, FLEETS, KINDS, costs, measure, prices, section, tiered
from middleware_monitoring.bounds import MINUTES_PER_MONTH
from middleware_monitoring.cloudwatch import declarations

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    return measure(quick=True)


def test_every_target_of_every_kind_is_counted_from_a_real_pass(figures):
    kinds = figures["kinds"]
    # DocumentDB: its own target and its cluster's and two instances' CloudWatch targets.
    assert {k: v["targets_up"] for k, v in kinds.items()} == {
        "pg_typical": 1,
        "pg_many": 1,
        "docdb": 4,
        "elasticache": 1,
    }
    assert all(v["copies_up"] == v["copies"] == 3 for v in kinds.values())
    # CloudWatch metrics per pass: what the product declares for an RDS instance, a
    # DocumentDB cluster and its two instances, an ElastiCache cluster.
    rds = len(declarations.rds("db", "DBInstanceIdentifier"))
    docdb = 2 * len(declarations.docdb_instance("i")) + len(declarations.docdb_cluster("c"))
    assert {k: v["getmetricdata_metrics_per_target"] for k, v in kinds.items()} == {
        "pg_typical": rds,
        "pg_many": rds,
        "docdb": docdb,
        "elasticache": len(declarations.elasticache("e")),
    }
    for kind in ("pg_typical", "pg_many"):
        assert kinds[kind]["emf_custom_metrics_per_target"] <= 40
    # More databases, more series; the EMF default set does not grow with them.
    assert kinds["pg_many"]["series_per_target"] > kinds["pg_typical"]["series_per_target"]
    assert (
        kinds["pg_many"]["emf_custom_metrics_per_target"]
        == kinds["pg_typical"]["emf_custom_metrics_per_target"]
    )
    # Without statements, EMF_METRICS=* makes a metric of every series.
    for kind in ("docdb", "elasticache"):
        assert kinds[kind]["emf_custom_metrics_per_target_all"] == kinds[kind]["series_per_target"]
    assert set(figures["costs"]) == set(KINDS)
    assert all(set(c) == {str(n) for n in FLEETS} for c in figures["costs"].values())


def test_the_section_declares_its_fleets_columns_and_goals(figures):
    made = section(figures)
    assert made.question.endswith("?")
    assert made.table.columns == COLUMNS
    assert [row[0] for row in made.table.rows] == [
        f"{n:,} {what}"
        for what in (
            "PostgreSQL targets (typical server)",
            "PostgreSQL targets (many databases)",
            "DocumentDB targets",
            "ElastiCache nodes",
        )
        for n in FLEETS
    ]
    assert [(g.what, g.limit, g.unit, g.met) for g in made.goals] == [
        (
            "EMF custom metrics of one PostgreSQL, typical server target, default set "
            "(3 databases)",
            40,
            "",
            True,
        ),
        (
            "EMF custom metrics of one PostgreSQL, many databases target, default set "
            "(6 databases)",
            40,
            "",
            True,
        ),
    ]
    text = "\n".join(made.markdown("14"))
    assert "```mermaid" in text and "bench/prices.json" in text


def test_tiers() -> None:
    tiers: list[list[float | None]] = [
        [10_000, 0.30],
        [240_000, 0.10],
        [750_000, 0.05],
        [None, 0.02],
    ]
    assert tiered(100, tiers) == pytest.approx(30.0)
    assert tiered(20_000, tiers) == pytest.approx(3_000 + 1_000)
    assert tiered(2_000_000, tiers) == pytest.approx(3_000 + 24_000 + 37_500 + 20_000)
    amp: list[list[float | None]] = [[2e9, 0.90], [250e9, 0.35], [None, 0.16]]
    assert tiered(3e9, amp, per=10_000_000) == pytest.approx(180 + 35)


def test_costs_of_known_figures() -> None:
    kind = {
        "series_per_target": 100,
        "emf_custom_metrics_per_target": 20,
        "emf_custom_metrics_per_target_all": 60,
        "emf_log_bytes_per_target": 0,
        "getmetricdata_metrics_per_target": 5,
        "collector_series_per_pass": 8,
        "collector_emf_custom_metrics": 8,
        "warm_invocation_s_one": 0.1,
        "slope_s_per_target": 0.01,
    }
    month = costs({"pg_typical": kind}, 1024, prices())["pg_typical"]
    hundred = month["100"]
    assert hundred["series_per_pass"] == 10_008
    assert hundred["amp_samples"] == 10_008 * MINUTES_PER_MONTH
    assert hundred["emf_custom_metrics"] == 2_008
    assert hundred["emf_usd"] == pytest.approx(2_008 * 0.30)
    assert hundred["getmetricdata_usd"] == pytest.approx(100 * 5 * MINUTES_PER_MONTH * 0.01 / 1000)
    # 0.1 s + 99 x 0.01 s at 1 GB, every minute, and the requests.
    assert hundred["invocation_s"] == pytest.approx(1.09)
    assert hundred["lambda_usd"] == pytest.approx(
        round(MINUTES_PER_MONTH * 1.09 * 0.0000166667 + MINUTES_PER_MONTH * 0.2e-6, 2)
    )
