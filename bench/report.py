"""bench/RESULTS.md as it is assembled: the headline table (one row per figure, with the
command that produced it), then one part per section. Every number in it is passed in by the
run that measured it; the text here is the frame around those numbers.

A module section (``bench/<subject>.py`` with ``measure(quick) -> dict``) is rendered by
``module_part``: one table row per figure of its dict, nested dicts and lists flattened into
dotted names (``setup.servers``, ``cost[0].monthly_usd``); a top-level ``"command"`` string is
the command of every row, and a figure given as ``{"value": v, "command": c}`` (optionally
``"unit"``) brings its own.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    number: str
    what: str
    product: str
    comparison: str
    ratio: str
    command: str


@dataclass
class Part:
    """One section of the report: its heading, its figures for the headline table, its body."""

    number: str
    title: str
    lines: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + "---|" * len(header))
        for row in rows:
            self.lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
        self.lines.append("")


@dataclass
class Report:
    header: list[str]
    parts: list[Part] = field(default_factory=list)

    def render(self) -> str:
        lines = list(self.header)
        figures = [f for part in self.parts for f in part.figures]
        if figures:
            lines += [
                "| # | Figure | Product | Comparison | Ratio | Command |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {f.number} | {f.what} | {f.product} | {f.comparison} | {f.ratio} | "
                f"`{f.command}` |"
                for f in figures
            ]
            lines.append("")
        for part in self.parts:
            lines.append(f"## {part.number}. {part.title}")
            lines.append("")
            lines.extend(part.lines)
            if part.lines and part.lines[-1] != "":
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"


# --- numbers as text ---------------------------------------------------------------------------


def ms(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def times(value: float) -> str:
    return f"{value:.1f}x" if value < 100 else f"{value:,.0f}x"


def median_ratio(values: Sequence[float]) -> str:
    return times(statistics.median(values)) if values else "n/a"


def usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def warm(durations: Sequence[float]) -> float:
    """Median of the passes after the first (the first pays connects and imports)."""
    rest = list(durations[1:]) or list(durations)
    return statistics.median(rest)


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 run``, ``5 runs``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def goal(met: bool) -> str:
    return "met" if met else "NOT met"


# --- module sections ---------------------------------------------------------------------------


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return _number(value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return value.replace("|", "\\|").replace("\n", " ")
    return json.dumps(value, default=str).replace("|", "\\|")


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, leaf) for every leaf of nested dicts and lists."""
    if isinstance(value, Mapping) and not ("value" in value and set(value) <= FIGURE_KEYS):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list | tuple) and any(isinstance(v, Mapping | list) for v in value):
        for i, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{i}]")
    else:
        yield prefix, value


FIGURE_KEYS = frozenset({"value", "command", "unit"})


def module_rows(figures: Mapping[str, Any], default_command: str) -> list[tuple[str, str, str]]:
    """(figure, value, command) rows of a module's ``measure()`` answer."""
    command = figures.get("command")
    command = command if isinstance(command, str) else default_command
    rows: list[tuple[str, str, str]] = []
    for name, leaf in flatten({k: v for k, v in figures.items() if k != "command"}):
        if isinstance(leaf, Mapping):
            unit = f" {leaf['unit']}" if leaf.get("unit") else ""
            rows.append((name, _text(leaf["value"]) + unit, str(leaf.get("command", command))))
        elif isinstance(leaf, list | tuple):
            rows.append((name, ", ".join(_text(v) for v in leaf), command))
        else:
            rows.append((name, _text(leaf), command))
    return rows


def module_part(
    number: str,
    title: str,
    module: str,
    figures: Mapping[str, Any] | None,
    seconds: float,
    quick: bool = False,
) -> Part:
    part = Part(number, title, seconds=seconds)
    if figures is None:
        part.add(f"Not run: `{module.replace('.', '/')}.py` is not on this branch.")
        return part
    default_command = f".venv/bin/python -c 'import {module}; print({module}.measure({quick}))'"
    part.add(
        f"Figures returned by `{module}.measure()` in this run ({ms(seconds)}), as returned:",
        "",
    )
    part.table(
        ("figure", "value", "command"),
        (
            (name, value, f"`{command}`")
            for name, value, command in module_rows(figures, default_command)
        ),
    )
    return part
