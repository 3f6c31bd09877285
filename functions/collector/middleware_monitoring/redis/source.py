"""The ElastiCache engine source: INFO and the slow log of one node in one round trip per
pass (SPEC 13, 18).

Each pass pipelines three commands: ``INFO`` with the sections the series come from,
``SLOWLOG LEN`` and ``SLOWLOG GET 1``. ``INFO a b`` needs Redis 7.0, so until a reply has
told the version the source asks ``INFO all`` (every section but the modules' own, on every
version; the same sections as the list on 7.0). Never CONFIG or anything else ElastiCache
restricts. A user refused SLOWLOG loses the three slowlog series: one log line, and SLOWLOG
is not asked again while the function instance is warm (each refusal would count among the
node's error replies and ACL denials, which alerts read).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from valkey.connection import Connection
from valkey.exceptions import ResponseError

from ..config.elasticache import RedisSettings
from ..model import SourceFailure
from ..tls import DEFAULT_SEARCH_DIRS
from . import info
from .client import classify, connect

logger = logging.getLogger(__name__)

# (user or None for the AUTH token alone, password); ``True`` reads past the secret's cache.
RedisLogin = Callable[[bool], tuple[str | None, str]]

# The sections the series come from (no "modules": a list of modules, no series).
INFO_SECTIONS: Final = (
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
)
ALL_SECTIONS: Final = ("all",)
SLOWLOG_COMMANDS: Final = (("SLOWLOG", "LEN"), ("SLOWLOG", "GET", "1"))


@dataclass(frozen=True)
class Replies:
    """One pass's answers: INFO's text, and the slow log's (None: not asked or refused)."""

    info: str
    slowlog: tuple[int, list[object] | None] | None


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


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
        # Learnt from the replies: a 7.0+ server takes the section list; SLOWLOG refused once.
        self._info_args: tuple[str, ...] = ALL_SECTIONS
        self._ask_slowlog = True

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

    def _info_once(self) -> Replies:
        kept = self._connection is not None
        try:
            return self._ask()
        except SourceFailure as failure:
            if not (kept and failure.reason == "unreachable"):
                raise
            # The kept connection was closed while the instance was idle (a failover, an idle
            # timeout on the way): that is not the node being down; one new connection.
            return self._ask()

    def _ask(self) -> Replies:
        """INFO (and the slow log) in one write and one round trip on the kept connection,
        opened (and logged in) first if there is none."""
        if self._connection is None:
            self._connection = self._connect(refresh=False)
        connection = self._connection
        commands: list[tuple[str, ...]] = [("INFO", *self._info_args)]
        if self._ask_slowlog:
            commands += SLOWLOG_COMMANDS
        answers: list[object] = []
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            for _ in commands:
                try:
                    answers.append(connection.read_response())
                except ResponseError as exc:
                    # An error reply: the connection is still in step; read on.
                    answers.append(exc)
        except Exception as exc:
            # Broken, timed out or refused at login: the next pass opens a new connection.
            self.close()
            raise classify(exc, self._settings.where) from None
        reply = answers[0]
        if isinstance(reply, ResponseError):
            # INFO refused or renamed.
            raise classify(reply, self._settings.where)
        if not isinstance(reply, str):
            raise SourceFailure(
                "command_failed",
                f"{self._settings.where}: INFO answered {type(reply).__name__}, not text",
            )
        return Replies(reply, self._slowlog(answers[1:]))

    def _slowlog(self, answers: list[object]) -> tuple[int, list[object] | None] | None:
        if not answers:
            return None
        length, newest = answers
        for answer in answers:
            if isinstance(answer, ResponseError):
                self._ask_slowlog = False
                logger.warning(
                    "SLOWLOG refused: the slowlog series are left out while this instance "
                    "runs (the user needs +slowlog)",
                    extra={"target": self._settings.target_name, "detail": str(answer)},
                )
                return None
        if not isinstance(length, int) or not isinstance(newest, list):
            return None
        entry = newest[0] if newest and isinstance(newest[0], list) else None
        return length, entry

    def _info(self) -> Replies:
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
            replies = self._info()
        except SourceFailure:
            yield from self.down_families()
            raise
        fields = info.parse(replies.info)
        if _major(fields.get("redis_version", "")) >= 7:
            self._info_args = INFO_SECTIONS
        yield from info.families(fields, self._clock())
        if replies.slowlog is not None:
            yield from info.slowlog_families(*replies.slowlog)
