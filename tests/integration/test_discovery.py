"""Discovery (SPEC 10) against moto in server mode, behind the AwsFront stand-in (DocumentDB's
answers, pending maintenance, certificate details, call counts): every kind found by its
tags with exact targets, labels and inventory; paging; accounts and regions; SQL and
serverStatus with the logins the tags name; the max age; a slow Describe."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterator

import pytest

from middleware_monitoring.aws import AwsSessions
from middleware_monitoring.config import ResourceKey, Settings, load_settings
from middleware_monitoring.discovery import Discovery
from middleware_monitoring.discovery.resources import GIB
from middleware_monitoring.model import PassResult
from middleware_monitoring.runtime import Runtime
from middleware_monitoring.targets import TargetBuilder
from tests.faults.harness import key
from tests.helpers import Closer, log_records
from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD, prepare
from tests.integration.test_postgres_tls import start_tls_server
from tests.rds_names import rds_hosts_on_localhost
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront, docdb_cluster, docdb_instance
from tests.standins.discovered import (
    ACCOUNT,
    REGION,
    SECRET_TAG,
    create_aurora_cluster,
    create_cache_cluster,
    create_rds_instance,
    declarations_of,
    seed,
)
from tests.standins.docdb import DocDBServer
from tests.standins.tls import make_tls_files

pytestmark = pytest.mark.integration

OTHER_ACCOUNT = "210987654321"
ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/monitoring-discovery"
VALID_TILL = dt.datetime(2027, 8, 22, 17, 8, 50, tzinfo=dt.UTC)
PAYMENTS = {"team": "payments"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    with log_records(logging.INFO) as records:
        yield records


def settings_of(moto: MotoServer, front: AwsFront, **env: str) -> Settings:
    return load_settings({**moto.env(), **front.env(), "PG_QPS_SAMPLE_SECONDS": "0", **env})


def runtime_of(closer: Closer, settings: Settings, page_size: int | None = None) -> Runtime:
    builder = None
    if page_size is not None:
        assert settings.discovery is not None and settings.postgres_defaults is not None
        sessions = AwsSessions(settings.cloudwatch.region)
        discovery = Discovery(
            settings.discovery,
            sessions,
            here_region=settings.cloudwatch.region,
            postgres_defaults=settings.postgres_defaults,
            page_size=page_size,
        )
        builder = TargetBuilder(settings, sessions=sessions, discovery=discovery)
    return closer(Runtime(settings, builder))


def groups(result: PassResult) -> dict[str, Samples]:
    return {
        group.target: {
            (s.name, frozenset(s.labels.items())): s.value
            for family in group.families
            for s in family.samples
        }
        for group in result.groups()
    }


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def info(kind: str, engine: str, version: str, klass: str, cluster: str, role: str, **tags: str):
    # A cache node's also names its replication group and shard ("" for a cluster of no group).
    node = {"replication_group": "", "shard": ""} if kind == "elasticache_node" else {}
    labels = {
        **node,
        "kind": kind,
        "engine": engine,
        "engine_version": version,
        "instance_class": klass,
        "region": REGION,
        "account": ACCOUNT,
        "cluster": cluster,
        "role": role,
        "tag_team": tags.get("team", ""),
        "tag_cost_center": tags.get("cost_center", ""),
    }
    return {frozenset(labels.items()): 1.0}


def payments_fleet(moto: MotoServer, front: AwsFront) -> None:
    """Payments' resources of every kind, and others' that the tag filter must leave out."""
    rds = moto.client("rds")
    create_rds_instance(rds, "orders-db", tags={**PAYMENTS, "cost-center": "42"}, storage_gib=100)
    create_rds_instance(rds, "billing-db", tags=PAYMENTS, iam=True, backup_days=14)
    create_rds_instance(rds, "search-db", tags={"team": "search"})
    create_rds_instance(rds, "untagged-db")
    create_aurora_cluster(rds, "ledger", members=("ledger-1", "ledger-2"), tags=PAYMENTS)
    create_aurora_cluster(rds, "reports", members=("reports-1",), tags={"team": "search"})
    elasticache = moto.client("elasticache")
    create_cache_cluster(elasticache, "carts-001", tags=PAYMENTS)
    create_cache_cluster(elasticache, "search-cache", tags={"team": "search"})
    for name, tags in (("sessions", PAYMENTS), ("archive", {"team": "search"})):
        front.docdb_clusters.append(
            docdb_cluster(
                name,
                account=ACCOUNT,
                region=REGION,
                members={f"{name}-1": True, f"{name}-2": False},
                host=f"{name}.cluster-abc.{REGION}.docdb.amazonaws.com",
                port=27017,
                tags=tags,
            )
        )
        front.docdb_instances += [
            docdb_instance(
                f"{name}-{n}",
                cluster=name,
                account=ACCOUNT,
                region=REGION,
                host=f"{name}-{n}.abc.{REGION}.docdb.amazonaws.com",
                port=27017,
                certificate_valid_till=VALID_TILL if n == 1 else None,
            )
            for n in (1, 2)
        ]
    arn = f"arn:aws:rds:{REGION}:{ACCOUNT}"
    front.pending[f"{arn}:db:orders-db"] = [
        {"Action": "system-update", "Description": "OS patch"},
        {"Action": "db-upgrade", "Description": "minor version"},
    ]
    front.pending[f"{arn}:cluster:ledger"] = [{"Action": "system-update"}]
    front.pending[f"{arn}:db:search-db"] = [{"Action": "system-update"}]
    front.certificates.update({"orders-db": VALID_TILL, "ledger-1": VALID_TILL})


PAYMENTS_TARGETS = {
    "orders-db": ("rds_instance", "orders-db", None),
    "billing-db": ("rds_instance", "billing-db", None),
    "ledger": ("aurora_cluster", "ledger", None),
    "ledger-1": ("aurora_instance", "ledger-1", None),
    "ledger-2": ("aurora_instance", "ledger-2", None),
    "docdb-cluster:sessions": ("docdb_cluster", "sessions", None),
    "docdb:sessions-1": ("docdb_instance", "sessions-1", None),
    "docdb:sessions-2": ("docdb_instance", "sessions-2", None),
    "elasticache:carts-001:0001": ("elasticache_node", "carts-001", "0001"),
}


def seed_all(moto: MotoServer, targets: dict[str, tuple[str, str, str | None]]) -> None:
    made = [d for kind, ident, node in targets.values() for d in declarations_of(kind, ident, node)]
    seed(moto.client("cloudwatch"), made)


def test_every_kind_found_by_its_tags_with_exact_labels_and_inventory(
    clean_moto: MotoServer, front: AwsFront, closer: Closer, records: list[logging.LogRecord]
) -> None:
    payments_fleet(clean_moto, front)
    seed_all(clean_moto, PAYMENTS_TARGETS)
    settings = settings_of(
        clean_moto,
        front,
        DISCOVER="rds,aurora,docdb,elasticache",
        DISCOVER_TAGS="team=payments",
        DISCOVER_TAG_LABELS="team,cost-center",
    )
    runtime = runtime_of(closer, settings)
    result = runtime.collect(30.0)
    pushed = groups(result)
    assert sorted(pushed) == sorted([*PAYMENTS_TARGETS, "collector"])
    # Every discovered target is up: its inventory and its CloudWatch metrics.
    assert [t.target for t in result.targets if not t.up] == []
    pay = {"team": "payments"}
    assert {name: named(pushed[name], "aws_resource_info") for name in PAYMENTS_TARGETS} == {
        "orders-db": info(
            "rds_instance", "postgres", "16.4", "db.t4g.medium", "", "", **pay, cost_center="42"
        ),
        "billing-db": info("rds_instance", "postgres", "16.4", "db.t4g.medium", "", "", **pay),
        "ledger": info("aurora_cluster", "aurora-postgresql", "15.4", "", "ledger", "", **pay),
        "ledger-1": info(
            "aurora_instance",
            "aurora-postgresql",
            "15.4",
            "db.r6g.large",
            "ledger",
            "writer",
            **pay,
        ),
        "ledger-2": info(
            "aurora_instance",
            "aurora-postgresql",
            "15.4",
            "db.r6g.large",
            "ledger",
            "reader",
            **pay,
        ),
        "docdb-cluster:sessions": info(
            "docdb_cluster", "docdb", "5.0.0", "", "sessions", "", **pay
        ),
        "docdb:sessions-1": info(
            "docdb_instance", "docdb", "5.0.0", "db.r6g.large", "sessions", "writer", **pay
        ),
        "docdb:sessions-2": info(
            "docdb_instance", "docdb", "5.0.0", "db.r6g.large", "sessions", "reader", **pay
        ),
        # moto's DescribeCacheClusters carries no EngineVersion.
        "elasticache:carts-001:0001": info(
            "elasticache_node", "redis", "", "cache.t4g.small", "", "", **pay
        ),
    }
    inventory = {
        name: {n: v for (n, _), v in samples.items() if n.startswith("aws_rds_")}
        for name, samples in pushed.items()
        if name in PAYMENTS_TARGETS
    }
    expiry = VALID_TILL.timestamp()
    assert inventory == {
        "orders-db": {
            "aws_rds_allocated_storage_bytes": 100.0 * GIB,
            "aws_rds_pending_maintenance_actions": 2.0,
            "aws_rds_certificate_expiry_timestamp_seconds": expiry,
            "aws_rds_backup_retention_days": 7.0,
        },
        "billing-db": {
            "aws_rds_allocated_storage_bytes": 20.0 * GIB,
            "aws_rds_pending_maintenance_actions": 0.0,
            "aws_rds_backup_retention_days": 14.0,
        },
        "ledger": {
            "aws_rds_pending_maintenance_actions": 1.0,
            "aws_rds_backup_retention_days": 1.0,
        },
        "ledger-1": {
            "aws_rds_pending_maintenance_actions": 0.0,
            "aws_rds_certificate_expiry_timestamp_seconds": expiry,
        },
        "ledger-2": {"aws_rds_pending_maintenance_actions": 0.0},
        "docdb-cluster:sessions": {
            "aws_rds_pending_maintenance_actions": 0.0,
            "aws_rds_backup_retention_days": 1.0,
        },
        "docdb:sessions-1": {
            "aws_rds_pending_maintenance_actions": 0.0,
            "aws_rds_certificate_expiry_timestamp_seconds": expiry,
        },
        "docdb:sessions-2": {"aws_rds_pending_maintenance_actions": 0.0},
        "elasticache:carts-001:0001": {},
    }
    collector = pushed["collector"]
    unit = {"account": ACCOUNT, "region": REGION}

    def per_kind(name: str) -> dict[str, float]:
        return {dict(labels)["kind"]: value for labels, value in named(collector, name).items()}

    assert {
        labels - frozenset(unit.items()) for labels in named(collector, "middleware_discovery_up")
    } == {frozenset({("kind", kind)}) for kind in ("rds", "aurora", "docdb", "elasticache")}
    assert per_kind("middleware_discovery_up") == {
        "rds": 1,
        "aurora": 1,
        "docdb": 1,
        "elasticache": 1,
    }
    assert per_kind("middleware_discovery_resources") == {
        "rds": 2,
        "aurora": 3,
        "docdb": 3,
        "elasticache": 1,
    }
    assert named(collector, "middleware_discovery_failure") == {}
    assert set(per_kind("middleware_discovery_last_success_timestamp_seconds")) == {
        "rds",
        "aurora",
        "docdb",
        "elasticache",
    }
    # One Describe per list, one pending-maintenance call shared by the RDS kinds, one
    # GetResources for the ElastiCache tags, and the own account asked once.
    assert front.calls_snapshot() == {
        "GetCallerIdentity": 1,
        "DescribeDBInstances": 3,
        "DescribeDBClusters": 2,
        "DescribePendingMaintenanceActions": 1,
        "DescribeReplicationGroups": 1,
        "DescribeCacheClusters": 1,
        "GetResources": 1,
    }
    no_login = sorted(
        (r.__dict__["target"], r.__dict__["detail"].split(":")[0])
        for r in records
        if r.getMessage() == "discovered without a login"
    )
    assert no_login == [
        ("billing-db", "CloudWatch only, no SQL"),
        ("docdb-cluster:sessions", "CloudWatch only, no serverStatus"),
        ("ledger", "CloudWatch only, no SQL"),
        ("orders-db", "CloudWatch only, no SQL"),
    ]

    # A warm pass within the max age: not one call, the same targets, nothing said again.
    before = {target.name: target for target in runtime.targets}
    records.clear()
    front.calls.clear()
    again = groups(runtime.collect(30.0))
    assert front.calls_snapshot() == {}
    assert again["orders-db"][key("aws_rds_pending_maintenance_actions")] == 2.0
    assert all(before[t.name] is t for t in runtime.targets)
    assert [r.getMessage() for r in records if r.levelno >= logging.INFO] == []


def test_more_than_one_page_of_every_list(
    clean_moto: MotoServer, front: AwsFront, closer: Closer
) -> None:
    """Pages of 20: 45 RDS instances (3 pages), 21 Aurora instances (2), 21 DocumentDB
    clusters and instances (2 + 2), 21 pending-maintenance entries (2), 21 cache clusters
    (2) and their tags (2). moto 5.2.5 answers DescribeDBClusters in one page whatever
    MaxRecords: the Aurora clusters take 1 call, and DocumentDB's clusters (the same code
    path, the stand-in pages them) show the paging of DescribeDBClusters."""
    rds = clean_moto.client("rds")
    elasticache = clean_moto.client("elasticache")
    for i in range(45):
        create_rds_instance(rds, f"db-{i:02d}", tags=PAYMENTS)
    for i in range(21):
        create_aurora_cluster(rds, f"aurora-{i:02d}", members=(f"aurora-{i:02d}-1",), tags=PAYMENTS)
        create_cache_cluster(elasticache, f"cache-{i:02d}", tags=PAYMENTS)
        front.docdb_clusters.append(
            docdb_cluster(
                f"docdb-{i:02d}",
                account=ACCOUNT,
                region=REGION,
                members={f"docdb-{i:02d}-1": True},
                host="h",
                port=27017,
                tags=PAYMENTS,
            )
        )
        front.docdb_instances.append(
            docdb_instance(
                f"docdb-{i:02d}-1",
                cluster=f"docdb-{i:02d}",
                account=ACCOUNT,
                region=REGION,
                host="h",
                port=27017,
            )
        )
        front.pending[f"arn:aws:rds:{REGION}:{ACCOUNT}:db:db-{i:02d}"] = [{"Action": "a"}]
    settings = settings_of(
        clean_moto,
        front,
        DISCOVER="rds,aurora,docdb,elasticache",
        DISCOVER_TAGS="team=payments",
    )
    runtime = runtime_of(closer, settings, page_size=20)
    specs, complete = runtime.specs()
    assert (len(specs), complete) == (0, False)  # nothing refreshed yet
    assert runtime.builder.discovery is not None
    runtime.builder.discovery.refresh(60.0, time.monotonic() + 60.0)
    specs, complete = runtime.specs()
    assert complete
    kinds: dict[str, int] = {}
    for spec in specs:
        kind = spec.resource.kind  # type: ignore[union-attr]
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == {
        "rds_instance": 45,
        "aurora_cluster": 21,
        "aurora_instance": 21,
        "docdb_cluster": 21,
        "docdb_instance": 21,
        "elasticache_node": 21,
    }
    assert front.calls_snapshot() == {
        "GetCallerIdentity": 1,
        "DescribeDBInstances": 3 + 2 + 2,
        "DescribeDBClusters": 1 + 2,
        "DescribePendingMaintenanceActions": 2,
        "DescribeReplicationGroups": 1,
        "DescribeCacheClusters": 2,
        "GetResources": 2,
    }
    pending = runtime.builder.discovery.resource(
        ResourceKey(ACCOUNT, REGION, "rds_instance", "db-20")
    )
    assert pending is not None and pending.pending_maintenance == 1


def test_other_accounts_and_regions_are_named_apart_and_the_role_assumed_once(
    clean_moto: MotoServer, front: AwsFront, closer: Closer
) -> None:
    """The same id in the function's account and region, in another region, and in another
    account (through its role): three targets, never one."""
    create_rds_instance(clean_moto.client("rds"), "orders-db", tags=PAYMENTS)
    create_rds_instance(
        clean_moto.client("rds", region_name="eu-west-1"), "orders-db", tags=PAYMENTS
    )
    assumed = clean_moto.client("sts").assume_role(RoleArn=ROLE, RoleSessionName="test-setup")
    credentials = assumed["Credentials"]
    other = clean_moto.client(
        "rds",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    create_rds_instance(other, "orders-db", tags=PAYMENTS)
    settings = settings_of(
        clean_moto,
        front,
        DISCOVER="rds",
        DISCOVER_REGIONS=f"{REGION},eu-west-1",
        DISCOVER_ROLE_ARNS=ROLE,
        DISCOVER_MAX_AGE_SECONDS="0",
    )
    runtime = runtime_of(closer, settings)
    first = groups(runtime.collect(30.0))
    assert sorted(first) == [
        "collector",
        "orders-db",
        f"orders-db@{ACCOUNT}.eu-west-1",
        f"orders-db@{OTHER_ACCOUNT}.{REGION}",
    ]
    accounts = {
        name: dict(next(iter(named(samples, "aws_resource_info"))))["account"]
        for name, samples in first.items()
        if name != "collector"
    }
    assert accounts == {
        "orders-db": ACCOUNT,
        f"orders-db@{ACCOUNT}.eu-west-1": ACCOUNT,
        f"orders-db@{OTHER_ACCOUNT}.{REGION}": OTHER_ACCOUNT,
    }
    ups = named(first["collector"], "middleware_discovery_up")
    assert {(dict(k)["account"], dict(k)["region"]): v for k, v in ups.items()} == {
        (ACCOUNT, REGION): 1.0,
        (ACCOUNT, "eu-west-1"): 1.0,
        (OTHER_ACCOUNT, REGION): 1.0,
        (OTHER_ACCOUNT, "eu-west-1"): 1.0,
    }
    # Max age 0: the next pass describes again, with the role's session of the first pass.
    runtime.collect(30.0)
    calls = front.calls_snapshot()
    assert (calls["AssumeRole"], calls["GetCallerIdentity"]) == (1, 1)
    assert calls["DescribeDBInstances"] == 2 * 4


def test_a_configured_target_keeps_its_name_said_once(
    clean_moto: MotoServer, front: AwsFront, closer: Closer, records: list[logging.LogRecord]
) -> None:
    create_rds_instance(clean_moto.client("rds"), "orders-db", tags=PAYMENTS)
    create_rds_instance(clean_moto.client("rds"), "billing-db", tags=PAYMENTS)
    settings = settings_of(
        clean_moto,
        front,
        DISCOVER="rds",
        DISCOVER_MAX_AGE_SECONDS="0",
        # The environment's CloudWatch-only form of the same instance.
        AWS_RDS_INSTANCE_ID="orders-db",
    )
    runtime = runtime_of(closer, settings)
    for _ in range(2):
        result = runtime.collect(30.0)
    names = {t.target: t for t in result.targets}
    assert sorted(names) == ["billing-db", "orders-db"]
    # The configured one: no inventory source.
    assert [o.source for o in names["orders-db"].outcomes] == ["cloudwatch"]
    assert [o.source for o in names["billing-db"].outcomes] == ["inventory", "cloudwatch"]
    shadowed = [
        (r.__dict__["target"], r.__dict__["detail"])
        for r in records
        if r.getMessage() == "discovered target not used"
    ]
    assert shadowed == [
        (
            "orders-db",
            f"a configured target has the name of DISCOVER (rds_instance orders-db in {ACCOUNT} "
            f"{REGION}); the configured one is collected",
        )
    ]


def test_inventory_changes_keep_the_target_and_its_connection(
    clean_moto: MotoServer, front: AwsFront, closer: Closer
) -> None:
    rds = clean_moto.client("rds")
    made = create_rds_instance(rds, "orders-db", tags=PAYMENTS)
    settings = settings_of(
        clean_moto,
        front,
        DISCOVER="rds",
        DISCOVER_MAX_AGE_SECONDS="0",
        DISCOVER_TAG_LABELS="team,tier",
    )
    runtime = runtime_of(closer, settings)
    runtime.collect(30.0)
    [target] = runtime.targets
    rds.add_tags_to_resource(
        ResourceName=made["DBInstanceArn"], Tags=[{"Key": "tier", "Value": "gold"}]
    )
    front.pending[made["DBInstanceArn"]] = [{"Action": "system-update"}]
    pushed = groups(runtime.collect(30.0))["orders-db"]
    assert runtime.targets == [target] and runtime.targets[0] is target
    [labels] = named(pushed, "aws_resource_info")
    assert dict(labels)["tag_tier"] == "gold"
    assert pushed[key("aws_rds_pending_maintenance_actions")] == 1.0


def test_a_slow_describe_never_holds_the_pass_past_its_budget(
    clean_moto: MotoServer, front: AwsFront, closer: Closer
) -> None:
    create_rds_instance(clean_moto.client("rds"), "orders-db", tags=PAYMENTS)
    settings = settings_of(clean_moto, front, DISCOVER="rds")
    runtime = runtime_of(closer, settings)
    front.delay_seconds = 3.0
    started = time.monotonic()
    cold = runtime.collect(2.0)
    assert time.monotonic() - started < 2.0 + 0.5
    # Nothing known yet: no target, the unit not up (still pending), the list incomplete.
    assert [t.target for t in cold.targets] == []
    collector = groups(cold)["collector"]
    assert named(collector, "middleware_discovery_failure") == {
        frozenset(
            {("account", ""), ("region", REGION), ("kind", "rds"), ("reason", "pending")}
        ): 1.0
    }
    assert runtime.specs()[1] is False
    # The refresh goes on in the background and serves the next pass, which waits for it
    # (still a cold start) at most its own share.
    front.delay_seconds = 0.0
    assert [t.target for t in runtime.collect(30.0).targets] == ["orders-db"]
    assert runtime.specs()[1] is True


def test_sql_and_server_status_with_the_logins_the_tags_name(
    clean_moto: MotoServer,
    front: AwsFront,
    closer: Closer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """An RDS instance and an Aurora cluster tagged with a secret get SQL over verify-full
    TLS (the CA given as DISCOVER_CA_BUNDLE, a certificate for their RDS endpoint names);
    a DocumentDB cluster tagged with a secret gets serverStatus."""
    rds = clean_moto.client("rds")
    cluster = create_aurora_cluster(rds, "ledger", members=("ledger-1",), tags=PAYMENTS)
    writer = cluster["Endpoint"]
    wildcard = f"*.aaaaaaaaaa.{REGION}.rds.amazonaws.com"
    tls = make_tls_files(
        tmp_path_factory.mktemp("discovery-tls"),
        names=f"DNS:{wildcard},DNS:{writer},DNS:localhost,IP:127.0.0.1",
    )
    server = start_tls_server(tls)
    try:
        prepare(server)
        secrets = clean_moto.client("secretsmanager")
        pg_secret = secrets.create_secret(
            Name="monitoring/pg",
            SecretString=json.dumps(
                {"username": MONITOR, "password": MONITOR_PASSWORD, "dbname": APP_DB}
            ),
        )["ARN"]
        tagged = {**PAYMENTS, SECRET_TAG: pg_secret}
        create_rds_instance(rds, "orders-db", tags=tagged, port=server.port)
        rds.modify_db_cluster(DBClusterIdentifier="ledger", Port=server.port)
        rds.add_tags_to_resource(
            ResourceName=cluster["DBClusterArn"], Tags=[{"Key": SECRET_TAG, "Value": pg_secret}]
        )
        docdb_secret = secrets.create_secret(
            Name="monitoring/docdb",
            SecretString=json.dumps({"username": "monitor", "password": "docdb-pw:1/@x"}),
        )["ARN"]
        with DocDBServer(tls=tls, users={"monitor": "docdb-pw:1/@x"}) as docdb:
            front.docdb_clusters.append(
                docdb_cluster(
                    "sessions",
                    account=ACCOUNT,
                    region=REGION,
                    members={},
                    host="127.0.0.1",
                    port=docdb.port,
                    tags={SECRET_TAG: docdb_secret},
                )
            )
            settings = settings_of(
                clean_moto,
                front,
                DISCOVER="rds,aurora,docdb",
                DISCOVER_CA_BUNDLE=str(tls.ca),
                PG_CONNECT_TIMEOUT_SECONDS="5",
            )
            seed_all(
                clean_moto,
                {
                    "orders-db": ("rds_instance", "orders-db", None),
                    "ledger": ("aurora_cluster", "ledger", None),
                    "ledger-1": ("aurora_instance", "ledger-1", None),
                    "docdb-cluster:sessions": ("docdb_cluster", "sessions", None),
                },
            )
            runtime = runtime_of(closer, settings)
            with rds_hosts_on_localhost():
                result = runtime.collect(30.0)
            pushed = groups(result)
    finally:
        server.cleanup()
    outcomes = {t.target: {o.source: o.up for o in t.outcomes} for t in result.targets}
    assert outcomes == {
        "orders-db": {"inventory": True, "postgres": True, "cloudwatch": True},
        "ledger": {"inventory": True, "postgres": True, "cloudwatch": True},
        "ledger-1": {"inventory": True, "cloudwatch": True},
        "docdb-cluster:sessions": {"inventory": True, "mongo": True, "cloudwatch": True},
    }
    for name in ("orders-db", "ledger"):
        assert pushed[name][key("pg_up")] == 1.0
        # The secret named the database: its size is among the sizes reported.
        assert key("pg_database_size_bytes", database_name=APP_DB) in pushed[name]
    assert pushed["docdb-cluster:sessions"][key("mongo_up")] == 1.0
    assert pushed["docdb-cluster:sessions"][key("mongo_current_connections")] == 17.0
