"""Pull mode: ``python -m middleware_monitoring serve`` as a real process, scraped over HTTP,
against real PostgreSQL and against a target that never answers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import child_env
from tests.standins._process import free_port, stop_process, wait_until
from tests.standins.postgres import PostgresServer
from tests.standins.silent import SilentServer

DB = "mm_serve"
SeriesKey = tuple[str, frozenset[tuple[str, str]]]
# What a pass may take beyond its budget: the steps after the deadline, not a wait.
SCRAPE_BUDGET_MARGIN = 0.5


class ServeProcess:
    """The serve command on a free port; its log (stderr) is kept in a file."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="serve-", suffix=".log")[1])
        env = child_env({"SERVER_ADDRESS": "127.0.0.1", "SERVER_PORT": str(self.port), **environ})
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "middleware_monitoring", "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            wait_until(
                lambda: self.get("/healthz")[0] == 200,
                what="serve",
                timeout=30,
                proc=self.proc,
                log=self.log,
            )
        except BaseException:  # never started as far as the test knows: nobody else stops it
            self.stop()
            raise

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(
        self, path: str, headers: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> tuple[int, str]:
        request = urllib.request.Request(self.url(path), headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def health(self) -> dict[str, Any]:
        status, body = self.get("/healthz")
        assert status == 200
        health: dict[str, Any] = json.loads(body)
        return health

    def log_entries(self) -> list[dict[str, Any]]:
        return [
            json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")
        ]

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.unlink(missing_ok=True)


@pytest.fixture
def serve_factory() -> Iterator[Any]:
    started: list[ServeProcess] = []

    def start(environ: Mapping[str, str]) -> ServeProcess:
        process = ServeProcess(environ)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def pg(pg15: PostgresServer) -> PostgresServer:
    pg15.create_database(DB)
    pg15.create_extension(database=DB)
    pg15.execute_as_superuser("CREATE TABLE IF NOT EXISTS serve_probe (id int)", database=DB)
    # Only this database's entries: the server is shared by the whole session.
    pg15.execute_as_superuser(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
        " WHERE datname = current_database()), 0)",
        database=DB,
    )
    conn = pg15.connect(database=DB)
    try:
        for i in range(3):
            conn.run("SELECT count(*) FROM serve_probe WHERE id > :n", n=i)
    finally:
        conn.close()
    return pg15


def _pg_environ(pg: PostgresServer) -> dict[str, str]:
    return {
        **pg.collector_env(database=DB),
        "PG_TARGET_NAME": "orders-db",
        "PG_SSLMODE": "disable",
        "PG_QPS_SAMPLE_SECONDS": "0.2",
        # All of them: where this database's entries rank among the session's does not matter.
        "PG_STATEMENTS_TOP_N": "1000",
    }


def _silent_environ(silent: SilentServer, **extra: str) -> dict[str, str]:
    return {
        "PG_DATABASE": silent.host,
        "PG_PORT": str(silent.port),
        "PG_USER": "monitor",
        "PG_PWD": "never-sent",
        "PG_TARGET_NAME": "wedged-db",
        "PG_SSLMODE": "disable",
        "PG_CONNECT_TIMEOUT_SECONDS": "60",
        **extra,
    }


def key(name: str, **labels: str) -> SeriesKey:
    return name, frozenset(labels.items())


def _series(text: str) -> dict[SeriesKey, float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_scrape_serves_the_series_a_collect_pass_prints(
    pg: PostgresServer, serve_factory: Any
) -> None:
    environ = _pg_environ(pg)
    collected = subprocess.run(
        [sys.executable, "-m", "middleware_monitoring", "collect"],
        env=child_env(environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert collected.returncode == 0, collected.stderr
    printed = _series(collected.stdout)

    server = serve_factory(environ)
    status, body = server.get("/metrics")
    assert status == 200
    scraped = _series(body)

    # The same families (other tests' sessions on the shared server may come and go between
    # the passes, so per-user and per-database label sets are not compared) ...
    assert {name for name, _ in scraped} == {name for name, _ in printed}
    instances = {dict(labels).get("instance") for _, labels in scraped}
    assert instances == {"orders-db", "collector"}

    # ... and, exactly, the series nothing changed between the two passes: pg_up, the pass's
    # target count and this database's statements (calls and rows).
    def stable(series: dict[SeriesKey, float]) -> dict[SeriesKey, float]:
        return {
            key: value
            for key, value in series.items()
            if key[0] in ("pg_up", "middleware_pass_targets")
            or (
                key[0] in ("pg_query_calls", "pg_query_rows") and dict(key[1]).get("database") == DB
            )
        }

    assert stable(scraped) == stable(printed)
    calls = {
        dict(labels)["query"]: value
        for (name, labels), value in stable(scraped).items()
        if name == "pg_query_calls"
    }
    assert calls == {
        "SELECT count(*) FROM serve_probe WHERE id > $1": 3.0,
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database"
        " WHERE datname = current_database()), 0)": 1.0,
    }
    assert stable(scraped)[key("pg_up", instance="orders-db")] == 1.0


def test_concurrent_scrapes_share_one_pass(serve_factory: Any) -> None:
    with SilentServer() as silent:
        server = serve_factory(_silent_environ(silent, SERVER_SCRAPE_BUDGET_SECONDS="60"))
        assert server.health()["passes"] == 0
        answers: dict[str, tuple[int, str]] = {}

        def scrape(name: str) -> None:
            answers[name] = server.get("/metrics")

        first = threading.Thread(target=scrape, args=("first",))
        first.start()
        # The pass is under way once it holds a connection to the silent target.
        assert silent.wait_accepted(1)
        second = threading.Thread(target=scrape, args=("second",))
        second.start()
        wait_until(lambda: server.health()["waiting_scrapes"] == 1, what="2nd scrape", timeout=30)
        assert server.health()["in_flight"] is True
        silent.release()  # the target now fails at once; the pass ends
        first.join(60)
        second.join(60)

    assert answers["first"][0] == answers["second"][0] == 200
    assert answers["first"][1] == answers["second"][1]
    assert silent.accepted == 1
    health = server.health()
    assert health["passes"] == 1
    assert health["waiting_scrapes"] == 0
    assert health["in_flight"] is False
    series = _series(answers["first"][1])
    assert series[("pg_up", frozenset({("instance", "wedged-db")}))] == 0.0


def test_a_hanging_target_is_reported_down_within_the_scrape_budget(serve_factory: Any) -> None:
    with SilentServer() as silent:
        server = serve_factory(_silent_environ(silent, SERVER_SCRAPE_BUDGET_SECONDS="1"))
        status, body = server.get("/metrics", timeout=30)
        assert status == 200
        series = _series(body)
        down = {("instance", "wedged-db"), ("source", "postgres")}
        assert series[("middleware_collector_up", frozenset(down))] == 0.0
        assert (
            series[("middleware_collector_failure", frozenset(down | {("reason", "deadline")}))]
            == 1.0
        )
        assert (
            series[
                (
                    "middleware_pass_targets",
                    frozenset({("instance", "collector"), ("state", "down")}),
                )
            ]
            == 1.0
        )
        # The pass itself, as the product measured it, kept to the 1 s budget (the margin is
        # the few steps after the deadline: reporting the target down, the health families).
        duration = series[key("middleware_pass_duration_seconds", instance="collector")]
        print(f"pass with a hanging target, 1 s budget: {duration:.3f} s")
        assert 1.0 <= duration <= 1.0 + SCRAPE_BUDGET_MARGIN


def test_prometheus_scrape_timeout_header_shortens_the_pass(serve_factory: Any) -> None:
    with SilentServer() as silent:
        server = serve_factory(_silent_environ(silent, SERVER_SCRAPE_BUDGET_SECONDS="120"))
        status, body = server.get(
            "/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"}, timeout=30
        )
        assert status == 200
        reasons = {
            dict(labels)["reason"]
            for name, labels in _series(body)
            if name == "middleware_collector_failure"
        }
        assert reasons == {"deadline"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_server_cleanly(
    pg: PostgresServer, serve_factory: Any, sig: signal.Signals
) -> None:
    server = serve_factory(_pg_environ(pg))
    assert server.get("/metrics")[0] == 200
    server.proc.send_signal(sig)
    assert server.proc.wait(timeout=30) == 0
    messages = [entry["message"] for entry in server.log_entries()]
    assert messages[-2:] == ["stopping", "stopped"]
    stopping = [entry for entry in server.log_entries() if entry["message"] == "stopping"]
    assert stopping[0]["signal"] == sig.name
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url("/healthz"), timeout=5)


def test_healthz_and_unknown_paths(pg: PostgresServer, serve_factory: Any) -> None:
    server = serve_factory(_pg_environ(pg))
    assert server.health() == {
        "status": "ok",
        "passes": 0,
        "in_flight": False,
        "waiting_scrapes": 0,
        "targets": ["orders-db"],
    }
    assert server.get("/nope") == (404, "not found\n")
    assert server.get("/metrics")[0] == 200
    assert server.health()["passes"] == 1


def test_bad_server_port_is_a_configuration_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "middleware_monitoring", "serve"],
        env=child_env({"SERVER_PORT": "90x10"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "invalid configuration:\n"
        "  - SERVER_PORT: expected a port number from 1 to 65535, got '90x10'\n"
    )


def test_port_in_use_is_reported(serve_factory: Any) -> None:
    first = serve_factory({})
    done = subprocess.run(
        [sys.executable, "-m", "middleware_monitoring", "serve"],
        env=child_env({"SERVER_ADDRESS": "127.0.0.1", "SERVER_PORT": str(first.port)}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    (entry,) = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert entry["message"] == "cannot listen"
    assert entry["port"] == first.port
    assert entry["detail"] == "OSError: Address already in use"
