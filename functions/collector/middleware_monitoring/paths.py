"""Files shipped with the function or in a layer: CA bundles, targets files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Next to the function code, then where Lambda unpacks layers (the CA-bundle layer).
DEFAULT_SEARCH_DIRS: tuple[Path, ...] = (Path(__file__).resolve().parent.parent, Path("/opt"))


def find_file(name: str, search_dirs: Sequence[Path], what: str) -> Path:
    """An absolute path as it is; a relative one looked up in ``search_dirs`` in order.
    ``FileNotFoundError`` names ``what`` and where it was looked for."""
    path = Path(name)
    if path.is_absolute():
        if path.is_file():
            return path
        raise FileNotFoundError(f"{what} {name} does not exist")
    for directory in search_dirs:
        candidate = directory / path
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{what} {name} not found in " + ", ".join(str(directory) for directory in search_dirs),
    )
