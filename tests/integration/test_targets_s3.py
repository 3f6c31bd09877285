"""TARGETS_S3_URI (SPEC 14) against moto's S3 in server mode: the cold-start read, no read
within TARGETS_MAX_AGE_SECONDS, a conditional GET (ETag) after it that leaves an unchanged
object unparsed, a changed object taken, and a failed or wrong read keeping the last good
targets with middleware_targets_source_up 0 and its reason."""

from __future__ import annotations

import pytest

from middleware_monitoring.aws import AwsSessions
from middleware_monitoring.config import ConfigError, load_settings
from middleware_monitoring.runtime import Runtime
from middleware_monitoring.targets_s3 import TargetsS3Object
from tests.helpers import Closer
from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD, prepare
from tests.standins.aws import MotoServer
from tests.standins.postgres import PostgresServer

pytestmark = pytest.mark.integration

BUCKET = "fleet-config"
KEY = "monitoring/targets.yaml"
URI = f"s3://{BUCKET}/{KEY}"


def document(pg: PostgresServer, *names: str) -> str:
    entries = "".join(
        f"  - name: {name}\n    host: {pg.host}\n    port: {pg.port}\n    dbname: {APP_DB}\n"
        f"    user: {MONITOR}\n    password: {MONITOR_PASSWORD}\n    sslmode: disable\n"
        for name in names
    )
    return "postgres:\n" + entries


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def s3(clean_moto: MotoServer, monkeypatch: pytest.MonkeyPatch):
    for name, value in clean_moto.env().items():
        monkeypatch.setenv(name, value)
    client = clean_moto.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def source(moto: MotoServer, clock: Clock, **env: str) -> TargetsS3Object:
    settings = load_settings(
        {**moto.env(), "TARGETS_S3_URI": URI, "TARGETS_MAX_AGE_SECONDS": "300", **env}
    )
    return TargetsS3Object(settings, AwsSessions(moto.region), clock=clock)


def names(found: TargetsS3Object) -> list[str]:
    document_now, _ = found.current()
    return [spec.target_name for spec in document_now.specs()]


def test_read_once_per_max_age_and_parsed_only_when_the_etag_changes(
    s3, clean_moto, pg17: PostgresServer
):
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=document(pg17, "orders-db").encode())
    clock = Clock()
    found = source(clean_moto, clock)
    assert [s.target_name for s in found.load().specs()] == ["orders-db"]
    assert (found.reads, found.parses) == (1, 1)

    clock.now += 299
    assert names(found) == ["orders-db"]
    assert (found.reads, found.parses) == (1, 1)  # within the max age: S3 not asked

    clock.now += 2
    assert names(found) == ["orders-db"]
    assert (found.reads, found.parses) == (2, 1)  # asked with the ETag: 304, nothing parsed

    s3.put_object(Bucket=BUCKET, Key=KEY, Body=document(pg17, "orders-db", "billing-db").encode())
    assert names(found) == ["orders-db"]  # changed, but the max age has not passed again
    clock.now += 301
    assert names(found) == ["orders-db", "billing-db"]
    assert (found.reads, found.parses) == (3, 2)


def test_a_failed_or_wrong_read_keeps_the_last_good_targets_and_says_why(
    s3, clean_moto, pg17: PostgresServer
):
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=document(pg17, "orders-db").encode())
    clock = Clock()
    found = source(clean_moto, clock, TARGETS_MAX_AGE_SECONDS="0")
    found.load()

    s3.delete_object(Bucket=BUCKET, Key=KEY)
    document_now, fresh = found.current()
    assert ([s.target_name for s in document_now.specs()], fresh) == (["orders-db"], False)
    assert samples(found) == {
        ("middleware_targets_source_up", (("source", URI),)): 0.0,
        ("middleware_targets_source_failure", (("reason", "NoSuchKey"), ("source", URI))): 1.0,
    }

    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"postgres:\n  - name: x\n    port: 5432\n")
    document_now, fresh = found.current()
    assert ([s.target_name for s in document_now.specs()], fresh) == (["orders-db"], False)
    assert (
        samples(found)[
            ("middleware_targets_source_failure", (("reason", "invalid_document"), ("source", URI)))
        ]
        == 1.0
    )

    s3.put_object(Bucket=BUCKET, Key=KEY, Body=document(pg17, "billing-db").encode())
    document_now, fresh = found.current()
    assert ([s.target_name for s in document_now.specs()], fresh) == (["billing-db"], True)
    assert samples(found) == {("middleware_targets_source_up", (("source", URI),)): 1.0}


def samples(found: TargetsS3Object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in found.families()
        for s in family.samples
    }


def test_unreadable_or_wrong_at_a_cold_start_is_a_configuration_error(s3, clean_moto):
    with pytest.raises(ConfigError) as caught:
        source(clean_moto, Clock()).load()
    assert caught.value.problems == [f"TARGETS_S3_URI ({URI}): cannot be read: NoSuchKey"]

    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"postgres:\n  - name: orders-db\n    port: 5432\n")
    with pytest.raises(ConfigError) as caught:
        source(clean_moto, Clock()).load()
    assert caught.value.problems == [
        f"TARGETS_S3_URI ({URI}): postgres[0] (orders-db).host: is required (the endpoint's "
        "host name)",
        f"TARGETS_S3_URI ({URI}): postgres[0] (orders-db).user: is required (the login, unless "
        "secret_arn)",
    ]


def test_a_pass_collects_the_objects_targets_and_reports_the_source(
    s3, clean_moto, pg17: PostgresServer, closer: Closer
):
    prepare(pg17)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=document(pg17, "orders-db").encode())
    runtime = closer(
        Runtime.from_environ(
            {**clean_moto.env(), "TARGETS_S3_URI": URI, "PG_QPS_SAMPLE_SECONDS": "0"}
        )
    )
    result = runtime.collect(20.0)
    assert [(t.target, t.up) for t in result.targets] == [("orders-db", True)]
    own = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in result.collector.families
        for s in family.samples
        if s.name.startswith("middleware_targets_source")
    }
    assert own == {("middleware_targets_source_up", (("source", URI),)): 1.0}


@pytest.mark.parametrize(
    "uri", ["fleet-config/targets.yaml", "s3://fleet-config", "s3://fleet-config/", "s3:///k"]
)
def test_a_uri_that_is_not_s3_bucket_key_is_refused(uri):
    with pytest.raises(ConfigError) as caught:
        load_settings({"TARGETS_S3_URI": uri})
    assert caught.value.problems == [f"TARGETS_S3_URI: expected s3://bucket/key, got {uri!r}"]
