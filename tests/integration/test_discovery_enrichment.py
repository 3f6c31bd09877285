"""Only the calls that list resources may fail a discovery unit. DescribePendingMaintenanceActions
only enriches what the lists found: when it fails (not implemented by moto, denied to a role
whose policy someone else wrote) the resources are still found and collected, the
pending-maintenance series are absent, and middleware_discovery_enrichment_up says why."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from middleware_monitoring.config import load_settings
from middleware_monitoring.runtime import Runtime
from tests.helpers import Closer, log_records
from tests.standins.aws import MotoServer
from tests.standins.aws_front import AwsFront, Fault
from tests.standins.discovered import ACCOUNT, REGION, create_rds_instance

pytestmark = pytest.mark.integration

CALL = "DescribePendingMaintenanceActions"
INSTANCES = ("orders-db", "billing-db", "ledger-db")
PENDING = "aws_rds_pending_maintenance_actions"
Samples = dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    with log_records(logging.WARNING) as records:
        yield records


def three_tagged_instances(moto: MotoServer) -> None:
    rds = moto.client("rds")
    for name in INSTANCES:
        create_rds_instance(rds, name, tags={"team": "payments"})


def pushed(runtime: Runtime) -> Samples:
    result = runtime.collect(30.0)
    return {
        group.target: {
            (s.name, frozenset(s.labels.items())): s.value
            for family in group.families
            for s in family.samples
        }
        for group in result.groups()
    }


def series(samples: Samples, target: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples[target].items() if n == name}


def enrichment(samples: Samples) -> tuple[dict[str, float], dict[str, float]]:
    """(call -> up, call/reason -> failure) of the collector's group."""
    up = {
        dict(labels)["call"]: v
        for labels, v in series(samples, "collector", "middleware_discovery_enrichment_up").items()
    }
    failure = {
        f"{dict(labels)['call']}/{dict(labels)['reason']}": v
        for labels, v in series(
            samples, "collector", "middleware_discovery_enrichment_failure"
        ).items()
    }
    return up, failure


def test_a_call_moto_does_not_implement_leaves_the_instances_found(
    clean_moto: MotoServer,
    closer: Closer,
    monkeypatch: pytest.MonkeyPatch,
    records: list[logging.LogRecord],
) -> None:
    three_tagged_instances(clean_moto)
    # Credentials and endpoint as botocore reads them in Lambda: from the environment.
    for name, value in clean_moto.env().items():
        monkeypatch.setenv(name, value)
    settings = load_settings(
        {
            **clean_moto.env(),
            "DISCOVER": "rds",
            "DISCOVER_TAGS": "team=payments",
            "PG_QPS_SAMPLE_SECONDS": "0",
        }
    )
    samples = pushed(closer(Runtime(settings)))
    # The three instances are targets (CloudWatch only: no login tag), with their inventory.
    assert sorted(samples) == ["billing-db", "collector", "ledger-db", "orders-db"]
    for name in INSTANCES:
        assert len(series(samples, name, "aws_resource_info")) == 1
        assert series(samples, name, PENDING) == {}
    unit = frozenset({"account": ACCOUNT, "region": REGION, "kind": "rds"}.items())
    assert series(samples, "collector", "middleware_discovery_up") == {unit: 1.0}
    assert series(samples, "collector", "middleware_discovery_resources") == {unit: 3.0}
    up, failure = enrichment(samples)
    assert up == {CALL: 0.0}
    # moto answers HTTP 500 with a body botocore cannot parse.
    assert failure == {f"{CALL}/error": 1.0}
    [line] = [r for r in records if r.getMessage() == "discovery enrichment failed"]
    assert (line.__dict__["call"], line.__dict__["account"], line.__dict__["region"]) == (
        CALL,
        ACCOUNT,
        REGION,
    )
    assert line.__dict__["detail"].endswith(
        "; the resources are still found, without the series this call feeds"
    )


def test_denied_pending_maintenance_degrades_and_comes_back(
    clean_moto: MotoServer,
    closer: Closer,
    monkeypatch: pytest.MonkeyPatch,
    records: list[logging.LogRecord],
) -> None:
    three_tagged_instances(clean_moto)
    with AwsFront(clean_moto.endpoint_url) as front:
        for name, value in {**clean_moto.env(), **front.env()}.items():
            monkeypatch.setenv(name, value)
        arn = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders-db"
        front.pending[arn] = [{"Action": "system-update", "Description": "OS patch"}]
        front.faults.append(
            Fault(
                "AccessDenied",
                f"User is not authorized to perform: rds:{CALL}",
                status=403,
                action=CALL,
            )
        )
        settings = load_settings(
            {
                **clean_moto.env(),
                **front.env(),
                "DISCOVER": "rds",
                "DISCOVER_TAGS": "team=payments",
                "DISCOVER_MAX_AGE_SECONDS": "0",  # every pass refreshes
                "PG_QPS_SAMPLE_SECONDS": "0",
            }
        )
        runtime = closer(Runtime(settings))
        denied = pushed(runtime)
        front.faults.clear()
        allowed = pushed(runtime)
    assert sorted(denied) == ["billing-db", "collector", "ledger-db", "orders-db"]
    assert all(series(denied, name, PENDING) == {} for name in INSTANCES)
    assert enrichment(denied) == ({CALL: 0.0}, {f"{CALL}/auth_failed": 1.0})
    # Allowed again: the next refresh has the counts, and the failure series is gone.
    assert {name: list(series(allowed, name, PENDING).values()) for name in INSTANCES} == {
        "orders-db": [1.0],
        "billing-db": [0.0],
        "ledger-db": [0.0],
    }
    assert enrichment(allowed) == ({CALL: 1.0}, {})
