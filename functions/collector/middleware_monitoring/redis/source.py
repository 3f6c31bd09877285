"""The ElastiCache engine source: one INFO per pass from one node (SPEC 13).

Plain ``INFO`` (the default sections: server, clients, memory, persistence, stats,
replication, CPU, errorstats, cluster, keyspace) is one round trip on every Redis OSS and
Valkey version; ``INFO a b`` needs 7.0 and ``INFO all`` adds per-command sections whose
series grow with the workload. Nothing else is sent: never CONFIG, LATENCY or SLOWLOG, which
ElastiCache refuses or restricts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from valkey.connection import Connection
from valkey.exceptions import ResponseError

from ..config.elasticache import RedisSettings
from ..model import SourceFailure
from ..tls import DEFAULT_SEARCH_DIRS
from . import info
from .client import classify, connect

# (user or None for the AUTH token alone, password); ``True`` reads past the secret's cache.
RedisLogin = Callable[[bool], tuple[str | None, str]]


class RedisSource:
    name = "redis"

    def __init__(
        self,
        settings: RedisSettings,
        *,
        login: RedisLogin | None = None,
        search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._login = login
        self._login_used: tuple[str | None, str] | None = None
        self._search_dirs = tuple(search_dirs)
        self._clock = clock
        # Kept while the function instance is warm; dropped when broken, reopened next pass.
        self._connection: Connection | None = None

    def down_families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(info.UP, info.UP_HELP, value=0)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.disconnect()

    def _connect(self, refresh: bool) -> Connection:
        user, password = self._settings.user, self._settings.password
        if self._login is not None:
            self._login_used = self._login(refresh)
            user, password = self._login_used
        return connect(self._settings, user, password, self._search_dirs)

    def _info_once(self) -> str:
        kept = self._connection is not None
        try:
            return self._ask()
        except SourceFailure as failure:
            if not (kept and failure.reason == "unreachable"):
                raise
            # The kept connection was closed while the instance was idle (a failover, an idle
            # timeout on the way): that is not the node being down; one new connection.
            return self._ask()

    def _ask(self) -> str:
        """One INFO on the kept connection, opened (and logged in) first if there is none."""
        if self._connection is None:
            self._connection = self._connect(refresh=False)
        connection = self._connection
        try:
            connection.send_command("INFO")
            reply = connection.read_response()
        except ResponseError as exc:
            # An error reply (INFO refused or renamed): the connection is still in step.
            raise classify(exc, self._settings.where) from None
        except Exception as exc:
            # Broken, timed out or refused at login: the next pass opens a new connection.
            self.close()
            raise classify(exc, self._settings.where) from None
        if not isinstance(reply, str):
            raise SourceFailure(
                "command_failed",
                f"{self._settings.where}: INFO answered {type(reply).__name__}, not text",
            )
        return reply

    def _info(self) -> str:
        try:
            return self._info_once()
        except SourceFailure as failure:
            if failure.reason != "auth_failed" or self._login is None:
                raise
            # A rotated secret: the cached login was refused; read it again, once.
            used = self._login_used
            self.close()
            self._connection = self._connect(refresh=True)
            if self._login_used == used:
                raise
            return self._info_once()

    def collect(self) -> Iterator[Metric]:
        try:
            text = self._info()
        except SourceFailure:
            yield from self.down_families()
            raise
        yield from info.families(info.parse(text), self._clock())
