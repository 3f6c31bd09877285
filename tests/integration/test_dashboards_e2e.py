"""Every panel of every dashboard shows data, end to end: the real Lambda handler collects
from a real PostgreSQL, the moto CloudWatch stand-in and the DocumentDB stand-in, pushes to a
real Pushgateway, a real Prometheus scrapes it (honor_labels), and each panel query, with the
template variables set to this test's targets, is evaluated through Prometheus' HTTP API.

Three function configurations push under one job, as three deployments would: a healthy one
(RDS instance, DocumentDB serverStatus and CloudWatch ids, ElastiCache, plus one DocumentDB
id without any CloudWatch data), one whose PostgreSQL is unreachable and whose CloudWatch id
is an Aurora cluster, so the "down" and Aurora-only series exist too, and one that discovers
a tagged fleet of every kind (moto behind the AwsFront stand-in), with one region denied, so
the fleet dashboard's inventory and discovery-failure series exist. Beside them, a pass of
the ElastiCache engine source over a real redis-server primary and its replica is pushed
under the same job.

The healthy PostgreSQL is this module's own, with what the health panels show: a streaming
replica through a slot, a session waiting (in pg_sleep), a table autovacuum has vacuumed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from middleware_monitoring.config import PushgatewaySettings
from middleware_monitoring.model import Target
from middleware_monitoring.redis.source import RedisSource
from middleware_monitoring.runner import run_pass
from middleware_monitoring.sinks import PushgatewaySink
from tests.dashboards import (
    DASHBOARD_FILES,
    EMITTED_METRICS,
    POSTGRES_RULES_FILE,
    PROMTOOL_ALLOWED_FINDINGS,
    PUSHGATEWAY_METRICS,
    ROOT,
    RULES_FILE,
    interpolate,
    load_dashboard,
    panel_queries,
    parse_label_values,
    variable_query,
    variables,
)
from tests.helpers import close
from tests.integration.pg_helpers import held_vacuum
from tests.standins._process import free_port
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront, Fault, docdb_cluster, docdb_instance
from tests.standins.cloudwatch import Fleet, fleet_env, seed_cloudwatch
from tests.standins.discovered import (
    ACCOUNT,
    REGION,
    create_aurora_cluster,
    create_cache_cluster,
    create_rds_instance,
    declarations_of,
    seed,
)
from tests.standins.docdb import Collection, DocDBServer, running_op
from tests.standins.performance_insights import (
    PerformanceInsightsServer,
    Statement,
    WaitEvent,
)
from tests.standins.performance_insights import Resource as PiResource
from tests.standins.postgres import PostgresServer
from tests.standins.prometheus import Prometheus
from tests.standins.pushgateway import Pushgateway
from tests.standins.rdsosmetrics import aurora_postgres_event, put_event, rds_postgres_event
from tests.standins.redis import TOKEN, RedisServer

JOB = "e2e-dashboards"
PG_UP, PG_DOWN = "e2e-postgres", "e2e-postgres-down"
DOCDB_TARGET = "e2e-docdb"
DOCDB_INSTANCES = ("e2e-docdb-1", "e2e-docdb-2")
DOCDB_CLUSTER = "e2e-docdb-cluster"
DOCDB_NO_DATA = "e2e-docdb-nodata"  # configured, but CloudWatch has nothing for it
REDIS = "e2e-redis-001"
REDIS_PRIMARY, REDIS_REPLICA = "e2e-redis-primary", "e2e-redis-replica"
MONITOR_USER, MONITOR_PASSWORD = "e2e_monitor", "e2e-monitor-pw"
APP_USER, APP_PASSWORD = "e2e_app", "e2e-app-pw"
APP_FILE = ROOT / "functions" / "collector" / "app.py"
# Data pushed a moment ago reaches a 1 s-scrape Prometheus within a few seconds.
QUERY_TIMEOUT = 30.0

HEALTHY_FLEET = Fleet(
    rds_instance="e2e-rds",
    docdb_instances=DOCDB_INSTANCES,
    docdb_clusters=(DOCDB_CLUSTER,),
    elasticache=(REDIS,),
)
AURORA_FLEET = Fleet(
    rds_instance="e2e-aurora",
    rds_type="DBClusterIdentifier",
    docdb_instances=(),
    docdb_clusters=(),
    elasticache=(),
)
CLOUDWATCH_TARGETS = (
    *(f"docdb:{i}" for i in (*DOCDB_INSTANCES, DOCDB_NO_DATA)),
    f"docdb-cluster:{DOCDB_CLUSTER}",
    f"elasticache:{REDIS}",
)
ALL_TARGETS = (PG_UP, PG_DOWN, DOCDB_TARGET, *CLOUDWATCH_TARGETS, REDIS_PRIMARY, REDIS_REPLICA)
DENIED_REGION = "eu-west-1"  # the discovering deployment may not describe there
# What the third deployment discovers (tag team=e2e): target -> (kind, id, node).
DISCOVERED = {
    "e2e-disc-db": ("rds_instance", "e2e-disc-db", None),
    "e2e-disc-aurora": ("aurora_cluster", "e2e-disc-aurora", None),
    "e2e-disc-aurora-1": ("aurora_instance", "e2e-disc-aurora-1", None),
    "e2e-disc-aurora-2": ("aurora_instance", "e2e-disc-aurora-2", None),
    "docdb-cluster:e2e-disc-docdb": ("docdb_cluster", "e2e-disc-docdb", None),
    "docdb:e2e-disc-docdb-1": ("docdb_instance", "e2e-disc-docdb-1", None),
    "elasticache:e2e-disc-cache:0001": ("elasticache_node", "e2e-disc-cache", "0001"),
}


# Discovered PostgreSQL instances: their DbiResourceId (moto gives every instance the same
# one: the front answers these), and those with an Enhanced Monitoring stream.
RESOURCE_IDS = {
    "e2e-disc-db": "db-E2EDISCDB",
    "e2e-disc-aurora-1": "db-E2EDISCAURORA1",
    "e2e-disc-aurora-2": "db-E2EDISCAURORA2",
}
INSIGHTS_TARGETS = ("e2e-disc-db", "e2e-disc-aurora-1")


def _regex(values: tuple[str, ...] | list[str]) -> str:
    """A multi-value variable as Grafana writes it into a Prometheus regex matcher."""
    for value in values:
        assert re.fullmatch(r"[\w:-]+", value), value  # nothing that would need escaping
    return values[0] if len(values) == 1 else "(" + "|".join(values) + ")"


# What a user would select in each dashboard's variables to see this test's targets.
SELECTIONS: dict[str, dict[str, str]] = {
    # With the discovered instances whose Enhanced Monitoring and Performance Insights the
    # OS and DB load panels show (an RDS and an Aurora instance).
    "postgresql.json": {
        "job": JOB,
        "instance": _regex([PG_UP, PG_DOWN, *INSIGHTS_TARGETS]),
        "database_name": _regex(["e2e_shop", "postgres"]),
    },
    "documentdb.json": {
        "job": JOB,
        "instance": DOCDB_TARGET,
        "docdb_instance": _regex(DOCDB_INSTANCES),
        "docdb_cluster": DOCDB_CLUSTER,
    },
    "elasticache.json": {
        "job": JOB,
        "instance": _regex([REDIS_PRIMARY, REDIS_REPLICA]),
        "elasticache": REDIS,
    },
    "collector-health.json": {
        "job": JOB,
        "instance": _regex(ALL_TARGETS),
        "source": _regex(["postgres", "cloudwatch", "mongo", "redis"]),
    },
    "fleet-overview.json": {"job": JOB, "top": "10"},
    "fleet.json": {
        "job": JOB,
        "account": ACCOUNT,
        "region": _regex([REGION, DENIED_REGION]),
        "kind": _regex(sorted({kind for kind, _, _ in DISCOVERED.values()})),
    },
}
# The values each variable query must offer (at least) for this test's data.
OFFERED: dict[tuple[str, str], set[str]] = {
    ("postgresql.json", "job"): {JOB},
    ("postgresql.json", "instance"): {PG_UP, PG_DOWN},
    ("postgresql.json", "database_name"): {"e2e_shop", "postgres"},
    ("documentdb.json", "job"): {JOB},
    ("documentdb.json", "instance"): {DOCDB_TARGET},
    ("documentdb.json", "docdb_instance"): set(DOCDB_INSTANCES),
    ("documentdb.json", "docdb_cluster"): {DOCDB_CLUSTER},
    ("elasticache.json", "job"): {JOB},
    ("elasticache.json", "instance"): {REDIS_PRIMARY, REDIS_REPLICA},
    ("elasticache.json", "elasticache"): {REDIS},
    ("collector-health.json", "job"): {JOB},
    ("collector-health.json", "instance"): set(ALL_TARGETS),
    ("collector-health.json", "source"): {"postgres", "cloudwatch", "mongo", "redis"},
    ("fleet.json", "job"): {JOB},
    ("fleet-overview.json", "job"): {JOB},
    ("fleet.json", "account"): {ACCOUNT},
    ("fleet.json", "region"): {REGION, DENIED_REGION},
    ("fleet.json", "kind"): {kind for kind, _, _ in DISCOVERED.values()},
}


@dataclass
class FakeLambdaContext:
    function_name: str = "middleware-monitoring-e2e"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:e2e"
    aws_request_id: str = "e2e"
    deadline: float = field(default_factory=lambda: time.monotonic() + 30.0)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def _fresh_app() -> ModuleType:
    """app.py as the Lambda runtime loads it: a new module, so a new (cold) function instance."""
    spec = importlib.util.spec_from_file_location("e2e_app", APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _invoke(environ: dict[str, str]) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        app = _fresh_app()
        try:
            result: dict[str, Any] = app.lambda_handler({}, FakeLambdaContext())
        finally:
            # The function instance ends here: its warm connections must not outlive it
            # (other tests count the sessions on the shared PostgreSQL).
            if app._runtime is not None:
                close(app._runtime)
        return result


def _push_redis(pushgateway: Pushgateway) -> None:
    """One pass of the engine source over a primary (keys, a replica, an error reply: every
    INFO series exists) and its replica, pushed as the function pushes its targets."""
    # maxmemory as ElastiCache always sets it (the memory panel shows the limit).
    primary_server = RedisServer(password=TOKEN, maxmemory="64mb", maxmemory_policy="allkeys-lru")
    with primary_server as primary, RedisServer(replica_of=primary) as replica:
        replica.wait_link_up()
        primary.admin.set("e2e:key", "v")
        primary.admin.get("e2e:key")
        primary.admin.get("e2e:missing")
        with pytest.raises(Exception, match="unknown command"):
            primary.admin.execute_command("NO-SUCH-COMMAND")
        sources = [
            RedisSource(primary.settings(REDIS_PRIMARY, password=TOKEN)),
            RedisSource(replica.settings(REDIS_REPLICA)),
        ]
        try:
            result = run_pass(
                [Target(REDIS_PRIMARY, [sources[0]]), Target(REDIS_REPLICA, [sources[1]])],
                deadline=time.monotonic() + 20,
                max_workers=2,
                collector_instance="collector-redis",
            )
        finally:
            for source in sources:
                source.close()
    assert [(t.target, t.up) for t in result.targets] == [
        (REDIS_PRIMARY, True),
        (REDIS_REPLICA, True),
    ]
    PushgatewaySink(PushgatewaySettings(pushgateway.url, JOB, None, None, 5.0, 1)).send(result)


@dataclass
class Deployment:
    healthy_env: dict[str, str]
    down_env: dict[str, str]
    summaries: list[dict[str, Any]]
    discovery_env: dict[str, str] = field(default_factory=dict)


def _prepare_postgres(server: PostgresServer) -> None:
    server.create_role(MONITOR_USER, MONITOR_PASSWORD, monitor=True)
    server.create_role(APP_USER, APP_PASSWORD, monitor=False)
    server.create_database("e2e_shop", owner=APP_USER)
    server.create_extension(database="postgres")


def _poll(server: PostgresServer, sql: str, what: str) -> None:
    deadline = time.monotonic() + 60
    while not server.execute_as_superuser(sql):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def pg15() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 of this module's own (it is replicated and vacuumed), with a streaming
    replica through a slot and a table autovacuum has vacuumed (every second here)."""
    with PostgresServer(15, settings={"autovacuum_naptime": 1}) as primary:
        _prepare_postgres(primary)
        primary.execute_as_superuser(
            "CREATE TABLE e2e_vacuumed (id int) WITH (autovacuum_vacuum_threshold = 0,"
            " autovacuum_vacuum_scale_factor = 0)"
        )
        primary.execute_as_superuser("INSERT INTO e2e_vacuumed SELECT generate_series(1, 100)")
        primary.execute_as_superuser("DELETE FROM e2e_vacuumed WHERE id <= 10")
        replica = primary.start_replica(slot="e2e_slot", settings={"cluster_name": "e2e-replica"})
        try:
            _poll(
                primary,
                "SELECT 1 FROM pg_stat_user_tables WHERE relname = 'e2e_vacuumed'"
                " AND last_autovacuum IS NOT NULL",
                "an autovacuum of e2e_vacuumed",
            )
            _poll(
                primary,
                "SELECT 1 FROM pg_stat_replication WHERE application_name = 'e2e-replica'"
                " AND state = 'streaming' AND replay_lsn = sent_lsn",
                "the replica streaming",
            )
            yield primary
        finally:
            replica.cleanup()


def _discovered_fleet(moto: MotoServer) -> AwsFront:
    """A fleet tagged team=e2e of every kind, with CloudWatch data for all it is asked, a
    pending maintenance action and a certificate date; describing is denied in one region."""
    rds = moto.client("rds")
    tags = {"team": "e2e"}
    create_rds_instance(rds, "e2e-disc-db", tags=tags)
    create_aurora_cluster(
        rds, "e2e-disc-aurora", members=("e2e-disc-aurora-1", "e2e-disc-aurora-2"), tags=tags
    )
    create_cache_cluster(moto.client("elasticache"), "e2e-disc-cache", tags=tags)
    front = AwsFront(moto.endpoint_url).start()
    front.docdb_clusters.append(
        docdb_cluster(
            "e2e-disc-docdb",
            account=ACCOUNT,
            region=REGION,
            members={"e2e-disc-docdb-1": True},
            host="docdb.invalid",
            port=27017,
            tags=tags,
        )
    )
    valid_till = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    front.docdb_instances.append(
        docdb_instance(
            "e2e-disc-docdb-1",
            cluster="e2e-disc-docdb",
            account=ACCOUNT,
            region=REGION,
            host="docdb.invalid",
            port=27017,
            certificate_valid_till=valid_till,
            resource_id="db-E2EDISCDOCDB1",
        )
    )
    front.certificates["e2e-disc-db"] = valid_till
    # Enhanced Monitoring streams of an RDS and an Aurora instance (the others have none).
    front.resource_ids.update(RESOURCE_IDS)
    logs, now = moto.client("logs"), time.time()
    put_event(logs, RESOURCE_IDS["e2e-disc-db"], rds_postgres_event("", "e2e-disc-db", now), now)
    aurora = aurora_postgres_event("", "e2e-disc-aurora-1", now)
    put_event(logs, RESOURCE_IDS["e2e-disc-aurora-1"], aurora, now)
    front.pending[f"arn:aws:rds:{REGION}:{ACCOUNT}:db:e2e-disc-db"] = [{"Action": "system-update"}]
    front.faults.append(Fault("AccessDenied", "not authorized", region=DENIED_REGION))
    seed(
        moto.client("cloudwatch"),
        [
            d
            for kind, ident, node in DISCOVERED.values()
            for d in declarations_of(kind, ident, node)
        ],
    )
    return front


@pytest.fixture(scope="module")
def deployment(
    pg15: PostgresServer,
    pushgateway: Pushgateway,
    prometheus: Prometheus,
    moto_server: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    pushgateway.wipe()
    moto_server.reset()
    seed_cloudwatch(moto_server.endpoint_url, HEALTHY_FLEET)
    seed_cloudwatch(moto_server.endpoint_url, AURORA_FLEET)
    _prepare_postgres(pg15)
    # The bloat estimate reads pg_stats, which shows a table only to a login that may read it.
    pg15.execute_as_superuser(f"GRANT SELECT ON e2e_vacuumed TO {MONITOR_USER}")
    pg15.execute_as_superuser("ANALYZE e2e_vacuumed")
    # A vacuum running through the passes (the vacuum panels), in e2e_shop: PG_DATABASES=all.
    # Started before the sleeper: a statement running since before its rows were written
    # would spare them the freezing the vacuum waits for.
    vacuum = held_vacuum(
        pg15,
        "e2e_shop",
        "e2e_vacuuming",
        lambda: pg15.connect(user=APP_USER, password=APP_PASSWORD, database="e2e_shop"),
    )
    vacuum.__enter__()
    # An application session stays open during the passes (connections per user), after a
    # little work that touches shared buffers (statement table, buffer hit percent).
    app = pg15.connect(user=APP_USER, password=APP_PASSWORD, database="e2e_shop")
    # And one sleeps: a session waiting on a wait event (Timeout/PgSleep).
    sleeper = pg15.connect(user=APP_USER, password=APP_PASSWORD, database="e2e_shop")
    sleeper_pid = sleeper.run("SELECT pg_backend_pid()")[0][0]

    def sleep() -> None:
        with contextlib.suppress(Exception):  # cancelled at the end
            sleeper.run("SELECT pg_sleep(300)")

    sleeping = threading.Thread(target=sleep, daemon=True)
    sleeping.start()
    # A collection and an operation in progress: every DocumentDB series exists (SPEC 18).
    docdb = DocDBServer(
        collections={("shop", "orders"): Collection(count=10, size=4096, total_index_size=1024)},
        current_ops=[running_op(7, "query", "shop.orders", 3, {"find": "orders"})],
    ).start()
    front = _discovered_fleet(moto_server)
    # Performance Insights of the discovered PostgreSQL instances.
    pi = PerformanceInsightsServer().start()
    for resource_id in RESOURCE_IDS.values():
        pi.resources[resource_id] = PiResource(
            wait_events=[WaitEvent("CPU", "CPU", 1.5), WaitEvent("IO", "DataFileRead", 0.5)],
            statements=[Statement("E2E1", "SELECT * FROM orders WHERE id = ?", 1.25)],
        )
    try:
        _poll(
            pg15,
            f"SELECT 1 FROM pg_stat_activity WHERE pid = {int(sleeper_pid)}"
            " AND wait_event = 'PgSleep'",
            "a session in pg_sleep",
        )
        app.run("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, amount int)")
        for amount in range(20):
            app.run("INSERT INTO orders (amount) VALUES (:a)", a=amount)
            app.run("SELECT count(*), sum(amount) FROM orders")
        mongo_info = {**docdb.mongo_info(), "name": DOCDB_TARGET}
        # A custom query (PG_QUERIES_FILE): its own series are the user's, not in the list.
        queries_file = tmp_path_factory.mktemp("queries") / "queries.yaml"
        queries_file.write_text(
            "e2e_custom:\n  query: SELECT count(*) AS rows FROM pg_database\n"
            "  metrics: [{rows: {usage: GAUGE, description: Databases}}]\n"
        )
        common = {
            **moto_server.env(),
            "PUSHGATEWAY_URL": pushgateway.url,
            "PUSHGATEWAY_JOB": JOB,
            "POWERTOOLS_SERVICE_NAME": "middleware-monitoring",
            "LOG_LEVEL": "WARNING",
        }
        healthy_env = {
            **common,
            **pg15.collector_env(user=MONITOR_USER, password=MONITOR_PASSWORD),
            **fleet_env(HEALTHY_FLEET),
            "AWS_MONGO_INSTANCE_INFO": json.dumps(
                {
                    "DBInstanceIdentifier": [*DOCDB_INSTANCES, DOCDB_NO_DATA],
                    "DBClusterIdentifier": [DOCDB_CLUSTER],
                }
            ),
            "PG_TARGET_NAME": PG_UP,
            "PG_QUERIES_FILE": str(queries_file),
            "PG_DATABASES": "all",
            "PG_COLLECTORS": "+bloat",
            "MONGO_INFO": json.dumps(mongo_info),
        }
        down_env = {
            **common,
            **pg15.collector_env(user=MONITOR_USER, password=MONITOR_PASSWORD),
            **fleet_env(AURORA_FLEET),
            "PG_PORT": str(free_port()),  # nothing listens there
            "PG_TARGET_NAME": PG_DOWN,
            "COLLECTOR_INSTANCE_NAME": "collector-aurora",
        }
        discovery_env = {
            **common,
            **front.env(),
            "DISCOVER": "rds,aurora,docdb,elasticache",
            "DISCOVER_TAGS": "team=e2e",
            "DISCOVER_REGIONS": f"{REGION},{DENIED_REGION}",
            "DISCOVER_TAG_LABELS": "team",
            "COLLECTOR_INSTANCE_NAME": "collector-discovery",
            **pi.env(),
            "ENHANCED_MONITORING": "true",
            "PERFORMANCE_INSIGHTS": "true",
        }
        summaries = [_invoke(healthy_env), _invoke(down_env), _invoke(discovery_env)]
        _push_redis(pushgateway)
        yield Deployment(healthy_env, down_env, summaries, discovery_env)
    finally:
        vacuum.__exit__(None, None, None)
        pg15.execute_as_superuser("SELECT pg_cancel_backend(:pid)", pid=sleeper_pid)
        sleeping.join(timeout=10)
        sleeper.close()
        app.close()
        docdb.stop()
        front.stop()
        pi.stop()


def test_the_handler_pushed_both_deployments(deployment: Deployment) -> None:
    healthy, down, discovering = deployment.summaries
    assert (discovering["targets_up"], discovering["targets_down"]) == (len(DISCOVERED), [])
    assert healthy["targets_down"] == [f"docdb:{DOCDB_NO_DATA}"]
    assert healthy["targets_up"] == 6
    assert down["targets_down"] == [PG_DOWN]
    assert down["targets_up"] == 0


def test_pushed_names_are_exactly_the_emitted_list(
    deployment: Deployment, pushgateway: Pushgateway
) -> None:
    """The list the static dashboard test checks against, held to a real pass."""
    names = {
        sample.name
        for family in text_string_to_metric_families(pushgateway.metrics_text())
        for sample in family.samples
        if sample.labels.get("job") == JOB
    }
    assert names == EMITTED_METRICS | PUSHGATEWAY_METRICS | {"e2e_custom_rows"}


def _wait(prometheus: Prometheus, expr: str) -> list[dict[str, Any]]:
    """Poll until the query returns a series; [] if it never does within the timeout."""
    deadline = time.monotonic() + QUERY_TIMEOUT
    while True:
        result = prometheus.query(expr)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_panel_query_returns_data(
    name: str, deployment: Deployment, prometheus: Prometheus
) -> None:
    queries = panel_queries(name)
    assert queries
    empty = [
        f"{query}\n    evaluated: {expr}"
        for query in queries
        if not _wait(prometheus, expr := interpolate(query.expr, SELECTIONS[name]))
    ]
    assert not empty, "panels without data:\n" + "\n".join(empty)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_variable_queries_offer_the_targets(
    name: str, deployment: Deployment, prometheus: Prometheus
) -> None:
    for variable in variables(load_dashboard(name)).values():
        if variable["type"] != "query":
            continue
        selector, label = parse_label_values(variable_query(variable))
        # What Grafana's label_values(selector, label) lists, as a PromQL query.
        expr = f"count by ({label}) ({interpolate(selector, SELECTIONS[name])})"
        wanted = OFFERED[(name, variable["name"])]
        result = prometheus.wait_for(expr, timeout=QUERY_TIMEOUT, predicate=_offers(wanted, label))
        assert wanted <= {s["metric"].get(label) for s in result}


def _offers(wanted: set[str], label: str) -> Callable[[list[dict[str, Any]]], bool]:
    def predicate(result: list[dict[str, Any]]) -> bool:
        return wanted <= {s["metric"].get(label) for s in result}

    return predicate


def _rules() -> dict[str, str]:
    data = yaml.safe_load(RULES_FILE.read_text())
    return {rule["alert"]: rule["expr"] for group in data["groups"] for rule in group["rules"]}


def _ours(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in result if s["metric"].get("job") == JOB]


def test_alert_expressions_on_real_data(deployment: Deployment, prometheus: Prometheus) -> None:
    rules = _rules()
    # The DocumentDB id without any CloudWatch datapoint (no_data, as a stopped instance) is
    # down too, but does not page: MiddlewareSourceDown leaves it out.
    expected_down = {(PG_DOWN, "postgres")}

    def down(result: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(s["metric"]["instance"], s["metric"]["source"]) for s in _ours(result)}

    prometheus.wait_for(
        rules["MiddlewareSourceDown"],
        timeout=QUERY_TIMEOUT,
        predicate=lambda r: down(r) == expected_down,
    )
    # Six instance metrics of the id without data; the Aurora deployment misses nothing.
    missing = prometheus.wait_for(
        rules["MiddlewareCloudWatchValuesMissing"],
        timeout=QUERY_TIMEOUT,
        predicate=lambda r: bool(_ours(r)),
    )
    assert {(s["metric"]["instance"], s["value"][1]) for s in _ours(missing)} == {
        ("collector", "6")
    }
    # The values were pushed moments ago and every query answered.
    for fresh in (
        "MiddlewareCollectorStale",
        "MiddlewareCollectorAbsent",
        "MiddlewareCloudWatchQueriesFailing",
    ):
        result = prometheus.query(rules[fresh])
        assert [s for s in result if s["metric"].get("job") in (None, JOB)] == [], fresh
    # The staleness expression itself has data to compare: the age of each collector's shard.
    age, _, threshold = rules["MiddlewareCollectorStale"].partition(
        " > on (job, collector, shard) "
    )
    shards = {
        (collector, "0")
        for collector in ("collector", "collector-redis", "collector-aurora", "collector-discovery")
    }

    def per_shard(result: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(s["metric"]["collector"], s["metric"]["shard"]) for s in _ours(result)}

    # Waited for: the last push (the Redis pass's shard) may not be scraped yet.
    prometheus.wait_for(age, timeout=QUERY_TIMEOUT, predicate=lambda r: per_shard(r) == shards)
    # ... and so does its threshold, which follows the schedule: 5 minutes at the least.
    limits = prometheus.wait_for(
        threshold, timeout=QUERY_TIMEOUT, predicate=lambda r: per_shard(r) == shards
    )
    assert all(float(s["value"][1]) >= 300 for s in _ours(limits))
    # Each target's freshness (freshness.rules.yml): every target lags its shard's pass by
    # less than three passes here, and the lag itself is there to compare.
    freshness = yaml.safe_load((RULES_FILE.parent / "freshness.rules.yml").read_text())
    (stale,) = [r["expr"] for g in freshness["groups"] for r in g["rules"]]
    assert _ours(prometheus.query(stale)) == []
    prometheus.wait_for(
        stale.partition(" > on (job, collector, shard) group_left ")[0],
        timeout=QUERY_TIMEOUT,
        predicate=lambda r: {s["metric"]["instance"] for s in _ours(r)} >= {PG_UP, DOCDB_TARGET},
    )


def test_postgres_alert_expressions_on_real_data(
    deployment: Deployment, prometheus: Prometheus
) -> None:
    """Each PostgreSQL rule's expression without its threshold has the healthy target's data
    (its selectors and label matching fit what is pushed); with it, nothing fires there."""
    data = yaml.safe_load(POSTGRES_RULES_FILE.read_text())
    rules = {rule["alert"]: rule["expr"] for group in data["groups"] for rule in group["rules"]}
    for alert, expr in rules.items():
        measured, _, threshold = expr.rpartition(" > ")
        assert measured and threshold, alert
        result = prometheus.wait_for(
            measured, timeout=QUERY_TIMEOUT, predicate=lambda r: bool(_ours(r))
        )
        assert PG_UP in {s["metric"]["instance"] for s in _ours(result)}, alert
        assert _ours(prometheus.query(expr)) == [], alert


def _promtool_findings(environ: dict[str, str], expected: str = "pg_up{") -> set[tuple[str, str]]:
    """`promtool check metrics` on one pass printed by `python -m middleware_monitoring collect`."""
    env = {**os.environ, **environ}
    env.pop("PUSHGATEWAY_URL")
    done = subprocess.run(
        [sys.executable, "-m", "middleware_monitoring", "collect"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    exposition = done.stdout
    assert expected in exposition
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (make install does)"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    findings: set[tuple[str, str]] = set()
    for line in (checked.stdout + checked.stderr).splitlines():
        metric, _, message = line.strip().partition(" ")
        if metric:
            findings.add((metric, message))
    return findings


def test_promtool_finds_only_the_kept_legacy_names(deployment: Deployment) -> None:
    findings = (
        _promtool_findings(deployment.healthy_env)
        | _promtool_findings(deployment.down_env)
        | _promtool_findings(deployment.discovery_env, "aws_resource_info{")
    )
    assert findings == PROMTOOL_ALLOWED_FINDINGS


def test_grafana_dir_is_what_provisioning_mounts() -> None:
    """The provider's path is inside the directory the README mounts grafana/ at."""
    provider = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/middleware-monitoring.yaml").read_text()
    )["providers"][0]
    mounted = Path("/etc/grafana/middleware-monitoring")
    relative = Path(provider["options"]["path"]).relative_to(mounted)
    assert (ROOT / "grafana" / relative).is_dir()
