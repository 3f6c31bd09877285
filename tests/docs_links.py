"""The documentation stands on its own (SPEC 14): in docs/ and the README every reference to
another page of the repository is a link that resolves inside it, and no text names a file
outside the repository or a work item.

``.venv/bin/python -m tests.docs_links --fix`` turns plain mentions (``docs/fleet.md``,
`` `bench/RESULTS.md` ``) into links."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]*)\)")
# A page name as written in prose: docs/fleet.md, ../bench/RESULTS.md, `fleet.md`.
MENTION = re.compile(r"`?(?<![\w/.\[(-])((?:\.\./)?(?:[\w-]+/)*[\w-]+\.md)\b`?(?!\]|\))")
WORK_ITEM = re.compile(r"\b(?:issue|ticket|work item)s?\s*#?\d+", re.IGNORECASE)
OUTSIDE = re.compile(r"(?:/work/|/home/|/root/|~/|\bSPEC\.md\b|\bTOOLCHAIN\.md\b|\bCOMMON\.md\b)")


def pages() -> list[Path]:
    return [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def _target(page: Path, mention: str) -> Path | None:
    """The repository file a mention names: from the page's folder, else from the root, else
    the one file of that name."""
    for base in (page.parent, ROOT):
        candidate = (base / mention).resolve()
        if candidate.is_file() and ROOT in candidate.parents:
            return candidate
    found = [p for p in ROOT.rglob(Path(mention).name) if ".venv" not in p.parts]
    return found[0] if len(found) == 1 else None


def _prose_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the text outside fenced code blocks."""
    spans: list[tuple[int, int]] = []
    position, inside = 0, False
    for match in re.finditer(r"^```.*$", text, re.M):
        if not inside:
            spans.append((position, match.start()))
        inside = not inside
        position = match.end()
    if not inside:
        spans.append((position, len(text)))
    return spans


def _mentions(text: str) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    for start, end in _prose_spans(text):
        prose = text[start:end]
        links = [(m.start(), m.end()) for m in LINK.finditer(prose)]
        for match in MENTION.finditer(prose):
            if any(a <= match.start() < b for a, b in links):
                continue
            found.append((start + match.start(), start + match.end(), match.group(1)))
    return found


def problems() -> list[str]:
    out: list[str] = []
    for page in pages():
        text = page.read_text()
        name = page.relative_to(ROOT)
        for start, _, mention in _mentions(text):
            # A file name in code (`report.md`) that is no page of the repository is an
            # example, not a reference.
            if text[start] == "`" and _target(page, mention) is None:
                continue
            line = text.count("\n", 0, start) + 1
            out.append(f"{name}:{line}: {mention} is named but not linked")
        for start, end in _prose_spans(text):
            for match in LINK.finditer(text[start:end]):
                href = match.group(1).split("#", 1)[0]
                if not href or re.match(r"[a-z]+:", href):
                    continue
                target = (page.parent / href).resolve()
                line = text.count("\n", 0, start + match.start()) + 1
                if ROOT not in target.parents or not target.exists():
                    out.append(f"{name}:{line}: link {href} is not a file of the repository")
        for pattern, what in ((WORK_ITEM, "a work item"), (OUTSIDE, "a file outside")):
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                out.append(f"{name}:{line}: {match.group(0)!r} names {what}")
    return out


def fix() -> None:
    for page in pages():
        text = page.read_text()
        for start, end, mention in reversed(_mentions(text)):
            target = _target(page, mention)
            if target is None:
                continue
            href = Path(os.path.relpath(target, page.parent)).as_posix()
            shown = mention if "/" in mention else target.name
            text = text[:start] + f"[{shown}]({href})" + text[end:]
        page.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] == ["--fix"]:
        fix()
    for problem in problems():
        print(problem)
