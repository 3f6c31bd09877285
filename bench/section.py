"""A section of bench/RESULTS.md as a reader needs it: the question it answers (its heading),
one small table of named scenarios with units, the goal it is measured against, and one line
saying whether the goal was met and by how much.

A bench module (``bench/<subject>.py``) declares its section with two functions:

    def measure(quick: bool) -> dict[str, Any]:      # raw figures, JSON, stable keys
    def section(figures: Mapping[str, Any]) -> Section:   # the section, from those figures only

``measure`` runs in `make bench`; its dict is stored as it is under the module's key in
bench/results.json. ``section`` is called by the renderer (bench/render.py) with that stored
dict, on every render, so RESULTS.md can be re-rendered from results.json without measuring.
It must use nothing but ``figures`` (no clock, no files, no servers). How to write one:
docs/benchmark.md, "Writing a section".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# Units a goal may be stated in, with how a value of that unit is written.
UNITS = ("ms", "s", "MB", "$", "%", "x", "calls", "series", "µs", "")


def number(value: float, digits: int = 3) -> str:
    """``1,836``, ``25.8``, ``0.85``, ``5``: thousands separated, ``digits`` significant at
    most."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(magnitude))
    text = f"{value:,.{max(decimals, 0)}f}"
    # 5.00 -> 5, 0.80 -> 0.8: trailing zeros say nothing the digits before them do not.
    return text.rstrip("0").rstrip(".") if "." in text else text


def quantity(value: float, unit: str) -> str:
    """A value with its unit: ``$424.14``, ``1,836 ms``, ``11.5 s``, ``83 MB``, ``5.0x``."""
    if unit == "$":
        return f"${value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"${value:.4f}"
    if unit == "%":
        return f"{number(value)}%"
    if unit == "x":
        return f"{number(value, 2)}x"
    return f"{number(value)} {unit}".rstrip()


@dataclass(frozen=True)
class Goal:
    """One goal of the benchmark: ``measured`` against ``limit``, both in ``unit``.

    ``at_most=True`` (a time, a size, a cost): met when measured <= limit; ``False`` (a
    speed-up, a count that must be reached): met when measured >= limit.
    """

    what: str
    measured: float
    limit: float
    unit: str
    at_most: bool = True

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"Goal {self.what!r}: unit {self.unit!r} is not one of {UNITS}")

    @property
    def met(self) -> bool:
        return self.measured <= self.limit if self.at_most else self.measured >= self.limit

    def target(self) -> str:
        """``at most 2,000 ms`` / ``at least 5.0x``."""
        return f"{'at most' if self.at_most else 'at least'} {quantity(self.limit, self.unit)}"

    def margin(self) -> str:
        """``164 ms (8.2%) under`` / ``6.53 s (131%) over``."""
        gap = abs(self.measured - self.limit)
        if gap == 0:
            return "exactly at the limit"
        side = (
            ("under" if self.measured < self.limit else "over")
            if self.at_most
            else ("above" if self.measured > self.limit else "short")
        )
        share = f" ({number(100 * gap / abs(self.limit), 2)}%)" if self.limit else ""
        return f"{quantity(gap, self.unit)}{share} {side}"

    def status(self) -> str:
        return "met" if self.met else "NOT met"

    def verdict(self) -> str:
        """The one line under a section: ``Met: 1,836 ms against at most 2,000 ms, 164 ms (8.2%)
        under.``"""
        head = "Met" if self.met else "NOT met"
        return (
            f"{head}: {quantity(self.measured, self.unit)} against {self.target()}, "
            f"{self.margin()}."
        )


@dataclass(frozen=True)
class Table:
    """One small table. The first column names the scenario (``200 groups, default
    Pushgateway``, not ``pushes[3]``); every other column's header carries its unit
    (``push (s)``); cells are numbers (written by ``number``) or short text."""

    columns: Sequence[str]
    rows: Sequence[Sequence[object]]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"table row {row!r} has {len(row)} cells, expected {self.columns}")

    def markdown(self) -> list[str]:
        def cell(value: object) -> str:
            if isinstance(value, bool):
                return "yes" if value else "no"
            if isinstance(value, int | float):
                return number(value)
            if value is None:
                return "n/a"
            return str(value).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return lines


@dataclass(frozen=True)
class Chart:
    """A PNG made by the run (bench/charts.py), shown under the table. ``path`` is relative
    to bench/ (where RESULTS.md is)."""

    path: str
    alt: str


@dataclass(frozen=True)
class Section:
    """What RESULTS.md shows for one section, made from its stored figures only.

    ``question`` is the heading: a question a user asks (``How long does a push of N targets
    take on a default Pushgateway?``). ``method`` says in a sentence or two what ran and how
    it was counted; ``command`` reproduces it. ``goals`` is what the section is measured
    against (the verdict lines and the summary table come from them); a section with no goal
    says why in ``no_goal``. ``notes`` are short findings that the table cannot say.
    """

    question: str
    table: Table
    method: str
    command: str
    goals: Sequence[Goal] = ()
    no_goal: str = ""
    notes: Sequence[str] = ()
    charts: Sequence[Chart] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.question.rstrip().endswith("?"):
            raise ValueError(f"section heading {self.question!r} is not a question")
        if not self.goals and not self.no_goal:
            raise ValueError(f"section {self.question!r}: give goals, or say why in no_goal")

    def markdown(self, number: str) -> list[str]:
        lines = [f"## {number}. {self.question}", "", self.method, ""]
        lines += self.table.markdown()
        lines.append("")
        for chart in self.charts:
            lines += [f"![{chart.alt}]({chart.path})", ""]
        if self.goals:
            for goal in self.goals:
                lines.append(f"- **Goal:** {goal.what}, {goal.target()}. **{goal.verdict()}**")
        else:
            lines.append(f"- **Goal:** none. {self.no_goal}")
        lines += [f"- {note}" for note in self.notes]
        lines += ["", f"Command: `{self.command}`", ""]
        return lines
