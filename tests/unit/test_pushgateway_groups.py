"""Deleting stale groups against a local HTTP server that answers like a Pushgateway, or
does not: the deletion ends by the invocation's deadline and never raises."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from middleware_monitoring.config import PushgatewaySettings
from middleware_monitoring.pushgateway_groups import delete_groups
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
    deleted, failed = delete_groups(settings(url), {"b-db", "a/db", "c-db"}, deadline=1e12)
    assert (deleted, failed) == (["a/db", "b-db", "c-db"], [])
    # A value with a '/' goes base64-encoded, as the Pushgateway's API spells it.
    assert state.deleted == [
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
        settings(url), ["g1", "g2", "g3", "g4"], deadline=102.05, monotonic=lambda: next(clock)
    )
    assert deleted == ["g1", "g2"]
    assert failed == [
        "g3: the invocation's deadline came first",
        "g4: the invocation's deadline came first",
    ]
    assert state.deleted == ["/metrics/job/mm/instance/g1", "/metrics/job/mm/instance/g2"]


def test_an_answer_that_is_not_http_fails_the_group_not_the_invocation(
    gateway: tuple[Gateway, str],
) -> None:
    state, url = gateway
    state.garbage = True
    deleted, failed = delete_groups(settings(url), ["g1"], deadline=1e12)
    assert deleted == []
    assert failed == ["g1: BadStatusLine: not http\r\n"]
