"""A fleet with trouble in it (SPEC 9): 100 PostgreSQL targets from a targets file, 20 of
them black-holed (a silent listener that accepts and never answers, timeouts far beyond the
time left). The invocation must end before the deadline with the 80 healthy targets sent
and the 20 down for their reason; on the next pass the hung ones are still busy and every
healthy one is sent again."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.faults.conftest import Row, push_env
from tests.faults.harness import PG_NAMES, Expect, LambdaFunction, check_fault_pass, key, observe
from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD, prepare
from tests.standins.postgres import PostgresServer
from tests.standins.silent import SilentServer

Make = Callable[[Mapping[str, str]], LambdaFunction]
TARGETS, HUNG = 100, 20
# Room for 80 healthy targets (a SCRAM login each) and a push of 101 groups on a loaded
# 2-core machine; the hung targets' timeouts (60 s) are far beyond it, so only the deadline
# can end their wait.
REMAINING_MILLIS = 30_000


@pytest.fixture(scope="module")
def fleet_server() -> Iterator[PostgresServer]:
    with PostgresServer(17, settings={"max_connections": 300}) as server:
        prepare(server)
        yield server


def test_100_postgres_targets_20_black_holed(
    row: Row, fleet_server: PostgresServer, pushgateway, job, function: Make, tmp_path: Path
) -> None:
    row.fault = f"fleet: {TARGETS} PostgreSQL targets from a file, {HUNG} black-holed"
    row.expected = f"{HUNG} down deadline, then busy; {TARGETS - HUNG} sent both passes; in time"
    names = [f"pg-{i:03d}" for i in range(TARGETS)]
    hung = set(names[::5])
    with SilentServer() as silent:
        entries = [
            {
                "name": name,
                "host": fleet_server.host,
                "port": silent.port if name in hung else fleet_server.port,
                "dbname": APP_DB,
                "user": MONITOR,
                "password": MONITOR_PASSWORD,
                "sslmode": "disable",
            }
            for name in names
        ]
        (tmp_path / "targets.json").write_text(json.dumps({"postgres": entries}))
        fn = function(
            {
                "TARGETS_FILE": str(tmp_path / "targets.json"),
                **push_env(pushgateway.url, job),
                # The defaults' shape: a few seconds per request, one retry.
                "PUSHGATEWAY_TIMEOUT_SECONDS": "5",
                "PUSHGATEWAY_RETRIES": "1",
                "PG_QPS_SAMPLE_SECONDS": "0",
                # Fewer series per target: this row is about hung targets and the deadline; a
                # Pushgateway's push time grows with every series it holds (docs/sinks.md).
                "PG_COLLECTORS": "none",
                "PG_STATEMENTS_TOP_N": "5",
                "PG_CONNECT_TIMEOUT_SECONDS": "30",
                "PG_STATEMENT_TIMEOUT_MS": "30000",
            }
        )
        # The 80 healthy targets share one server (host and port): what is server-wide
        # (activity, sizes, statements) is read and sent once, by the first of them by name;
        # the others send their database's series only (SPEC 16).
        carrier = min(name for name in names if name not in hung)
        healthy = {
            name: ({key("pg_up"): 1.0}, PG_NAMES if name == carrier else frozenset({"pg_up"}))
            for name in names
            if name not in hung
        }
        passes = []
        for reason in ("deadline", "busy"):
            want = Expect(
                job, {(name, "postgres"): reason for name in hung}, healthy, (MONITOR_PASSWORD,)
            )
            inv = fn.invoke(REMAINING_MILLIS)
            passes.append((inv, want))
        row.observed = "; ".join(observe(inv, want) for inv, want in passes)
        silent.release()
    for inv, want in passes:
        check_fault_pass(inv, want)
        for name in hung:
            assert inv.pushed(name)[key("pg_up")] == 0.0
        for name in healthy.keys() - {carrier}:
            sent = {series for series, _ in inv.pushed(name)}
            assert sent & (PG_NAMES - {"pg_up"}) == set(), (name, sent)
