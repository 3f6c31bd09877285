"""A module section in the question / table / goal form (bench/section.py), for the bench
smoke test: raw figures from ``measure``, the section made from them by ``section``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.section import Goal, Section, Table

COMMAND = "python -m tests.integration.bench_fake_question"


def measure(quick: bool) -> dict[str, Any]:
    return {"pushes": {"25": {"push_s": 0.229}, "200": {"push_s": 11.53}}, "quick": quick}


def section(figures: Mapping[str, Any]) -> Section:
    pushes = figures["pushes"]
    return Section(
        question="How long does a push of N targets take on a default Pushgateway?",
        method="Each size pushed three times; the median of the replacing pushes.",
        command=COMMAND,
        table=Table(
            ("scenario", "push (s)"),
            [(f"{n} targets, default Pushgateway", row["push_s"]) for n, row in pushes.items()],
        ),
        goals=[Goal("push of 200 targets", pushes["200"]["push_s"], 5.0, "s")],
    )
