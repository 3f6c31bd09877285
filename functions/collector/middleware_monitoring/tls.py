"""Finding the CA bundle that verifies RDS, Aurora and DocumentDB certificates."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Sequence
from pathlib import Path

from .paths import DEFAULT_SEARCH_DIRS, find_file

__all__ = ["DEFAULT_SEARCH_DIRS", "resolve_ca_file", "unverified_context", "verifying_context"]

# Contexts are made once per process and shared by every connect (an SSLContext is safe to
# share between threads): a new one loads its CA certificates again, tens of milliseconds of
# CPU per connect, which pg8000 spent on every connect of a cold target.
_contexts: dict[tuple[str, bool, int], ssl.SSLContext] = {}
_unverified: list[ssl.SSLContext] = []
_lock = threading.Lock()


def resolve_ca_file(name: str, search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS) -> Path:
    """An absolute path as it is; a relative one looked up in ``search_dirs`` in order."""
    return find_file(name, search_dirs, "CA file")


def verifying_context(ca_file: Path, check_hostname: bool) -> ssl.SSLContext:
    """One context per CA file (as it is on disk now) and hostname check."""
    key = (str(ca_file), check_hostname, ca_file.stat().st_mtime_ns)
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=str(ca_file))
            context.check_hostname = check_hostname
            _contexts[key] = context
        return context


def unverified_context() -> ssl.SSLContext:
    """TLS without verification (libpq's ``prefer`` and ``require``), as pg8000 builds it for
    ``ssl_context=True``, once per process."""
    with _lock:
        if not _unverified:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            _unverified.append(context)
        return _unverified[0]
