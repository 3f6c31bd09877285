"""The DocumentDB source: every SPEC 3.4 series from one ``serverStatus``, then the largest
collections, their indexes and the running operations (SPEC 18, ``collections.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from pymongo import MongoClient

from ..config import DocDBSettings
from ..config.docdb import MongoCollectionBounds
from ..model import SourceFailure
from ..tls import DEFAULT_SEARCH_DIRS
from .client import classify, new_client
from .collections import CollectionReader

# (metric name, path in the serverStatus reply, help). Dashboards query these names.
SERIES: Final[tuple[tuple[str, tuple[str, ...], str], ...]] = (
    ("mongo_uptime_seconds", ("uptime",), "Seconds since the server started."),
    ("mongo_current_connections", ("connections", "current"), "Open client connections."),
    (
        "mongo_available_connections",
        ("connections", "available"),
        "Client connections still available.",
    ),
    (
        "mongo_totalCreated_connections",
        ("connections", "totalCreated"),
        "Client connections created since the server started.",
    ),
    *(
        (
            f"mongo_opcounters_{kind}",
            ("opcounters", kind),
            f"{kind} operations since the server started.",
        )
        for kind in ("insert", "query", "update", "delete", "getmore", "command")
    ),
    *(
        (
            f"mongo_document_{kind}",
            ("metrics", "document", kind),
            f"Documents {kind} since the server started.",
        )
        for kind in ("deleted", "inserted", "returned", "updated")
    ),
)

UP_HELP: Final = "1 if the server was reached and answered serverStatus this pass, else 0."


def _field(reply: Mapping[str, Any], path: tuple[str, ...]) -> float | None:
    """The number at ``path``, or None when the server does not return it (servers differ)."""
    value: Any = reply
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class DocumentDBSource:
    name = "mongo"

    def __init__(
        self,
        settings: DocDBSettings,
        *,
        search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS,
        login: Callable[[bool], tuple[str, str]] | None = None,
        bounds: MongoCollectionBounds | None = None,
    ) -> None:
        self._settings = settings
        self._collections = CollectionReader(
            bounds or MongoCollectionBounds(), f"{settings.target_name} ({settings.address})"
        )
        # (user, password) from MONGO_SECRET_ARN; ``True`` re-reads past the cache.
        self._login = login
        self._login_used: tuple[str, str] | None = None
        self._search_dirs = tuple(search_dirs)
        # Kept across warm passes: pymongo reconnects by itself after a server comes back.
        self._client: MongoClient[dict[str, Any]] | None = None

    def down_families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("mongo_up", UP_HELP, value=0)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _new_client(self, refresh: bool) -> MongoClient[dict[str, Any]]:
        settings = self._settings
        if self._login is not None:
            self._login_used = self._login(refresh)
            user, password = self._login_used
            settings = replace(settings, user=user, password=password)
        return new_client(settings, self._search_dirs)

    def _command(self) -> dict[str, Any]:
        if self._client is None:
            self._client = self._new_client(refresh=False)
        try:
            # serverStatus decides whether the target is up; the rest is optional.
            return self._client.admin.command("serverStatus")
        except Exception as exc:
            raise classify(exc, self._client) from None

    def _server_status(self) -> dict[str, Any]:
        try:
            return self._command()
        except SourceFailure as failure:
            if failure.reason != "auth_failed" or self._login is None:
                raise
            # A rotated secret: the cached login was refused; read it again, once.
            used = self._login_used
            self.close()
            self._client = self._new_client(refresh=True)
            if self._login_used == used:
                raise
            return self._command()

    def collect(self) -> Iterator[Metric]:
        try:
            reply = self._server_status()
        except SourceFailure:
            yield from self.down_families()
            raise
        yield GaugeMetricFamily("mongo_up", UP_HELP, value=1)
        version = reply.get("version")
        if isinstance(version, str) and version:
            yield InfoMetricFamily(
                "mongo_version", "Server version reported by serverStatus.", {"version": version}
            )
        for name, path, documentation in SERIES:
            value = _field(reply, path)
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=value)
        if self._client is not None:
            yield from self._collections.collect(self._client)
