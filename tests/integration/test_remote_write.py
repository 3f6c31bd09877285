"""The remote-write sink against a real Prometheus (--web.enable-remote-write-receiver): a pass
arrives with exact values at exact timestamps, CloudWatch points at their own times (five
1-minute points brought by one 5-minute query, held by moto), serverStatus values at the
time of sending; SigV4 checked by botocore for a known key; basic auth and a bearer token
read from Secrets Manager (moto)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from middleware_monitoring.cloudwatch import CloudWatchBatch
from middleware_monitoring.cloudwatch.declarations import Stat
from middleware_monitoring.config import SecretStoreSettings, load_settings
from middleware_monitoring.credentials import SecretStore
from middleware_monitoring.model import PassResult
from middleware_monitoring.remote_write import RemoteWriteSink, SigV4
from middleware_monitoring.runner import run_pass
from middleware_monitoring.sinks import PushError
from tests.faults.injectors import HttpAnswer, HttpFault
from tests.helpers import Closer
from tests.standins.aws import MotoServer
from tests.standins.cloudwatch import put
from tests.standins.docdb import DOCDB_SERVER_STATUS, DocDBServer
from tests.standins.prometheus import Prometheus
from tests.standins.remote_write import SIGNATURE_MISMATCH, AuthCheck, KnownKey, RemoteWriteDoor
from tests.unit.cloudwatch_helpers import build_targets

RDS_ID = "rw-postgres"
CPU = Stat("AWS/RDS", "CPUUtilization", (("DBInstanceIdentifier", RDS_ID),), "Average", 60)
KEY = KnownKey("AKIDREMOTEWRITE01", "remote-write-secret-key-0123456789", "session-token-1")


@pytest.fixture
def docdb() -> Iterator[DocDBServer]:
    with DocDBServer() as server:
        yield server


def _query_one(prom: Prometheus, expr: str, at: float) -> tuple[dict[str, str], float]:
    (item,) = prom.query(expr, at=at)
    return item["metric"], float(item["value"][1])


def test_a_pass_arrives_with_exact_values_at_exact_timestamps(
    remote_write_receiver: Prometheus,
    clean_moto: MotoServer,
    docdb: DocDBServer,
    closer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in clean_moto.env().items():  # boto3's credential chain
        monkeypatch.setenv(name, value)
    job = f"rw-{uuid.uuid4().hex[:8]}"
    environ = {
        **clean_moto.env(),
        "METRICS_SINK": "remote_write",
        "REMOTE_WRITE_URL": remote_write_receiver.remote_write_url,
        "PUSHGATEWAY_JOB": job,
        "AWS_RDS_INSTANCE_ID": RDS_ID,
        "CLOUDWATCH_INTERVAL_SECONDS": "300",
        "MONGO_INFO": json.dumps({**docdb.mongo_info(), "name": "sessions-docdb"}),
    }
    settings = load_settings(environ)
    assert settings.cloudwatch is not None
    # Two passes 5 minutes apart on the function instance's clock, the second one now.
    now = float(int(time.time()))
    clock = [now - 300]
    batch = CloudWatchBatch(settings.cloudwatch, clock=lambda: clock[0])
    targets = [closer(target) for target in build_targets(settings, batch)]
    sink = RemoteWriteSink(settings.remote_write, job, clock=lambda: clock[0])

    # The window of the first pass ends on the whole minute 60 s before its clock; the
    # second's five minutes later. CPU has a point each minute over the last 15, CPU = 10 + i.
    first_end = int(now - 300 - 60) // 60 * 60
    second_end = first_end + 300
    minutes = [second_end - 60 * (15 - i) for i in range(15)]
    client = clean_moto.client("cloudwatch")
    put(client, [(CPU, at, 10.0 + i) for i, at in enumerate(minutes)])

    def one_pass() -> PassResult:
        result = run_pass(
            targets,
            deadline=time.monotonic() + 30,
            max_workers=4,
            collector_instance="collector",
            prefetches=[batch],
        )
        sink.send(result, time.monotonic() + 30)
        return result

    first = one_pass()
    clock[0] = now
    second = one_pass()

    requested_name = "middleware_cloudwatch_metrics_requested"
    requested = [
        [f.samples[0].value for f in r.collector.families if f.name == requested_name]
        for r in (first, second)
    ]
    # One family per pass, the 9 metrics of an RDS instance in each: 6 (BurstBalance among
    # them) and DBLoad, DBLoadCPU, DBLoadNonCPU, asked even where Performance Insights is off.
    assert requested == [[9.0], [9.0]]
    cpu = f'pg_cpu_utilization{{job="{job}"}}'
    prom = remote_write_receiver
    prom.wait_for(f"count_over_time({cpu}[20m])", predicate=bool)
    # Every point of the 15 minutes arrived: 10 from the first query, 5 from the second.
    assert _query_one(prom, f"count_over_time({cpu}[15m])", minutes[-1])[1] == 15
    # The labels the Pushgateway's grouping key would give: job, collector, shard.
    grouping = {"job": job, "collector": "collector", "shard": "0"}
    labels = {"__name__": "pg_cpu_utilization", **grouping, "instance": RDS_ID}
    # The second query's five points, each at its own minute with its own value.
    for i, at in enumerate(minutes[10:], start=10):
        assert _query_one(prom, cpu, at) == (labels, 10.0 + i)
        assert _query_one(prom, f"timestamp({cpu})", at)[1] == at
    assert minutes[10] == first_end  # they are exactly the ones after the first window
    # serverStatus values at the time their target was read (millisecond precision), with
    # the pass's job and instance.
    read_at = [
        int(1000 * (next(t for t in r.targets if t.target == "sessions-docdb").collected_at or 0))
        / 1000
        for r in (first, second)
    ]
    uptime = f'mongo_uptime_seconds{{job="{job}"}}'
    assert _query_one(prom, uptime, read_at[1]) == (
        {"__name__": "mongo_uptime_seconds", **grouping, "instance": "sessions-docdb"},
        float(DOCDB_SERVER_STATUS["uptime"]),
    )
    assert _query_one(prom, f"timestamp({uptime})", read_at[1])[1] == read_at[1]
    assert _query_one(prom, f"timestamp({uptime})", read_at[1] - 0.001)[1] == read_at[0]
    # The sink's own health in the collector's group.
    health = f'middleware_collector_up{{job="{job}",source="remote_write"}}'
    prom.wait_for(health)
    assert _query_one(prom, health, now + 1) == (
        {
            "__name__": "middleware_collector_up",
            **grouping,
            "instance": "collector",
            "source": "remote_write",
        },
        1.0,
    )
    sent = _query_one(prom, f'middleware_remote_write_samples_sent{{job="{job}"}}', now + 1)[1]
    assert sent == sum(
        len(family.samples)
        for group in second.groups()
        for family in group.families
        if not family.name.endswith("_created")
    )


def _sigv4_sink(url: str, job: str, key: KnownKey) -> RemoteWriteSink:
    from botocore.credentials import Credentials

    settings = replace(load_settings({}).remote_write, url=url, sigv4_region="eu-west-1", retries=2)
    sigv4 = SigV4("eu-west-1", lambda: Credentials(key.access_key, key.secret_key, key.token))
    return RemoteWriteSink(settings, job, sigv4=sigv4)


def _small_pass() -> PassResult:
    from prometheus_client.core import GaugeMetricFamily

    from middleware_monitoring.model import SourceOutcome, TargetResult

    up = GaugeMetricFamily("pg_up", "1 if the server answered.", value=1)
    return PassResult(
        [TargetResult("db1", [up], [SourceOutcome("postgres", True, 0.1)])],
        0.1,
        TargetResult("collector", [], []),
    )


def test_sigv4_signed_by_the_known_key_is_accepted(remote_write_receiver: Prometheus) -> None:
    job = f"rw-{uuid.uuid4().hex[:8]}"
    check = AuthCheck("sigv4", key=KEY)
    with RemoteWriteDoor(remote_write_receiver.remote_write_url, check) as door:
        _sigv4_sink(door.url, job, KEY).send(_small_pass())
        received = door.received
    # The pass and the sink's health: two requests, both verified and accepted.
    assert [r.status for r in received] == [204, 204]
    first = {k.lower(): v for k, v in received[0].headers.items()}
    assert (first["content-encoding"], first["content-type"]) == (
        "snappy",
        "application/x-protobuf",
    )
    assert first["x-prometheus-remote-write-version"] == "0.1.0"
    assert first["x-amz-security-token"] == KEY.token
    assert first["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY.access_key}/")
    assert remote_write_receiver.wait_for(f'pg_up{{job="{job}"}}')[0]["value"][1] == "1"


def test_sigv4_with_a_wrong_key_is_refused_and_named(remote_write_receiver: Prometheus) -> None:
    check = AuthCheck("sigv4", key=KEY)
    wrong = replace(KEY, secret_key="not-the-secret-key-0000000000000000")
    with RemoteWriteDoor(remote_write_receiver.remote_write_url, check) as door:
        with pytest.raises(PushError) as caught:
            _sigv4_sink(door.url, "rw-wrong", wrong).send(_small_pass())
        received = door.received
    # 403 is not retried: the pass's request and the health request, one attempt each.
    assert [r.status for r in received] == [403, 403]
    assert str(caught.value) == (
        f"remote write to {door.url} did not accept 1 of 1 samples: "
        f"HTTP 403 Forbidden: {SIGNATURE_MISMATCH} (2 requests)"
    )
    assert wrong.secret_key not in str(caught.value)


@pytest.mark.parametrize(
    ("secret", "header"),
    [
        (
            {"username": "writer", "password": "Wr1te-pass:word"},
            "Basic d3JpdGVyOldyMXRlLXBhc3M6d29yZA==",
        ),
        ({"bearer_token": "glc_bearer-Token-0123"}, "Bearer glc_bearer-Token-0123"),
    ],
    ids=["basic", "bearer"],
)
def test_login_from_secrets_manager(
    remote_write_receiver: Prometheus,
    clean_moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    secret: dict[str, Any],
    header: str,
) -> None:
    for name, value in clean_moto.env().items():
        monkeypatch.setenv(name, value)
    arn = clean_moto.client("secretsmanager").create_secret(
        Name=f"rw-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(secret)
    )["ARN"]
    job = f"rw-{uuid.uuid4().hex[:8]}"
    check = AuthCheck("basic", authorization=header)
    with RemoteWriteDoor(remote_write_receiver.remote_write_url, check) as door:
        settings = load_settings(
            {
                **clean_moto.env(),
                "METRICS_SINK": "remote_write",
                "REMOTE_WRITE_URL": door.url,
                "REMOTE_WRITE_SECRET_ARN": arn,
            }
        )
        store = SecretStore(SecretStoreSettings(clean_moto.region))
        RemoteWriteSink(settings.remote_write, job, secrets=store).send(_small_pass())
        received = door.received
    assert [(r.headers.get("Authorization"), r.status) for r in received] == [(header, 204)] * 2
    assert remote_write_receiver.wait_for(f'pg_up{{job="{job}"}}')[0]["value"][1] == "1"


def test_a_rotated_secret_is_read_again_when_refused(
    remote_write_receiver: Prometheus, clean_moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in clean_moto.env().items():
        monkeypatch.setenv(name, value)
    secrets = clean_moto.client("secretsmanager")
    arn = secrets.create_secret(
        Name=f"rw-{uuid.uuid4().hex[:6]}", SecretString='{"bearer_token": "old-Token-1"}'
    )["ARN"]
    settings = load_settings(
        {
            **clean_moto.env(),
            "METRICS_SINK": "remote_write",
            "REMOTE_WRITE_URL": remote_write_receiver.remote_write_url,
            "REMOTE_WRITE_SECRET_ARN": arn,
        }
    )
    store = SecretStore(SecretStoreSettings(clean_moto.region, max_age_seconds=3600))
    with RemoteWriteDoor(
        remote_write_receiver.remote_write_url,
        AuthCheck("bearer", authorization="Bearer old-Token-1"),
    ) as door:
        sink = RemoteWriteSink(replace(settings.remote_write, url=door.url), "rw", secrets=store)
        sink.send(_small_pass())
        secrets.put_secret_value(SecretId=arn, SecretString='{"bearer_token": "new-Token-2"}')
        door._state.check = AuthCheck("bearer", authorization="Bearer new-Token-2")
        sink.send(_small_pass())
        statuses = [(r.headers.get("Authorization"), r.status) for r in door.received]
    assert statuses == [
        ("Bearer old-Token-1", 204),
        ("Bearer old-Token-1", 204),
        # The cached token is refused once, read again, and the same request goes through.
        ("Bearer old-Token-1", 401),
        ("Bearer new-Token-2", 204),
        ("Bearer new-Token-2", 204),
    ]


def test_points_of_a_refused_send_arrive_with_the_next_invocation(
    remote_write_receiver: Prometheus,
    clean_moto: MotoServer,
    closer: Closer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CLOUDWATCH_INTERVAL_SECONDS=300: one query brings three 1-minute points; the send of
    that pass is refused (503). The next invocation of the warm function instance, one
    minute later (CloudWatch not due: only the newest point offered), delivers all three."""
    for name, value in clean_moto.env().items():  # boto3's credential chain
        monkeypatch.setenv(name, value)
    job = f"rw-{uuid.uuid4().hex[:8]}"
    with HttpFault(remote_write_receiver.url) as door:
        settings = load_settings(
            {
                **clean_moto.env(),
                "METRICS_SINK": "remote_write",
                "REMOTE_WRITE_URL": f"{door.url}/api/v1/write",
                "REMOTE_WRITE_RETRIES": "0",
                "PUSHGATEWAY_JOB": job,
                "AWS_RDS_INSTANCE_ID": RDS_ID,
                "CLOUDWATCH_INTERVAL_SECONDS": "300",
            }
        )
        assert settings.cloudwatch is not None
        now = float(int(time.time()))
        clock = [now - 60]
        batch = CloudWatchBatch(settings.cloudwatch, clock=lambda: clock[0])
        targets = [closer(target) for target in build_targets(settings, batch)]
        sink = RemoteWriteSink(settings.remote_write, job, clock=lambda: clock[0])
        # The first window ends on the whole minute 60 s before the first pass's clock.
        end = int(clock[0] - 60) // 60 * 60
        minutes = [end - 180, end - 120, end - 60]
        put(clean_moto.client("cloudwatch"), [(CPU, at, 40.0 + i) for i, at in enumerate(minutes)])

        def invocation() -> PassResult:
            result = run_pass(
                targets,
                deadline=time.monotonic() + 30,
                max_workers=4,
                collector_instance="collector",
                prefetches=[batch],
            )
            sink.send(result, time.monotonic() + 30)
            return result

        door.script = [HttpAnswer(503, message="ingester unavailable")]
        with pytest.raises(PushError, match="HTTP 503"):
            invocation()
        first = batch.result().result
        clock[0] += 60
        invocation()
        second = batch.result().result
    # CPU was not asked again (not due for 5 minutes); the metrics without data were.
    assert CPU in first.stats and CPU not in second.stats
    cpu = f'pg_cpu_utilization{{job="{job}"}}'
    prom = remote_write_receiver
    prom.wait_for(f"count_over_time({cpu}[10m])", predicate=bool)
    assert _query_one(prom, f"count_over_time({cpu}[10m])", minutes[-1])[1] == 3
    for i, at in enumerate(minutes):
        assert _query_one(prom, f"timestamp({cpu})", at)[1] == at
        assert _query_one(prom, cpu, at)[1] == 40.0 + i
