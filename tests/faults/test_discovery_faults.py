"""Discovery faults (SPEC 10) through the Lambda handler, against moto behind the AwsFront
stand-in, pushed to the real Pushgateway: Describe throttled, access denied in one region,
an assumed role refused, a discovered instance deleted, a tag removed.

A failing account/region/kind keeps its last known targets (their values still go out),
reports middleware_discovery_up 0 with its reason, and deletes nothing: the group of a
resource that left discovery meanwhile (a cache cluster whose tag was removed, found so by a
healthy unit of the same pass) stays until a pass whose discovery is complete."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from tests.faults import harness
from tests.faults.conftest import Row, push_env
from tests.faults.harness import Expect, Invocation, LambdaFunction, Samples, key
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront, Fault
from tests.standins.cloudwatch import DEMO_VALUES
from tests.standins.discovered import (
    ACCOUNT,
    REGION,
    create_aurora_cluster,
    create_cache_cluster,
    create_rds_instance,
    declarations_of,
    seed,
)
from tests.standins.pushgateway import Pushgateway

Make = Callable[[Mapping[str, str]], LambdaFunction]
OTHER_REGION = "eu-west-1"
OTHER_ACCOUNT = "210987654321"
ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/monitoring-discovery"
RETIRED = "retired-db"
CANARY = "elasticache:carts-002:0001"
PAYMENTS = {"team": "payments"}
KINDS = ("rds", "aurora", "elasticache")


@pytest.fixture
def front(clean_moto: MotoServer) -> Iterator[AwsFront]:
    with AwsFront(clean_moto.endpoint_url) as made:
        yield made


def place_fleet(moto: MotoServer, region: str = REGION, **credentials: str) -> dict[str, Samples]:
    """An RDS instance, an Aurora cluster with its writer and a cache cluster in one account
    and region, with CloudWatch data; what each target must push (exactly)."""
    rds = moto.client("rds", region_name=region, **credentials)
    create_rds_instance(rds, "orders-db", tags=PAYMENTS)
    create_rds_instance(rds, "billing-db", tags=PAYMENTS, backup_days=14)
    create_aurora_cluster(rds, "ledger", members=("ledger-1",), tags=PAYMENTS)
    elasticache = moto.client("elasticache", region_name=region, **credentials)
    create_cache_cluster(elasticache, "carts-001", tags=PAYMENTS)
    create_cache_cluster(elasticache, "carts-002", tags=PAYMENTS)
    resources = {
        "orders-db": ("rds_instance", "orders-db", None),
        "billing-db": ("rds_instance", "billing-db", None),
        "ledger": ("aurora_cluster", "ledger", None),
        "ledger-1": ("aurora_instance", "ledger-1", None),
        "elasticache:carts-001:0001": ("elasticache_node", "carts-001", "0001"),
        "elasticache:carts-002:0001": ("elasticache_node", "carts-002", "0001"),
    }
    cloudwatch = moto.client("cloudwatch", region_name=region, **credentials)
    seed(cloudwatch, [d for kind, i, n in resources.values() for d in declarations_of(kind, i, n)])
    cpu = DEMO_VALUES["CPUUtilization"]
    return {
        "orders-db": {
            key("aws_rds_backup_retention_days"): 7.0,
            key("pg_cpu_utilization"): cpu,
        },
        "billing-db": {
            key("aws_rds_backup_retention_days"): 14.0,
            key("pg_cpu_utilization"): cpu,
        },
        "ledger": {key("aws_rds_pending_maintenance_actions"): 0.0, key("pg_cpu_utilization"): cpu},
        "ledger-1": {key("pg_cpu_utilization"): cpu},
        "elasticache:carts-001:0001": {
            key(
                "redis_network_bandwidthOut_allowance_exceeded",
                ElastiCache="carts-001",
                CacheNodeId="0001",
            ): DEMO_VALUES["NetworkBandwidthOutAllowanceExceeded"]
        },
        CANARY: {
            key(
                "redis_network_bandwidthOut_allowance_exceeded",
                ElastiCache="carts-002",
                CacheNodeId="0001",
            ): DEMO_VALUES["NetworkBandwidthOutAllowanceExceeded"]
        },
    }


def untag_canary(moto: MotoServer) -> None:
    """carts-002 leaves discovery (its tag removed): a healthy unit's change in the pass."""
    moto.client("elasticache").remove_tags_from_resource(
        ResourceName=f"arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:carts-002",
        TagKeys=["team"],
    )


def suffixed(expected: dict[str, Samples], account: str, region: str) -> dict[str, Samples]:
    return {f"{name}@{account}.{region}": samples for name, samples in expected.items()}


def push_retired(gateway: Pushgateway, job: str) -> None:
    """A group this collector pushed for a resource discovery no longer finds."""
    registry = CollectorRegistry()
    Gauge("middleware_collector_info", "owner", ["collector"], registry=registry).labels(
        "collector"
    ).set(1)
    push_to_gateway(gateway.url, job=job, registry=registry, grouping_key={"instance": RETIRED})


def environ(moto: MotoServer, front: AwsFront, gateway: Pushgateway, job: str, **more: str):
    return {
        **moto.env(),
        **front.env(),
        **push_env(gateway.url, job),
        "DISCOVER": ",".join(KINDS),
        "DISCOVER_TAGS": "team=payments",
        "DISCOVER_MAX_AGE_SECONDS": "0",  # every pass refreshes: the fault is met at once
        **more,
    }


def healthy(expected: dict[str, Samples]) -> dict[str, tuple[Samples, frozenset[str]]]:
    names = frozenset({"aws_resource_info", "middleware_collector_up"})
    return {name: (samples, names) for name, samples in expected.items()}


def discovery_state(inv: Invocation) -> dict[tuple[str, str, str], tuple[float, str | None]]:
    """(account, region, kind) -> (up, reason) as the collector's group says."""
    collector = inv.pushed("collector")
    state: dict[tuple[str, str, str], tuple[float, str | None]] = {}
    for (name, labels), value in collector.items():
        fields = dict(labels)
        unit = (fields.get("account", ""), fields.get("region", ""), fields.get("kind", ""))
        if name == "middleware_discovery_up":
            state[unit] = (value, state.get(unit, (0.0, None))[1])
        elif name == "middleware_discovery_failure":
            state[unit] = (state.get(unit, (0.0, None))[0], fields["reason"])
    return state


def observe_units(inv: Invocation, kept: str) -> str:
    down = sorted(
        f"{k}@{r} {reason}" for (a, r, k), (up, reason) in discovery_state(inv).items() if not up
    )
    return f"units down: {', '.join(down) or '-'}; {kept} " + (
        "kept" if kept in inv.pushed.groups else "gone"
    )


# A pass waits for a refresh it starts at most a share of its budget (10% once warm): a
# budget this long leaves botocore's retries with backoff (a few seconds) inside that share,
# so each pass sees its own refresh's outcome.
REMAINING_MILLIS = 120_000


def run(
    row: Row,
    fn: LambdaFunction,
    want: Expect,
    inject: Callable[[], None],
    heal: Callable[[], None],
    *,
    kept: str,
    back: Mapping[str, tuple[Samples, frozenset[str]]] | None = None,
) -> Invocation:
    """The harness's shape (inject, a pass, heal, a pass) with a target that is no longer
    one (``kept``: untagged in a unit that still succeeds, or a group of the per-target
    layout): the failing units keep their last known targets, nothing more, so it is gone
    from the shard's group with the failing pass already, and stays gone."""
    inject()
    try:
        failed = fn.invoke(REMAINING_MILLIS)
    finally:
        heal()
    row.observed = harness.observe(failed, want) + "; " + observe_units(failed, kept)
    recovered = fn.invoke(REMAINING_MILLIS)
    row.observed += "; next pass " + ("recovered" if not recovered.problems() else "still down")
    harness.check_fault_pass(failed, want)
    harness.check_recovered(
        recovered, Expect(want.job, {}, {**want.healthy, **(back or {})}, want.secrets)
    )
    assert kept not in failed.pushed.groups
    assert kept not in recovered.pushed.groups
    return failed


def test_describe_throttled(
    row: Row,
    clean_moto: MotoServer,
    front: AwsFront,
    pushgateway: Pushgateway,
    job: str,
    function: Make,
) -> None:
    row.fault = "DescribeDBInstances throttled (every attempt)"
    row.expected = "rds, aurora down throttled after 3 tries; their last known targets sent"
    expected = place_fleet(clean_moto)
    fn = function(environ(clean_moto, front, pushgateway, job))
    _pass_that_finds(fn, expected, job)
    before = front.calls_snapshot()["DescribeDBInstances"]
    remaining = {name: samples for name, samples in expected.items() if name != CANARY}
    want = Expect(job, {}, healthy(remaining), also_logged=("discovery failed",) * 2)
    fault = Fault("Throttling", "Rate exceeded", action="DescribeDBInstances")

    def inject() -> None:
        front.faults.append(fault)
        untag_canary(clean_moto)

    failed = run(row, fn, want, inject, front.faults.clear, kept=CANARY)
    assert {unit: state for unit, state in discovery_state(failed).items()} == {
        (ACCOUNT, REGION, "rds"): (0.0, "throttled"),
        (ACCOUNT, REGION, "aurora"): (0.0, "throttled"),
        (ACCOUNT, REGION, "elasticache"): (1.0, None),
    }
    # Each of the two kinds tried its call 3 times (botocore's standard retries), then gave
    # up; the recovered pass made one call per kind again.
    assert front.calls_snapshot()["DescribeDBInstances"] - before == 2 * 3 + 2


def test_access_denied_in_one_region(
    row: Row,
    clean_moto: MotoServer,
    front: AwsFront,
    pushgateway: Pushgateway,
    job: str,
    function: Make,
) -> None:
    row.fault = f"access denied in {OTHER_REGION} (every call there)"
    row.expected = f"{OTHER_REGION} units down auth_failed, {REGION} up; all targets sent"
    expected = {
        **place_fleet(clean_moto),
        **suffixed(place_fleet(clean_moto, OTHER_REGION), ACCOUNT, OTHER_REGION),
    }
    fn = function(
        environ(clean_moto, front, pushgateway, job, DISCOVER_REGIONS=f"{REGION},{OTHER_REGION}")
    )
    _pass_that_finds(fn, expected, job)
    remaining = {name: samples for name, samples in expected.items() if name != CANARY}
    want = Expect(job, {}, healthy(remaining), also_logged=("discovery failed",) * 3)
    fault = Fault(
        "AccessDenied",
        "User is not authorized to perform this action",
        region=OTHER_REGION,
    )

    def inject() -> None:
        front.faults.append(fault)
        untag_canary(clean_moto)

    failed = run(row, fn, want, inject, front.faults.clear, kept=CANARY)
    assert discovery_state(failed) == {
        **{(ACCOUNT, REGION, kind): (1.0, None) for kind in KINDS},
        **{(ACCOUNT, OTHER_REGION, kind): (0.0, "auth_failed") for kind in KINDS},
    }
    messages = [line for line in failed.logs if line["message"] == "discovery failed"]
    assert sorted((line["region"], line["kind"], line["reason"]) for line in messages) == [
        (OTHER_REGION, kind, "auth_failed") for kind in sorted(KINDS)
    ]


def test_assumed_role_refused(
    row: Row,
    clean_moto: MotoServer,
    front: AwsFront,
    pushgateway: Pushgateway,
    job: str,
    function: Make,
) -> None:
    row.fault = "AssumeRole refused for the other account's role (cold start)"
    row.expected = (
        "that account's units down assume_role_failed; own account sent; next pass finds it"
    )
    own = place_fleet(clean_moto)
    assumed = clean_moto.client("sts").assume_role(RoleArn=ROLE, RoleSessionName="setup")[
        "Credentials"
    ]
    credentials = {
        "aws_access_key_id": assumed["AccessKeyId"],
        "aws_secret_access_key": assumed["SecretAccessKey"],
        "aws_session_token": assumed["SessionToken"],
    }
    other = suffixed(place_fleet(clean_moto, **credentials), OTHER_ACCOUNT, REGION)
    fn = function(environ(clean_moto, front, pushgateway, job, DISCOVER_ROLE_ARNS=ROLE))
    front.calls.clear()
    want = Expect(job, {}, healthy(own), also_logged=("discovery failed",) * 3)
    fault = Fault(
        "AccessDenied",
        "not authorized to perform: sts:AssumeRole",
        action="AssumeRole",
        role_arn=ROLE,
    )
    # Pushed before this function instance's cold start, which reads the job's groups.
    push_retired(pushgateway, job)
    failed = run(
        row,
        fn,
        want,
        lambda: front.faults.append(fault),
        front.faults.clear,
        kept=RETIRED,
        back=healthy(other),
    )
    assert discovery_state(failed) == {
        **{(ACCOUNT, REGION, kind): (1.0, None) for kind in KINDS},
        **{(OTHER_ACCOUNT, REGION, kind): (0.0, "assume_role_failed") for kind in KINDS},
    }
    # Each kind's first call asked for the role's credentials once; the recovered pass
    # assumed it once for all three.
    assert front.calls_snapshot()["AssumeRole"] == 3 + 1
    assert not set(other) & set(failed.pushed.groups)


def _pass_that_finds(fn: LambdaFunction, expected: dict[str, Samples], job: str) -> Invocation:
    inv = fn.invoke(REMAINING_MILLIS)
    harness.check_recovered(inv, Expect(job, {}, healthy(expected)))
    return inv


def test_discovered_instance_deleted(
    row: Row,
    clean_moto: MotoServer,
    front: AwsFront,
    pushgateway: Pushgateway,
    job: str,
    function: Make,
) -> None:
    row.fault = "a discovered RDS instance deleted between passes"
    row.expected = "its series gone from the Pushgateway with the next PUT, no DELETE; others sent"
    expected = place_fleet(clean_moto)
    fn = function(environ(clean_moto, front, pushgateway, job))
    _pass_that_finds(fn, expected, job)
    assert "billing-db" in harness.pushed(pushgateway, job).groups
    clean_moto.client("rds").delete_db_instance(
        DBInstanceIdentifier="billing-db", SkipFinalSnapshot=True
    )
    after = fn.invoke(REMAINING_MILLIS)
    remaining = {k: v for k, v in expected.items() if k != "billing-db"}
    row.observed = f"instances {sorted(after.pushed.groups)}; " + "; ".join(
        f"{line['message']} {line.get('groups', '')}"
        for line in after.logs
        if "groups" in line["message"]
    )
    harness.check_recovered(after, Expect(job, {}, healthy(remaining)))
    assert sorted(after.pushed.groups) == sorted([*remaining, "collector"])
    # The shard's one group was replaced: nothing to delete.
    assert [line for line in after.logs if "groups" in line["message"]] == []


def test_tag_removed(
    row: Row,
    clean_moto: MotoServer,
    front: AwsFront,
    pushgateway: Pushgateway,
    job: str,
    function: Make,
) -> None:
    row.fault = "the filter's tag removed from a discovered RDS instance"
    row.expected = "it leaves discovery: its group deleted on the next pass; others sent"
    expected = place_fleet(clean_moto)
    fn = function(environ(clean_moto, front, pushgateway, job))
    _pass_that_finds(fn, expected, job)
    rds = clean_moto.client("rds")
    arn = rds.describe_db_instances(DBInstanceIdentifier="orders-db")["DBInstances"][0][
        "DBInstanceArn"
    ]
    rds.remove_tags_from_resource(ResourceName=arn, TagKeys=["team"])
    after = fn.invoke(REMAINING_MILLIS)
    remaining = {k: v for k, v in expected.items() if k != "orders-db"}
    row.observed = f"groups {sorted(after.pushed.groups)}"
    harness.check_recovered(after, Expect(job, {}, healthy(remaining)))
    assert sorted(after.pushed.groups) == sorted([*remaining, "collector"])
    unit: Any = discovery_state(after)[(ACCOUNT, REGION, "rds")]
    assert unit == (1.0, None)
    assert (
        after.pushed("collector")[
            key("middleware_discovery_resources", account=ACCOUNT, region=REGION, kind="rds")
        ]
        == 1.0
    )
