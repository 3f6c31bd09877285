"""Connection string, client options and failure reasons for one DocumentDB target."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote_plus, urlencode

from pymongo import MongoClient
from pymongo.errors import (
    AutoReconnect,
    ConfigurationError,
    ConnectionFailure,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from ..config import DocDBSettings
from ..model import SourceFailure
from ..tls import DEFAULT_SEARCH_DIRS, resolve_ca_file

APP_NAME: Final = "middleware-monitoring"

# Short on purpose: a pass runs every minute inside a Lambda time budget, and an unreachable
# cluster must cost seconds, not pymongo's 30 s default. A user's own values in ``parameter``
# win (they are passed through like every other option).
DEFAULT_TIMEOUTS_MS: Final = {
    "serverSelectionTimeoutMS": 5000,
    "connectTimeoutMS": 5000,
    "socketTimeoutMS": 10000,
}

# MongoDB error codes meaning "the login was refused" (AuthenticationFailed, UserNotFound).
_AUTH_CODES: Final = frozenset({18, 11})
_UNAUTHORIZED: Final = 13


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def connection_uri(
    settings: DocDBSettings, search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS
) -> str:
    """``mongodb://user:pwd@host:port/?parameters``, user and password URL-escaped, a relative
    tlsCAFile replaced by the file found in ``search_dirs``. Holds the password: never log it.

    Raises ``SourceFailure("tls", ...)`` when the CA file cannot be found."""
    userinfo = ""
    if settings.user is not None:
        userinfo = f"{quote_plus(settings.user)}:{quote_plus(settings.password or '')}@"
    options: list[tuple[str, str]] = []
    for key, value in settings.parameters:
        if key.lower() == "tlscafile":
            try:
                value = str(resolve_ca_file(value, search_dirs))
            except FileNotFoundError as exc:
                raise SourceFailure("tls", str(exc)) from None
        options.append((key, value))
    query = urlencode(options, quote_via=quote_plus)
    return f"mongodb://{userinfo}{_host(settings.address)}:{settings.port}/" + (
        f"?{query}" if query else ""
    )


def client_options(settings: DocDBSettings) -> dict[str, Any]:
    """Keyword options for MongoClient; they override the URI, so only what the user left out."""
    given = {key.lower() for key, _ in settings.parameters}
    options: dict[str, Any] = {
        key: value for key, value in DEFAULT_TIMEOUTS_MS.items() if key.lower() not in given
    }
    if "appname" not in given:
        options["appname"] = APP_NAME
    # One command per pass: the pool need not grow beyond one connection.
    if "maxpoolsize" not in given:
        options["maxPoolSize"] = 1
    # Connect on the first pass, inside its deadline, not when the function instance starts.
    options["connect"] = False
    return options


def new_client(
    settings: DocDBSettings, search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS
) -> MongoClient[dict[str, Any]]:
    try:
        return MongoClient(connection_uri(settings, search_dirs), **client_options(settings))
    except ConfigurationError as exc:
        raise SourceFailure("config", f"pymongo refused the connection settings: {exc}") from None


def _server_errors(client: MongoClient[dict[str, Any]] | None) -> list[str]:
    if client is None:
        return []
    return [
        str(server.error)
        for server in client.topology_description.server_descriptions().values()
        if server.error is not None
    ]


def _looks_like_tls(message: str) -> bool:
    return any(mark in message for mark in ("SSL", "CERTIFICATE", "certificate"))


def classify(
    exc: BaseException, client: MongoClient[dict[str, Any]] | None = None
) -> SourceFailure:
    """A pymongo error as a reason token (unreachable, tls, auth_failed, command_failed,
    timeout) and a sentence. pymongo never puts the password in its messages; the log's
    scrubber guards that anyway."""
    if isinstance(exc, SourceFailure):
        return exc
    if isinstance(exc, OperationFailure):
        code = exc.code
        message = (exc.details or {}).get("errmsg") or str(exc)
        if code in _AUTH_CODES or "Authentication failed" in message:
            return SourceFailure("auth_failed", f"authentication failed: {message} (code {code})")
        hint = ""
        if code == _UNAUTHORIZED:
            hint = "; the login needs the clusterMonitor role (or serverStatus granted)"
        return SourceFailure(
            "command_failed", f"serverStatus failed: {message} (code {code}){hint}"
        )
    if isinstance(exc, ServerSelectionTimeoutError):
        errors = _server_errors(client) or [str(exc).split(", Timeout:")[0]]
        detail = "; ".join(errors)
        if any(_looks_like_tls(error) for error in errors):
            return SourceFailure("tls", f"TLS failed: {detail}")
        return SourceFailure("unreachable", f"no usable server: {detail}")
    if isinstance(exc, NetworkTimeout):
        return SourceFailure("timeout", f"the server did not answer in time: {exc}")
    if isinstance(exc, (AutoReconnect, ConnectionFailure)):
        if _looks_like_tls(str(exc)):
            return SourceFailure("tls", f"TLS failed: {exc}")
        return SourceFailure("unreachable", f"connection lost: {exc}")
    if isinstance(exc, ConfigurationError):
        return SourceFailure("config", f"pymongo refused the connection settings: {exc}")
    if isinstance(exc, PyMongoError):
        return SourceFailure("command_failed", f"{type(exc).__name__}: {exc}")
    return SourceFailure("error", f"{type(exc).__name__}: {exc}")
