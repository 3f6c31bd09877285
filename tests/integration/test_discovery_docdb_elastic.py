"""DocumentDB Elastic clusters in discovery (SPEC 18): kind ``docdb-elastic`` found through
its own API (the DocDBElasticServer stand-in, checked against botocore's model) by its
tags, each a CloudWatch-only target whose AWS/DocDB-Elastic metrics (moto in server mode)
come in the pass's CloudWatch batch, with exact values and labels; paging; a denied list."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from middleware_monitoring.cloudwatch import declarations
from middleware_monitoring.cloudwatch.declarations import DOCDB_ELASTIC_SERIES, Stat
from tests.helpers import Closer
from tests.integration.test_discovery import groups, named, runtime_of, settings_of
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront
from tests.standins.cloudwatch import put
from tests.standins.discovered import ACCOUNT, REGION
from tests.standins.docdb_elastic import DocDBElasticServer, elastic_cluster

pytestmark = pytest.mark.integration

ORDERS_ID = "8f1e6a3c-0b2d-4c5e-9f70-1a2b3c4d5e6f"
LEDGER_ID = "0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f"
# One value per metric (the period's statistic), distinct so a mix-up shows.
VALUES = {
    "PrimaryInstanceCPUUtilization": 37.5,
    "DatabaseConnections": 412.0,
    "DatabaseCursorsTimedOut": 2.0,
    "VolumeBytesUsed": 7_516_192_768.0,
    "OpcountersInsert": 1_250.0,
    "OpcountersQuery": 9_800.0,
    "OpcountersUpdate": 640.0,
    "OpcountersDelete": 35.0,
    "ReadIOPS": 180.25,
    "WriteIOPS": 95.5,
}


@pytest.fixture
def elastic(front: AwsFront, monkeypatch: pytest.MonkeyPatch) -> Iterator[DocDBElasticServer]:
    with DocDBElasticServer() as made:
        for name, value in made.env().items():
            monkeypatch.setenv(name, value)
        yield made
        assert made.refused == []  # every request and answer followed botocore's model


def add(server: DocDBElasticServer, name: str, cluster_id: str, tags: dict[str, str]) -> str:
    cluster = elastic_cluster(name, account=ACCOUNT, region=REGION, cluster_id=cluster_id)
    server.clusters.append(cluster)
    server.tags[cluster["clusterArn"]] = tags
    return str(cluster["clusterArn"])


def seed_metrics(moto: MotoServer, name: str, cluster_id: str) -> None:
    minute = int(time.time()) // 60 * 60
    points: list[tuple[Stat, float, float]] = []
    for made in declarations.docdb_elastic(name, cluster_id):
        at = minute - 115 if made.stat.period == 60 else (minute - 120) // 300 * 300
        points.append((made.stat, at, VALUES[made.stat.metric]))
    put(moto.client("cloudwatch"), points)


def test_elastic_clusters_found_by_tags_with_their_cloudwatch_metrics(
    clean_moto: MotoServer, front: AwsFront, elastic: DocDBElasticServer, closer: Closer
) -> None:
    add(elastic, "orders", ORDERS_ID, {"team": "payments", "env": "prod"})
    add(elastic, "search", "5e5e5e5e-1111-2222-3333-444455556666", {"team": "search"})
    add(elastic, "ledger", LEDGER_ID, {"team": "payments"})
    seed_metrics(clean_moto, "orders", ORDERS_ID)
    settings = settings_of(
        clean_moto,
        front,
        **elastic.env(),
        DISCOVER="docdb-elastic",
        DISCOVER_TAGS="team=payments",
        DISCOVER_TAG_LABELS="env",
    )
    runtime = runtime_of(closer, settings)
    result = runtime.collect(30.0)
    pushed = groups(result)
    assert sorted(pushed) == ["collector", "docdb-elastic:ledger", "docdb-elastic:orders"]

    def info(name: str, env: str) -> dict[frozenset[tuple[str, str]], float]:
        labels = {
            "kind": "docdb_elastic_cluster",
            "engine": "docdb-elastic",
            "engine_version": "",
            "instance_class": "",
            "region": REGION,
            "account": ACCOUNT,
            "cluster": name,
            "role": "",
            "tag_env": env,
        }
        return {frozenset(labels.items()): 1.0}

    assert named(pushed["docdb-elastic:orders"], "aws_resource_info") == info("orders", "prod")
    assert named(pushed["docdb-elastic:ledger"], "aws_resource_info") == info("ledger", "")
    # Every series of the catalogue, the seeded value, labelled with the cluster's name.
    label = frozenset({("cluster", "orders")})
    assert {
        s.output: named(pushed["docdb-elastic:orders"], s.output) for s in DOCDB_ELASTIC_SERIES
    } == {s.output: {label: VALUES[s.metric]} for s in DOCDB_ELASTIC_SERIES}
    # ledger has no datapoints yet: its series are absent and its CloudWatch source says so.
    assert not any(n.startswith("mongo_elastic_") for n, _ in pushed["docdb-elastic:ledger"])
    outcomes = {t.target: {o.source: (o.up, o.reason) for o in t.outcomes} for t in result.targets}
    assert outcomes == {
        "docdb-elastic:orders": {"inventory": (True, None), "cloudwatch": (True, None)},
        "docdb-elastic:ledger": {"inventory": (True, None), "cloudwatch": (False, "no_data")},
    }
    collector = pushed["collector"]
    unit = frozenset({("account", ACCOUNT), ("region", REGION), ("kind", "docdb-elastic")})
    assert named(collector, "middleware_discovery_up") == {unit: 1.0}
    assert named(collector, "middleware_discovery_resources") == {unit: 2.0}
    # Both clusters' 10 metrics each asked in the pass's one CloudWatch batch: one call.
    assert sum(named(collector, "middleware_cloudwatch_getmetricdata_calls").values()) == 1
    assert sum(named(collector, "middleware_cloudwatch_metrics_requested").values()) == 20
    # The list once, tags per cluster, GetCluster for the kept ones only.
    assert elastic.calls_snapshot() == {
        "ListClusters": 1,
        "ListTagsForResource": 3,
        "GetCluster": 2,
    }


def test_elastic_clusters_paged_and_a_denied_list_keeps_the_last_known(
    clean_moto: MotoServer, front: AwsFront, elastic: DocDBElasticServer, closer: Closer
) -> None:
    for i in range(5):
        add(elastic, f"c{i}", f"00000000-0000-0000-0000-00000000000{i}", {"team": "payments"})
    settings = settings_of(
        clean_moto,
        front,
        **elastic.env(),
        DISCOVER="docdb-elastic",
        DISCOVER_MAX_AGE_SECONDS="0",
    )
    runtime = runtime_of(closer, settings, page_size=2)
    pushed = groups(runtime.collect(30.0))
    assert sorted(pushed) == ["collector", *(f"docdb-elastic:c{i}" for i in range(5))]
    assert elastic.calls_snapshot()["ListClusters"] == 3  # pages of 2: 2 + 2 + 1

    elastic.faults["ListClusters"] = (403, "AccessDeniedException")
    pushed = groups(runtime.collect(30.0))
    # The targets stay (nothing deleted on a failed discovery's word), the unit says why.
    assert sorted(pushed) == ["collector", *(f"docdb-elastic:c{i}" for i in range(5))]
    unit = {"account": ACCOUNT, "region": REGION, "kind": "docdb-elastic"}
    assert named(pushed["collector"], "middleware_discovery_up") == {frozenset(unit.items()): 0.0}
    assert named(pushed["collector"], "middleware_discovery_failure") == {
        frozenset({**unit, "reason": "auth_failed"}.items()): 1.0
    }


def test_a_cluster_deleted_between_the_list_and_its_calls_is_left_out(
    clean_moto: MotoServer, front: AwsFront, elastic: DocDBElasticServer, closer: Closer
) -> None:
    add(elastic, "orders", ORDERS_ID, {"team": "payments"})
    gone = add(elastic, "ledger", LEDGER_ID, {"team": "payments"})
    elastic.deleted.add(gone)
    settings = settings_of(clean_moto, front, **elastic.env(), DISCOVER="docdb-elastic")
    pushed = groups(runtime_of(closer, settings).collect(30.0))
    assert sorted(pushed) == ["collector", "docdb-elastic:orders"]
    unit = frozenset({("account", ACCOUNT), ("region", REGION), ("kind", "docdb-elastic")})
    assert named(pushed["collector"], "middleware_discovery_up") == {unit: 1.0}
    assert named(pushed["collector"], "middleware_discovery_resources") == {unit: 1.0}
