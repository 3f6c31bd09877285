"""The connection to one node and what its failures mean (valkey-py, RESP2).

On connect the client sends AUTH when a password is set and nothing else: no HELLO (RESP2),
no CLIENT SETNAME, no CLIENT SETINFO (ElastiCache RBAC users rarely have CLIENT, and Redis
7.0 does not know SETINFO), no SELECT, no health-check PING. Retries are off: a pass retries
by running again next minute.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from valkey.connection import Connection, SSLConnection
from valkey.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    NoPermissionError,
    ResponseError,
    ValkeyError,
)
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import TimeoutError as ValkeyTimeoutError

from ..config.elasticache import RedisSettings
from ..model import SourceFailure
from ..tls import DEFAULT_SEARCH_DIRS, resolve_ca_file

INFO_HINT: Final = (
    " (the user needs the INFO command: an ElastiCache access string like"
    " 'on -@all +info +ping +slowlog')"
)
RENAMED_HINT: Final = " (INFO is renamed or disabled on this node)"
NOAUTH_HINT: Final = " (the node requires a password: its AUTH token, or an RBAC user's)"


def connect(
    settings: RedisSettings,
    user: str | None,
    password: str | None,
    search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS,
) -> Connection:
    """A connection object; the socket opens (and AUTH runs) on the first command.

    Raises ``SourceFailure("tls", ...)`` when the CA file cannot be found."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "username": user,
        "password": password,
        "socket_connect_timeout": settings.connect_timeout_seconds,
        "socket_timeout": settings.read_timeout_seconds,
        "decode_responses": True,
        "lib_name": None,
        "lib_version": None,
        "protocol": 2,
    }
    if not settings.tls:
        return Connection(**options)
    ca_file = None
    if settings.tls_ca_file is not None:
        try:
            ca_file = str(resolve_ca_file(settings.tls_ca_file, search_dirs))
        except FileNotFoundError as exc:
            raise SourceFailure("tls", f"{settings.where}: {exc}") from None
    return SSLConnection(
        **options,
        ssl_cert_reqs="required",
        ssl_ca_certs=ca_file,
        ssl_check_hostname=True,
    )


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


def classify(exc: BaseException, where: str) -> SourceFailure:
    """A valkey-py error as a reason token and a sentence naming the node. The library's
    messages hold the address and the server's error text, never the password."""
    if isinstance(exc, SourceFailure):
        return exc
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        hint = NOAUTH_HINT if "authentication required" in str(exc).lower() else ""
        return SourceFailure("auth_failed", f"{where}: login refused: {exc}{hint}")
    if isinstance(exc, NoPermissionError):
        return SourceFailure("command_failed", f"{where}: INFO refused: {exc}{INFO_HINT}")
    if isinstance(exc, BusyLoadingError):
        return SourceFailure("command_failed", f"{where}: the node is loading its data: {exc}")
    if isinstance(exc, ResponseError):
        hint = RENAMED_HINT if str(exc).startswith("unknown command") else ""
        return SourceFailure("command_failed", f"{where}: INFO failed: {str(exc).strip()}{hint}")
    if isinstance(exc, ValkeyTimeoutError):
        return SourceFailure("timeout", f"{where}: no answer in time: {exc}")
    if isinstance(exc, ValkeyConnectionError):
        tls_error = _tls_cause(exc)
        if tls_error is not None:
            return SourceFailure("tls", f"{where}: TLS failed: {tls_error}")
        return SourceFailure("unreachable", f"{where}: {exc}")
    if isinstance(exc, ValkeyError):
        return SourceFailure("command_failed", f"{where}: {type(exc).__name__}: {exc}")
    return SourceFailure("error", f"{where}: {type(exc).__name__}: {exc}")
