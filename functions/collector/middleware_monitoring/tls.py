"""Finding the CA bundle that verifies RDS, Aurora and DocumentDB certificates."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

# Next to the function code, then where Lambda unpacks layers (the CA-bundle layer).
DEFAULT_SEARCH_DIRS: tuple[Path, ...] = (Path(__file__).resolve().parent.parent, Path("/opt"))


def resolve_ca_file(name: str, search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS) -> Path:
    """An absolute path as it is; a relative one looked up in ``search_dirs`` in order."""
    path = Path(name)
    if path.is_absolute():
        if path.is_file():
            return path
        raise FileNotFoundError(f"CA file {name} does not exist")
    for directory in search_dirs:
        candidate = directory / path
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"CA file {name} not found in " + ", ".join(str(directory) for directory in search_dirs)
    )


def verifying_context(ca_file: Path, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = check_hostname
    return context
