"""What the product's own HTTP calls (Pushgateway pushes, reads and deletes; remote write)
share: the Basic authorization header, and how a refused or failed call is described."""

from __future__ import annotations

import base64
from typing import Final
from urllib.error import HTTPError, URLError

# Enough of an error answer for what the server refused; a whole HTML page would drown it.
ERROR_BODY_LIMIT: Final = 500


def basic_authorization(username: str, password: str | None) -> str:
    token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
    return f"Basic {token}"


def http_status(exc: HTTPError) -> str:
    """``HTTP 400 Bad Request: <what the body says>``: a Pushgateway or a remote-write
    receiver says there what it refused (a type clash, an out-of-order sample); without it a
    400 gives the user nothing to act on."""
    try:
        body = " ".join(exc.read(ERROR_BODY_LIMIT).decode(errors="replace").split())
    except Exception:
        body = ""
    return f"HTTP {exc.code} {exc.reason}" + (f": {body}" if body else "")


def describe_pushgateway_failure(exc: BaseException) -> str:
    if isinstance(exc, HTTPError):
        return http_status(exc)
    if isinstance(exc, URLError):
        return f"cannot reach the Pushgateway: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
