from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration talks to real servers: `-m "not integration"`
    # gives a quick unit-only run without remembering to mark each test.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
