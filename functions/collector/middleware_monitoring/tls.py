"""Finding the CA bundle that verifies RDS, Aurora and DocumentDB certificates."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from .paths import DEFAULT_SEARCH_DIRS, find_file

__all__ = ["DEFAULT_SEARCH_DIRS", "resolve_ca_file", "verifying_context"]


def resolve_ca_file(name: str, search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS) -> Path:
    """An absolute path as it is; a relative one looked up in ``search_dirs`` in order."""
    return find_file(name, search_dirs, "CA file")


def verifying_context(ca_file: Path, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = check_hostname
    return context
