"""A pg8000 connection kept across warm invocations, with timeouts and failure reasons."""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import pg8000.native
from pg8000.exceptions import DatabaseError, InterfaceError

from ..config import PostgresSettings
from ..model import SourceFailure
from ..tls import DEFAULT_SEARCH_DIRS, resolve_ca_file, unverified_context, verifying_context
from .statements import MARKER

APPLICATION_NAME = "middleware-monitoring"
# Marked like every other statement of the collector, so it stays out of the top N and QPS
# (the marker is part of the queryid: applications' pools run SELECT 1 all the time).
ALIVE_SQL = f"{MARKER} SELECT 1"

# Statement texts whose parameter conversion is kept (the collector's own are a dozen or
# so a target; custom queries add theirs).
STATEMENTS_KEPT: Final = 256


@functools.lru_cache(maxsize=STATEMENTS_KEPT)
def native_statement(sql: str) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    """pg8000.native's conversion of a statement's ``:name`` parameters to ``$n``, made once
    per statement text: pg8000 walks the text a character at a time in Python on every run
    (0.3 ms for the top-N statement), and a warm pass runs the same statements again."""
    statement, make_vals = pg8000.native.to_statement(sql)
    return statement, make_vals


class NativeConnection(pg8000.native.Connection):
    """pg8000.native's connection, its statements' parameter conversion made once
    (``native_statement``); the same statement, values and answer otherwise."""

    def run(
        self, sql: str, stream: Any = None, types: Any = None, **params: Any
    ) -> list[list[Any]] | None:
        if not params or stream is not None or types is not None:
            rows: list[list[Any]] | None = super().run(sql, stream=stream, types=types, **params)
            return rows
        statement, make_vals = native_statement(sql)
        self._context = self.execute_unnamed(statement, make_vals(params), oids=())
        answer: list[list[Any]] | None = self._context.rows
        return answer


# SQLSTATEs that name a reason worth a label of its own.
_AUTH_STATES = {"28P01", "28000"}
_CANCELED_STATES = {"57014"}  # statement_timeout (and other cancels)
_LOCK_STATES = {"55P03"}  # lock_timeout
# Class 55 states that pass by themselves: never a reason to stop running a statement.
_TRANSIENT_STATES = frozenset({"55P03", "55006"})  # lock_not_available, object_in_use


def _sqlstate(exc: DatabaseError) -> str:
    info = exc.args[0] if exc.args else None
    return str(info.get("C", "")) if isinstance(info, dict) else ""


def _server_message(exc: DatabaseError) -> str:
    info = exc.args[0] if exc.args else None
    return str(info.get("M", exc)) if isinstance(info, dict) else str(exc)


class QueryFailure(SourceFailure):
    """The server refused one statement (the connection is still good); ``sqlstate`` says why,
    e.g. 42501 a missing privilege, 42P01 a relation this server does not have."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__("query_failed", f"SQLSTATE {sqlstate}: {message}")
        self.sqlstate = sqlstate

    @property
    def unsupported(self) -> bool:
        """The server or the login lacks what the statement needs, which will not change by
        itself: SQLSTATE class 42 (undefined table, column or function; insufficient
        privilege), 0A (feature not supported: Aurora's answer to several functions), 55
        (object not in the required state) except its transient members: 55P03
        lock_not_available (the collector's own lock_timeout, a catalog locked for a moment)
        and 55006 object_in_use. Those fail the pass, and the next pass tries again."""
        if self.sqlstate in _TRANSIENT_STATES:
            return False
        return self.sqlstate.startswith(("42", "0A", "55"))


def classify(exc: BaseException) -> SourceFailure:
    """Turn a pg8000/socket/TLS error into a reason token and a sentence without secrets."""
    if isinstance(exc, SourceFailure):
        return exc
    if isinstance(exc, DatabaseError):
        state = _sqlstate(exc)
        message = _server_message(exc)
        if state in _AUTH_STATES:
            return SourceFailure("auth_failed", f"authentication failed: {message}")
        if state in _CANCELED_STATES or state in _LOCK_STATES:
            return SourceFailure("statement_timeout", f"statement cancelled: {message}")
        return QueryFailure(state, message)
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 5:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in chain:
        if isinstance(error, ssl.SSLError):
            return SourceFailure("tls", f"TLS failed: {error}")
        if isinstance(error, (TimeoutError, socket.timeout)):
            return SourceFailure("timeout", "the server did not answer in time")
        if isinstance(error, ConnectionRefusedError):
            return SourceFailure("unreachable", "connection refused")
        if isinstance(error, socket.gaierror):
            return SourceFailure("unreachable", f"cannot resolve the host name: {error}")
    if isinstance(exc, InterfaceError):
        if "refuses SSL" in str(exc):
            return SourceFailure("tls", "the server refuses TLS (PG_SSLMODE asks for it)")
        return SourceFailure("unreachable", f"connection lost: {exc}")
    if isinstance(exc, OSError):
        return SourceFailure("unreachable", f"{type(exc).__name__}: {exc}")
    return SourceFailure("error", f"{type(exc).__name__}: {exc}")


def ssl_context_for(
    settings: PostgresSettings, search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS
) -> ssl.SSLContext | None:
    """The TLS context of libpq's sslmode, None for plain (disable): unverified for prefer and
    require, verified for verify-ca and verify-full. The contexts are shared by every
    connect (tls.py); pg8000 made a new default one per connect for prefer and require,
    loading the system's CA certificates each time."""
    mode = settings.sslmode
    if mode == "disable":
        return None
    if mode in ("prefer", "require"):
        return unverified_context()
    if settings.sslrootcert is None:
        raise SourceFailure("tls", f"PG_SSLMODE={mode} needs PG_SSLROOTCERT (the CA bundle)")
    try:
        ca_file = resolve_ca_file(settings.sslrootcert, search_dirs)
    except FileNotFoundError as exc:
        raise SourceFailure("tls", str(exc)) from None
    return verifying_context(ca_file, check_hostname=mode == "verify-full")


# PostgreSQL's SSLRequest: length 8, code 80877103.
_SSL_REQUEST: Final = struct.pack("!ii", 8, 80877103)


def open_socket(
    host: str, port: int, timeout: float, context: ssl.SSLContext | None, required: bool
) -> socket.socket:
    """The connection pg8000 is then given, TLS negotiated as pg8000 does it but with a
    shared context: the server's ``S`` wraps the socket; anything else goes on in plain for
    ``prefer`` (the next read fails if the server went away) and is refused otherwise."""
    try:
        sock = socket.create_connection((host, port), timeout)
    except OSError as exc:
        # pg8000's own wording, which classify() reads.
        raise InterfaceError(
            f"Can't create a connection to host {host} and port {port} "
            f"(timeout is {timeout} and source_address is None)."
        ) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if context is None:
            return sock
        sock.sendall(_SSL_REQUEST)
        if sock.recv(1) == b"S":
            return context.wrap_socket(sock, server_hostname=host)
        if required:
            raise InterfaceError("Server refuses SSL")
        return sock
    except BaseException:
        sock.close()
        raise


@dataclass(frozen=True)
class PgLogin:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str


# ``refresh=True``: the last login was refused, read it again past any cache.
LoginProvider = Callable[[bool], PgLogin]


class PgConnection:
    """Owns one connection; opens it lazily and drops it after any connection-level error
    so the next use re-opens it (a server restart between passes must not stick)."""

    def __init__(
        self,
        settings: PostgresSettings,
        *,
        login: LoginProvider | None = None,
        ca_search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS,
    ) -> None:
        self._settings = settings
        self._ca_search_dirs = ca_search_dirs
        if login is None:
            fixed = PgLogin(
                settings.host,
                settings.port,
                settings.user,
                settings.password,
                settings.database,
            )

            def fixed_login(refresh: bool) -> PgLogin:
                return fixed

            login = fixed_login
        self._login = login
        self._connection: pg8000.native.Connection | None = None
        self._opened = 0

    def _open(self) -> pg8000.native.Connection:
        """The login is looked up at every connect (a rotated secret is picked up then); a
        refused login is looked up once more, bypassing caches, before giving up."""
        login = self._login(False)
        try:
            return self._connect(login)
        except SourceFailure as failure:
            if failure.reason != "auth_failed":
                raise
            fresh = self._login(True)
            if fresh == login:
                raise
            return self._connect(fresh)

    def _connect(self, login: PgLogin) -> pg8000.native.Connection:
        settings = self._settings
        # Socket timeout: bounds connect and every read, a backstop for statement_timeout.
        timeout = settings.connect_timeout_seconds + settings.statement_timeout_ms / 1000
        try:
            sock = open_socket(
                login.host,
                login.port,
                timeout,
                ssl_context_for(settings, self._ca_search_dirs),
                required=settings.sslmode != "prefer",
            )
        except SourceFailure:
            raise
        except Exception as exc:
            raise classify(exc) from None
        try:
            return NativeConnection(
                user=login.user,
                password=login.password or None,
                host=login.host,
                port=login.port,
                database=login.database,
                sock=sock,
                ssl_context=False,
                timeout=timeout,
                application_name=APPLICATION_NAME,
                startup_params={
                    "statement_timeout": str(settings.statement_timeout_ms),
                    "lock_timeout": str(settings.statement_timeout_ms),
                },
            )
        except Exception as exc:
            sock.close()
            raise classify(exc) from None

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Run one statement; connection-level errors close the connection and raise."""
        if self._connection is None:
            self._connection = self._open()
            self._opened += 1
        try:
            rows = self._connection.run(sql, **params)
        except DatabaseError as exc:
            raise classify(exc) from None
        except Exception as exc:
            self.close()
            raise classify(exc) from None
        return list(rows) if rows is not None else []

    def for_database(self, database: str) -> PgConnection:
        """A connection like this one (same settings and login) to another database."""
        login = self._login

        def other(refresh: bool) -> PgLogin:
            return replace(login(refresh), database=database)

        return PgConnection(
            replace(self._settings, database=database),
            login=other,
            ca_search_dirs=self._ca_search_dirs,
        )

    def run_described(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """Run one statement of unknown shape: its column names and its rows."""
        rows = self.run(sql)
        connection = self._connection
        columns = connection.columns if connection is not None else None
        return [str(column["name"]) for column in columns or []], rows

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    @property
    def opened(self) -> int:
        """How many times a connection was opened: what was learnt about the server on one
        connection (its version, the login's privileges) may not hold on the next."""
        return self._opened

    def ensure_alive(self) -> None:
        """A trivial query (``ALIVE_SQL``); a kept connection that went stale (the server
        restarted, a failover) is re-opened once. One that timed out is not: the server is
        there but not answering, and a second attempt would only spend the pass's time
        waiting again."""
        if self._connection is not None:
            try:
                self._connection.run(ALIVE_SQL)
                return
            except Exception as exc:
                self.close()
                failure = classify(exc)
                if failure.reason == "timeout":
                    raise failure from None
        self.run(ALIVE_SQL)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Closing a broken socket may fail; the connection is being dropped anyway.
            with contextlib.suppress(Exception):
                connection.close()
