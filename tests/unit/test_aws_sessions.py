"""Clients of a function instance (made locally by botocore; no call is sent)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from middleware_monitoring.aws import AwsSessions
from middleware_monitoring.config import AwsLocation


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


def test_one_shared_client_per_service_and_location_whatever_the_threads() -> None:
    sessions = AwsSessions("eu-west-1")
    here, there = AwsLocation(), AwsLocation("us-east-1")
    with ThreadPoolExecutor(16) as pool:
        clients = list(pool.map(lambda _: sessions.shared_client("rds", here), range(32)))
    assert len({id(client) for client in clients}) == 1
    assert clients[0].meta.region_name == "eu-west-1"
    other = sessions.shared_client("rds", there)
    assert other is not clients[0]
    assert other.meta.region_name == "us-east-1"
    assert sessions.shared_client("rds", there) is other
