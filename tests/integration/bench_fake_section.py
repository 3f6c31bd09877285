"""A module section for the bench smoke test (tests/integration/test_bench_smoke.py): what
another branch's ``bench/<subject>.py`` gives ``bench/run.py``, nested as theirs are."""

from __future__ import annotations

from typing import Any


def measure(quick: bool) -> dict[str, Any]:
    return {
        "command": "python -m tests.integration.bench_fake_section",
        "setup": {"servers": 2},
        "runs": [{"n": 1, "ms": 2.5}, {"n": 10, "ms": 12345.6}],
        "quick": quick,
        "given": {"value": 7, "unit": "ms", "command": "own command"},
    }
