"""bench/section.py: how a section states its goal and verdict (exact lines of the report)."""

from __future__ import annotations

import pytest

from bench.section import Goal, Section, Table, number, quantity


def test_numbers_keep_three_significant_digits_and_thousands() -> None:
    assert [number(v) for v in (1836.4, 25.83, 0.8512, 11.53, 0, 12345, 0.0004)] == [
        "1,836", "25.8", "0.851", "11.5", "0", "12,345", "0.0004"
    ]  # fmt: skip
    assert [quantity(424.138, "$"), quantity(2.5, "x"), quantity(83, "MB")] == [
        "$424.14", "2.5x", "83 MB"
    ]  # fmt: skip


def test_a_time_goal_met_says_by_how_much() -> None:
    goal = Goal("warm pass of 100 targets", 1836.0, 2000.0, "ms")
    assert goal.met
    assert goal.verdict() == "Met: 1,836 ms against at most 2,000 ms, 164 ms (8.2%) under."


def test_a_speedup_goal_missed_says_how_short() -> None:
    goal = Goal("cheaper than per minute", 4.2, 5.0, "x", at_most=False)
    assert not goal.met
    assert goal.status() == "NOT met"
    assert goal.verdict() == "NOT met: 4.2x against at least 5x, 0.8x (16%) short."


def test_goal_refuses_a_unit_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="unit 'msec' is not one of"):
        Goal("x", 1, 2, "msec")


def test_section_heading_must_be_a_question_and_have_a_goal() -> None:
    table = Table(("scenario", "push (s)"), [("200 targets", 11.5)])
    with pytest.raises(ValueError, match="is not a question"):
        Section("Push time", table, "m", "c", goals=[Goal("p", 1, 2, "s")])
    with pytest.raises(ValueError, match="give goals, or say why in no_goal"):
        Section("How long is a push?", table, "m", "c")


def test_table_rows_must_match_the_columns() -> None:
    with pytest.raises(ValueError, match="has 1 cells"):
        Table(("scenario", "push (s)"), [("200 targets",)])


def test_section_markdown() -> None:
    section = Section(
        "How long is a push?",
        Table(("scenario", "push (s)", "fits"), [("200 targets", 11.53, True)]),
        "Three pushes; the median.",
        "python -m bench.x",
        no_goal="It informs the choice of interval.",
        notes=["The check is the cost."],
    )
    assert section.markdown("13") == [
        "## 13. How long is a push?",
        "",
        "Three pushes; the median.",
        "",
        "| scenario | push (s) | fits |",
        "|---|---|---|",
        "| 200 targets | 11.5 | yes |",
        "",
        "- **Goal:** none. It informs the choice of interval.",
        "- The check is the cost.",
        "",
        "Command: `python -m bench.x`",
        "",
    ]
