"""DocumentDB collections, indexes and running operations (SPEC 18) against the DocumentDB
stand-in, whose collStats, $indexStats and currentOp replies have the shapes AWS documents:
the top N collections by size across databases with exact values, each index's accesses,
operations in progress without the collector's own, the bound on collStats per pass, and a
refused command that costs its series only."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from middleware_monitoring.config import DocDBSettings, load_settings
from middleware_monitoring.config.docdb import MongoCollectionBounds
from middleware_monitoring.docdb.source import DocumentDBSource
from tests.standins.docdb import UNAUTHORIZED, Collection, DocDBServer, running_op

USER, PASSWORD = "monitor", "Mon:itor-pw"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

COLLECTIONS = {
    ("shop", "orders"): Collection(
        count=12_000,
        size=5_000_000,
        total_index_size=900_000,
        inserted=12_400,
        updated=3_100,
        deleted=400,
        indexes={"_id_": 52, "customer_1": 7_300, "created_1": 0},
    ),
    ("shop", "customers"): Collection(
        count=800, size=2_000_000, total_index_size=120_000, inserted=800, indexes={"_id_": 95}
    ),
    ("shop", "carts"): Collection(count=3, size=1_000, total_index_size=8_192),
    ("logs", "events"): Collection(
        count=90_000,
        size=9_000_000,
        total_index_size=2_000_000,
        inserted=90_000,
        deleted=12,
        indexes={"_id_": 4, "at_1": 310},
    ),
    ("logs", "audit"): Collection(count=2_000, size=300_000, total_index_size=60_000),
}
OPS = [
    running_op(7, "query", "logs.events", 400, {"find": "events", "filter": {"level": "x"}}),
    running_op(9, "update", "shop.orders", 2, {"update": "orders"}),
    running_op(11, "query", "shop.carts", 1, {"find": "carts"}),
]


def _settings(server: DocDBServer) -> DocDBSettings:
    info = server.mongo_info(user=USER, password=PASSWORD)
    settings = load_settings({"MONGO_INFO": json.dumps(info)})
    (spec,) = settings.docdb
    return spec


def _source(server: DocDBServer, top_n: int = 3, per_pass: int = 100) -> DocumentDBSource:
    return DocumentDBSource(_settings(server), bounds=MongoCollectionBounds(top_n, per_pass))


def _samples(source: DocumentDBSource) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in source.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _only(samples: Samples, prefix: str) -> Samples:
    return {k: v for k, v in samples.items() if k[0].startswith(prefix)}


def coll(database: str, collection: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"database": database, "collection": collection, **more}.items()))


@pytest.fixture
def server() -> Iterator[DocDBServer]:
    with DocDBServer(users={USER: PASSWORD}, collections=COLLECTIONS, current_ops=OPS) as made:
        yield made


def test_the_largest_collections_their_indexes_and_running_operations(server) -> None:
    source = _source(server)
    try:
        before = len(server.commands)
        got = _samples(source)
        asked = [c for c in server.commands[before:] if c not in ("ismaster", "hello")]
    finally:
        source.close()

    # Top 3 by size across both databases: logs.events, shop.orders, shop.customers.
    assert _only(got, "mongo_collection_") == {
        ("mongo_collection_size_bytes", coll("logs", "events")): 9_000_000.0,
        ("mongo_collection_size_bytes", coll("shop", "orders")): 5_000_000.0,
        ("mongo_collection_size_bytes", coll("shop", "customers")): 2_000_000.0,
        ("mongo_collection_documents", coll("logs", "events")): 90_000.0,
        ("mongo_collection_documents", coll("shop", "orders")): 12_000.0,
        ("mongo_collection_documents", coll("shop", "customers")): 800.0,
        ("mongo_collection_index_size_bytes", coll("logs", "events")): 2_000_000.0,
        ("mongo_collection_index_size_bytes", coll("shop", "orders")): 900_000.0,
        ("mongo_collection_index_size_bytes", coll("shop", "customers")): 120_000.0,
        ("mongo_collection_ops_total", coll("logs", "events", op="insert")): 90_000.0,
        ("mongo_collection_ops_total", coll("logs", "events", op="update")): 0.0,
        ("mongo_collection_ops_total", coll("logs", "events", op="delete")): 12.0,
        ("mongo_collection_ops_total", coll("shop", "orders", op="insert")): 12_400.0,
        ("mongo_collection_ops_total", coll("shop", "orders", op="update")): 3_100.0,
        ("mongo_collection_ops_total", coll("shop", "orders", op="delete")): 400.0,
        ("mongo_collection_ops_total", coll("shop", "customers", op="insert")): 800.0,
        ("mongo_collection_ops_total", coll("shop", "customers", op="update")): 0.0,
        ("mongo_collection_ops_total", coll("shop", "customers", op="delete")): 0.0,
    }
    # Every index of those three; created_1 at 0 is the unused one.
    assert _only(got, "mongo_index_") == {
        ("mongo_index_accesses_total", coll("logs", "events", index="_id_")): 4.0,
        ("mongo_index_accesses_total", coll("logs", "events", index="at_1")): 310.0,
        ("mongo_index_accesses_total", coll("shop", "orders", index="_id_")): 52.0,
        ("mongo_index_accesses_total", coll("shop", "orders", index="customer_1")): 7_300.0,
        ("mongo_index_accesses_total", coll("shop", "orders", index="created_1")): 0.0,
        ("mongo_index_accesses_total", coll("shop", "customers", index="_id_")): 95.0,
    }
    # Three operations besides the collector's own currentOp (left out).
    assert _only(got, "mongo_current_ops") == {
        ("mongo_current_ops", (("op", "query"),)): 2.0,
        ("mongo_current_ops", (("op", "update"),)): 1.0,
    }
    assert got[("mongo_oldest_op_seconds", ())] == 400.0
    assert got[("mongo_up", ())] == 1.0
    # One listCollections per database, collStats for all five (within the bound), one
    # $indexStats per exported collection, one currentOp.
    assert asked == [
        "saslStart",
        "saslContinue",
        "serverStatus",
        "listDatabases",
        "listCollections",
        "listCollections",
        *["collStats"] * 5,
        *["aggregate"] * 3,
        "currentOp",
    ]


def test_collstats_per_pass_is_bounded_and_every_collection_is_ranked_in_turn(server) -> None:
    """Five collections, two exported, three collStats a pass: the first pass knows no sizes
    (it reads the first three by name), the next ones the top two and one other in turn,
    until the two largest are known and exported."""
    source = _source(server, top_n=2, per_pass=3)
    exported: list[set[tuple[str, str]]] = []
    per_pass: list[int] = []
    try:
        for _ in range(4):
            before = len(server.commands)
            got = _samples(source)
            per_pass.append(server.commands[before:].count("collStats"))
            exported.append(
                {
                    (dict(labels)["database"], dict(labels)["collection"])
                    for name, labels in got
                    if name == "mongo_collection_size_bytes"
                }
            )
    finally:
        source.close()
    assert per_pass == [3, 3, 3, 3]
    # By name: logs.audit, logs.events, shop.carts read first; events is the largest so far.
    assert exported[0] == {("logs", "events"), ("logs", "audit")}
    # Then shop.customers, then shop.orders come round; from then on the true top two.
    assert exported[-1] == {("logs", "events"), ("shop", "orders")}
    assert exported[2] == exported[3]


def test_top_n_0_turns_collections_and_indexes_off(server) -> None:
    source = _source(server, top_n=0, per_pass=1)
    try:
        before = len(server.commands)
        got = _samples(source)
        asked = server.commands[before:]
    finally:
        source.close()
    assert not _only(got, "mongo_collection_") and not _only(got, "mongo_index_")
    assert "listDatabases" not in asked and "collStats" not in asked
    assert got[("mongo_oldest_op_seconds", ())] == 400.0


def test_a_refused_command_costs_its_series_only_and_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A login with serverStatus but not inprog (currentOp) nor indexStats."""
    refused = {"currentop": UNAUTHORIZED, "aggregate": UNAUTHORIZED}
    with DocDBServer(
        users={USER: PASSWORD}, collections=COLLECTIONS, current_ops=OPS, refused=refused
    ) as server:
        source = _source(server)
        try:
            with caplog.at_level(logging.WARNING, logger="middleware_monitoring.docdb"):
                first, second = _samples(source), _samples(source)
        finally:
            source.close()
    for got in (first, second):
        assert got[("mongo_up", ())] == 1.0
        assert got[("mongo_opcounters_insert", ())] == 1201.0
        assert len(_only(got, "mongo_collection_size_bytes")) == 3
        assert not _only(got, "mongo_index_") and not _only(got, "mongo_current_ops")
        assert ("mongo_oldest_op_seconds", ()) not in got
    messages = sorted(r.getMessage() for r in caplog.records)
    assert messages == [
        "DocumentDB $indexStats failed: its series are left out",
        "DocumentDB currentOp failed: its series are left out",
    ]
    details = sorted(getattr(r, "detail", "") for r in caplog.records)
    assert all("Authorization failure" in d for d in details), details


def test_settings_bound_the_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    from middleware_monitoring.config import ConfigError

    settings = load_settings({"MONGO_COLLECTIONS_TOP_N": "5", "MONGO_COLLSTATS_PER_PASS": "40"})
    assert settings.mongo_collections == MongoCollectionBounds(5, 40)
    assert load_settings({}).mongo_collections == MongoCollectionBounds(20, 100)
    with pytest.raises(ConfigError) as raised:
        load_settings({"MONGO_COLLECTIONS_TOP_N": "50", "MONGO_COLLSTATS_PER_PASS": "10"})
    assert "MONGO_COLLSTATS_PER_PASS: must be at least MONGO_COLLECTIONS_TOP_N (50)" in str(
        raised.value
    )
