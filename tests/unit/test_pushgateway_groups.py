"""Deleting leftover groups against a local HTTP server that answers like a Pushgateway, or
does not: the deletion ends by the invocation's deadline and never raises. Reading back
which groups are this collector's, from the exposition a Pushgateway 1.5 writes."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from prometheus_client.parser import text_string_to_metric_families

from middleware_monitoring.config import PushgatewaySettings
from middleware_monitoring.pushgateway_groups import (
    _groups,
    delete_groups,
    instance_group,
    shard_group,
)
from tests.standins.http import ThreadedHttpServer


class Gateway:
    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.garbage = False  # answer bytes that are no HTTP response
        self.lock = threading.Lock()


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    state = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_DELETE(self) -> None:
            if state.garbage:
                self.wfile.write(b"not http\r\n\r\n")
                return
            with state.lock:
                state.deleted.append(self.path)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadedHttpServer(Handler) as server:
        yield state, f"http://127.0.0.1:{server.port}"


def settings(url: str) -> PushgatewaySettings:
    return PushgatewaySettings(url, "mm", None, None, 2.0, 0)


def test_groups_deleted_in_name_order(gateway: tuple[Gateway, str]) -> None:
    state, url = gateway
    keys = [instance_group(name) for name in ("b-db", "a/db", "c-db")]
    keys.append(shard_group("eu", 3))
    deleted, failed = delete_groups(settings(url), keys, deadline=1e12)
    assert (deleted, failed) == (
        ["collector=eu,shard=3", "instance=a/db", "instance=b-db", "instance=c-db"],
        [],
    )
    # A value with a '/' goes base64-encoded, as the Pushgateway's API spells it.
    assert state.deleted == [
        "/metrics/job/mm/collector/eu/shard/3",
        "/metrics/job/mm/instance@base64/YS9kYg==",
        "/metrics/job/mm/instance/b-db",
        "/metrics/job/mm/instance/c-db",
    ]


def test_the_deadline_leaves_the_rest_for_the_next_pass(gateway: tuple[Gateway, str]) -> None:
    state, url = gateway
    # Each look at the clock is a second later: with 2.05 s to go, two requests start (the
    # third would have 0.05 s, less than a request is started with).
    clock = itertools.count(start=100.0, step=1.0)
    deleted, failed = delete_groups(
        settings(url),
        [instance_group(g) for g in ("g1", "g2", "g3", "g4")],
        deadline=102.05,
        monotonic=lambda: next(clock),
    )
    assert deleted == ["instance=g1", "instance=g2"]
    assert failed == [
        "instance=g3: the invocation's deadline came first",
        "instance=g4: the invocation's deadline came first",
    ]
    assert state.deleted == ["/metrics/job/mm/instance/g1", "/metrics/job/mm/instance/g2"]


def test_an_answer_that_is_not_http_fails_the_group_not_the_invocation(
    gateway: tuple[Gateway, str],
) -> None:
    state, url = gateway
    state.garbage = True
    deleted, failed = delete_groups(settings(url), [instance_group("g1")], deadline=1e12)
    assert deleted == []
    assert failed == ["instance=g1: BadStatusLine: not http\r\n"]


# What a Pushgateway holds for job mm: collector c's shard groups 0 and 2 and its groups of
# the per-target layout (db1 with its owner line, its own c and c-shard-1), collector d's
# shard group and per-target group, and a group of another job.
LS = "middleware_collector_last_success_timestamp_seconds"
TS = "middleware_target_last_success_timestamp_seconds"
EXPOSITION = f"""\
push_time_seconds{{collector="c",instance="",job="mm",shard="0"}} 1.8e+09
push_time_seconds{{collector="c",instance="",job="mm",shard="2"}} 1.8e+09
push_time_seconds{{collector="d",instance="",job="mm",shard="0"}} 1.8e+09
push_time_seconds{{instance="db1",job="mm"}} 1.7e+09
push_time_seconds{{instance="db9",job="mm"}} 1.7e+09
push_time_seconds{{instance="c",job="mm"}} 1.7e+09
push_time_seconds{{instance="c-shard-1",job="mm"}} 1.7e+09
push_time_seconds{{instance="d-db",job="mm"}} 1.7e+09
push_time_seconds{{instance="db1",job="other"}} 1.7e+09
middleware_collector_info{{collector="c",instance="db1",job="mm"}} 1
middleware_collector_info{{collector="c",instance="db9",job="mm"}} 1
middleware_collector_info{{collector="d",instance="d-db",job="mm"}} 1
{LS}{{collector="c",instance="db2",job="mm",shard="0",source="postgres"}} 1.8e+09
{LS}{{collector="d",instance="db3",job="mm",shard="0",source="postgres"}} 1.8e+09
{LS}{{instance="db1",job="mm",source="postgres"}} 1.6e+09
{LS}{{instance="db1",job="mm",source="cloudwatch"}} 1.5e+09
{LS}{{collector="c",instance="db1",job="mm",shard="2",source="postgres"}} 1.7e+09
{LS}{{instance="d-db",job="mm",source="postgres"}} 1.6e+09
{TS}{{collector="c",instance="db2",job="mm",shard="0"}} 1.8e+09
"""


def test_the_collectors_groups_of_either_layout_are_told_apart() -> None:
    groups = _groups(text_string_to_metric_families(EXPOSITION), settings("http://x"), "c")
    assert groups.shards == {0, 2}
    # Another collector's groups (d, d-db) and another job's are never this one's.
    assert groups.per_target == {"db1", "db9", "c", "c-shard-1"}
    # The shard layout's value wins; a source only the old group knew is taken from it.
    assert groups.last_success == {
        "db2": {"postgres": 1.8e9},
        "db1": {"postgres": 1.7e9, "cloudwatch": 1.5e9},
    }
    assert groups.target_success == {"db2": 1.8e9}


def test_each_leftover_group_has_one_shard_to_delete_it() -> None:
    from middleware_monitoring.pushgateway_groups import Groups
    from middleware_monitoring.runtime import _leftover_groups
    from middleware_monitoring.shards import Shard, shard_of

    targets = [f"db{i}" for i in range(12)]
    groups = Groups(shards={0, 1, 2, 3}, per_target={*targets, "c", "c-shard-5", "c-kafka"})
    chosen = {index: _leftover_groups(groups, "c", Shard(index, 2)) for index in (0, 1)}
    # Old target groups by the shard that owns the name; the collector's own old groups and
    # the shard groups at or above the count from shard 0.
    assert sorted(chosen[1]) == sorted(instance_group(t) for t in targets if shard_of(t, 2) == 1)
    assert sorted(chosen[0]) == sorted(
        [
            *(instance_group(t) for t in targets if shard_of(t, 2) == 0),
            *(instance_group(own) for own in ("c", "c-shard-5", "c-kafka")),
            shard_group("c", 2),
            shard_group("c", 3),
        ]
    )
    # Unsharded: everything but its own shard 0.
    assert shard_group("c", 0) not in _leftover_groups(groups, "c", Shard())
    assert len(_leftover_groups(groups, "c", Shard())) == 12 + 3 + 3
