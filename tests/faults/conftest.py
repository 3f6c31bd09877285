"""Fault matrix fixtures and the table printed at the end of the run (``make faults``).

Each fault test takes ``row`` and fills in what it injects, what it expects and what it
observed (measured before the assertions, so a failing test still shows what happened).
The stand-ins come from tests/conftest.py (the session Pushgateway, moto); PostgreSQL and the
DocumentDB stand-in are this package's own, because the faults stop, lock and restart them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tests.faults.harness import LambdaFunction, restore_logging
from tests.integration.pg_helpers import APP_DB, MONITOR, MONITOR_PASSWORD, prepare
from tests.standins.docdb import DocDBServer
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

_HERE = Path(__file__).parent
# Not network-bound: the configuration fuzzing runs with the unit tests too.
_OFFLINE = {"test_config_fuzz.py"}


@dataclass
class Row:
    area: str = ""
    fault: str = ""
    expected: str = ""
    observed: str = ""
    status: str = "not run"


# By test id, in the order the tests reported. Rows travel on the test reports (as a user
# property), so the table is whole under pytest-xdist too, where the tests run in workers and
# the summary prints in the controller.
_ROWS: dict[str, Row] = {}
_PROPERTY = "fault_row"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents and item.path.name not in _OFFLINE:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    row = getattr(item, "_fault_row", None)
    if row is not None and (report.when == "call" or report.failed):
        if report.failed:
            row.status = f"FAILED ({report.when})"
        elif report.skipped:
            row.status = "skipped"
        elif report.when == "call":
            row.status = "ok"
    if row is not None:
        report.user_properties.append((_PROPERTY, asdict(row)))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == _PROPERTY and isinstance(value, dict):
            _ROWS[report.nodeid] = Row(**value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = [row for row in _ROWS.values() if row.fault]
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault matrix")
    headers = ("area", "fault", "expected", "observed", "result")
    table = [headers, *((r.area, r.fault, r.expected, r.observed, r.status) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    for n, line in enumerate(table):
        write(" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            write("-+-".join("-" * w for w in widths))
    failed = sum(1 for r in rows if r.status != "ok")
    write(f"{len(rows)} faults, {len(rows) - failed} as expected, {failed} not")


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Row:
    made = Row(area=request.node.path.stem.removeprefix("test_").removesuffix("_faults"))
    request.node._fault_row = made
    return made


@pytest.fixture
def job(pushgateway: Pushgateway) -> Iterator[str]:
    """A job of the test's own; its groups are deleted afterwards."""
    name = f"faults-{uuid.uuid4().hex[:8]}"
    yield name
    pushgateway.delete_job(name)


@pytest.fixture
def function(
    monkeypatch: pytest.MonkeyPatch, pushgateway: Pushgateway
) -> Iterator[Callable[[Mapping[str, str]], LambdaFunction]]:
    """Makes function instances from an environment; closes their connections afterwards."""
    made: list[LambdaFunction] = []

    def make(environ: Mapping[str, str]) -> LambdaFunction:
        fn = LambdaFunction(monkeypatch, environ, pushgateway)
        made.append(fn)
        return fn

    yield make
    for fn in made:
        fn.close()
    restore_logging()


# --- servers of this package --------------------------------------------------------------


@pytest.fixture(scope="package")
def fault_pg() -> Iterator[PostgresServer]:
    with PostgresServer(17) as server:
        prepare(server)
        yield server


@pytest.fixture
def pg(fault_pg: PostgresServer) -> PostgresServer:
    fault_pg.start()  # a test that stopped it may have failed before starting it again
    return fault_pg


@pytest.fixture(scope="package")
def healthy_docdb() -> Iterator[DocDBServer]:
    with DocDBServer() as server:
        yield server


PG_TARGET = "orders-db"
DOCDB_HEALTHY = "sessions-docdb"


def pg_env(server: PostgresServer, **extra: str) -> dict[str, str]:
    """PostgreSQL as one target named orders-db, with timeouts small enough for the tests."""
    return {
        **server.collector_env(user=MONITOR, password=MONITOR_PASSWORD, database=APP_DB),
        "PG_TARGET_NAME": PG_TARGET,
        "PG_QPS_SAMPLE_SECONDS": "0",
        "PG_CONNECT_TIMEOUT_SECONDS": "1",
        "PG_STATEMENT_TIMEOUT_MS": "1000",
        **extra,
    }


def docdb_info(server: DocDBServer, name: str, **parameters: str) -> dict[str, object]:
    info = server.mongo_info(
        serverSelectionTimeoutMS="1500",
        connectTimeoutMS="1000",
        socketTimeoutMS="1500",
        **parameters,
    )
    return {**info, "name": name}


def push_env(gateway_url: str, job: str) -> dict[str, str]:
    return {
        "PUSHGATEWAY_URL": gateway_url,
        "PUSHGATEWAY_JOB": job,
        "PUSHGATEWAY_TIMEOUT_SECONDS": "2",
        "PUSHGATEWAY_RETRIES": "1",
    }
