"""DocumentDB collections, indexes and running operations (SPEC 18), beside serverStatus.

Per pass, on the source's client: ``listDatabases`` (names only), ``listCollections`` per
database (names only, those the login may see), ``collStats`` for at most
``collstats_per_pass`` collections (the current top N by size every pass, then the others in
turn, so every collection is ranked after a few passes however many there are),
``aggregate [$indexStats]`` for each of the top N, and one ``currentOp``. Every command is
one that MongoDB's ``clusterMonitor`` role grants (serverStatus, listDatabases, collStats,
indexStats, inprog) but listCollections: with ``authorizedCollections`` a login lists the
collections it holds any privilege on (collStats included), which MongoDB 4.0+ honours;
where the server does not, the login also needs ``listCollections`` (the ``read`` role).

Each part is optional: a refused or failing command leaves its series out (one log line
the first time), never the target down. Replies' shapes are DocumentDB's documented ones:
collStats ``size``, ``count``, ``totalIndexSize`` and ``opCounter`` {numDocsIns,
numDocsUpd, numDocsDel}; $indexStats ``name`` and ``accesses.ops``; currentOp ``inprog``
[{``op``, ``secs_running``, ``command``...}].
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..config.docdb import MongoCollectionBounds

logger = logging.getLogger(__name__)

# Databases DocumentDB keeps for itself.
SYSTEM_DATABASES: Final = frozenset({"admin", "local", "config"})
# collStats' operation counters -> the ``op`` label.
OP_COUNTERS: Final = (("numDocsIns", "insert"), ("numDocsUpd", "update"), ("numDocsDel", "delete"))
COLLECTION_LABELS: Final = ["database", "collection"]

Namespace = tuple[str, str]  # (database, collection)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass
class CollectionReader:
    """What one server's collections look like across passes: the last size read of each
    (to rank them) and where the turn of the others stands."""

    bounds: MongoCollectionBounds
    where: str
    sizes: dict[Namespace, float] = field(default_factory=dict)
    _turn: int = 0
    _logged: set[str] = field(default_factory=set)

    def _failed(self, part: str, exc: BaseException) -> None:
        if part not in self._logged:
            self._logged.add(part)
            logger.warning(
                "DocumentDB %s failed: its series are left out",
                part,
                extra={"detail": f"{self.where}: {exc}"},
            )

    # --- the commands ----------------------------------------------------------------------

    def namespaces(self, client: Any) -> list[Namespace]:
        """Every user collection, in a stable order (views and system collections left out)."""
        reply = client.admin.command("listDatabases", nameOnly=True)
        names: list[Namespace] = []
        for database in sorted(d["name"] for d in reply.get("databases", [])):
            if database in SYSTEM_DATABASES:
                continue
            listed = client[database].command(
                "listCollections", nameOnly=True, authorizedCollections=True
            )
            for entry in listed.get("cursor", {}).get("firstBatch", []):
                name = entry.get("name")
                if not isinstance(name, str) or name.startswith("system."):
                    continue
                if entry.get("type", "collection") != "collection":
                    continue
                names.append((database, name))
        return sorted(names)

    def to_read(self, namespaces: list[Namespace]) -> list[Namespace]:
        """This pass's collStats: the top N by the sizes known, then the rest in turn, at most
        ``collstats_per_pass`` in all."""
        present = set(namespaces)
        for gone in set(self.sizes) - present:
            del self.sizes[gone]
        top = self.top(namespaces)
        chosen = list(top)
        others = [ns for ns in namespaces if ns not in set(top)]
        room = self.bounds.collstats_per_pass - len(chosen)
        if others and room > 0:
            start = self._turn % len(others)
            turn = (others[start:] + others[:start])[:room]
            self._turn = start + len(turn)
            chosen += turn
        return chosen

    def top(self, namespaces: list[Namespace]) -> list[Namespace]:
        """The N largest by the sizes known (unknown ones last, in name order)."""
        ranked = sorted(namespaces, key=lambda ns: (-self.sizes.get(ns, -1.0), ns))
        return ranked[: self.bounds.top_n]

    def collect(self, client: Any) -> Iterator[Metric]:
        if self.bounds.top_n > 0:
            yield from self._collections(client)
        yield from self._operations(client)

    def _collections(self, client: Any) -> Iterator[Metric]:
        try:
            namespaces = self.namespaces(client)
        except Exception as exc:
            self._failed("listDatabases/listCollections", exc)
            return
        stats: dict[Namespace, Mapping[str, Any]] = {}
        for database, collection in self.to_read(namespaces):
            try:
                reply = client[database].command("collStats", collection)
            except Exception as exc:
                self._failed("collStats", exc)
                continue
            size = _number(reply.get("size"))
            if size is not None:
                self.sizes[(database, collection)] = size
                stats[(database, collection)] = reply
        top = [ns for ns in self.top(namespaces) if ns in stats]
        yield from _collection_families(top, stats)
        yield from self._indexes(client, top)

    def _indexes(self, client: Any, top: list[Namespace]) -> Iterator[Metric]:
        accesses = CounterMetricFamily(
            "mongo_index_accesses",
            "Operations that used the index since the server started or the index was made "
            "($indexStats accesses.ops); an index at 0 for long is unused.",
            labels=[*COLLECTION_LABELS, "index"],
        )
        for database, collection in top:
            try:
                rows = list(client[database][collection].aggregate([{"$indexStats": {}}]))
            except Exception as exc:
                self._failed("$indexStats", exc)
                continue
            for row in rows:
                ops = _number((row.get("accesses") or {}).get("ops"))
                name = row.get("name")
                if ops is not None and isinstance(name, str):
                    accesses.add_metric([database, collection, name], ops)
        if accesses.samples:
            yield accesses

    def _operations(self, client: Any) -> Iterator[Metric]:
        try:
            reply = client.admin.command("currentOp")
        except Exception as exc:
            self._failed("currentOp", exc)
            return
        counts: dict[str, int] = {}
        oldest = 0.0
        for op in reply.get("inprog", []):
            command = op.get("command")
            # The collector's own currentOp is running while it answers: left out.
            if isinstance(command, Mapping) and "currentOp" in command:
                continue
            kind = op.get("op")
            if not isinstance(kind, str) or kind == "none":
                continue
            counts[kind] = counts.get(kind, 0) + 1
            running = _number(op.get("secs_running"))
            if running is not None:
                oldest = max(oldest, running)
        ops = GaugeMetricFamily(
            "mongo_current_ops",
            "Operations in progress by kind (currentOp; the collector's own left out).",
            labels=["op"],
        )
        for kind in sorted(counts):
            ops.add_metric([kind], counts[kind])
        if ops.samples:
            yield ops
        yield GaugeMetricFamily(
            "mongo_oldest_op_seconds",
            "How long the oldest operation in progress has run (currentOp secs_running; 0: none).",
            value=oldest,
        )


def _collection_families(
    top: list[Namespace], stats: Mapping[Namespace, Mapping[str, Any]]
) -> Iterator[Metric]:
    size = GaugeMetricFamily(
        "mongo_collection_size_bytes",
        "Uncompressed size of the collection's documents (collStats size).",
        labels=COLLECTION_LABELS,
    )
    documents = GaugeMetricFamily(
        "mongo_collection_documents",
        "Documents in the collection (collStats count).",
        labels=COLLECTION_LABELS,
    )
    index_size = GaugeMetricFamily(
        "mongo_collection_index_size_bytes",
        "Size of the collection's indexes (collStats totalIndexSize).",
        labels=COLLECTION_LABELS,
    )
    ops = CounterMetricFamily(
        "mongo_collection_ops",
        "Documents inserted, updated and deleted in the collection since the counters were "
        "last reset (collStats opCounter; reset by an instance restart or scaling).",
        labels=[*COLLECTION_LABELS, "op"],
    )
    for database, collection in top:
        reply = stats[(database, collection)]
        labels = [database, collection]
        for family, key in ((size, "size"), (documents, "count"), (index_size, "totalIndexSize")):
            value = _number(reply.get(key))
            if value is not None:
                family.add_metric(labels, value)
        counters = reply.get("opCounter")
        if isinstance(counters, Mapping):
            for key, op in OP_COUNTERS:
                value = _number(counters.get(key))
                if value is not None:
                    ops.add_metric([*labels, op], value)
    families: tuple[Metric, ...] = (size, documents, index_size, ops)
    for metric in families:
        if metric.samples:
            yield metric
