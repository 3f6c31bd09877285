"""DocumentDB source against real MongoDB-wire servers: a DocumentDB 5.0 stand-in (mockupdb,
replica-set handshake, TLS with a CA made here, SCRAM login) and nx-27017, an independent
server whose serverStatus lacks opcounters and metrics.document."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from middleware_monitoring.config import DocDBSettings, load_settings
from middleware_monitoring.docdb.source import DocumentDBSource
from middleware_monitoring.model import PassResult, Target, TargetResult
from middleware_monitoring.runner import run_pass
from middleware_monitoring.runtime import Runtime, build_sink
from tests.helpers import closing, log_records
from tests.standins._process import free_port
from tests.standins.docdb import DocDBServer, Nx27017Server
from tests.standins.pushgateway import Pushgateway
from tests.standins.tls import TlsFiles, make_tls_files

PASSWORD = "Pa55:w/rd@docdb%+"
USER = "monitor"
# Negative cases wait for pymongo's server selection; keep that short (a pass-through option).
FAST = {"serverSelectionTimeoutMS": "1000", "connectTimeoutMS": "1000"}

EXPECTED_DOCDB_VALUES = {
    ("mongo_up", ()): 1.0,
    ("mongo_version_info", (("version", "5.0.0"),)): 1.0,
    ("mongo_uptime_seconds", ()): 86423.0,
    ("mongo_current_connections", ()): 17.0,
    ("mongo_available_connections", ()): 4483.0,
    ("mongo_totalCreated_connections", ()): 2291.0,
    ("mongo_opcounters_insert", ()): 1201.0,
    ("mongo_opcounters_query", ()): 34587.0,
    ("mongo_opcounters_update", ()): 412.0,
    ("mongo_opcounters_delete", ()): 38.0,
    ("mongo_opcounters_getmore", ()): 96.0,
    ("mongo_opcounters_command", ()): 77810.0,
    ("mongo_document_deleted", ()): 71.0,
    ("mongo_document_inserted", ()): 1544.0,
    ("mongo_document_returned", ()): 128003.0,
    ("mongo_document_updated", ()): 509.0,
    # currentOp lists only the collector's own command, which is left out (SPEC 18); the
    # stand-in has no collections.
    ("mongo_oldest_op_seconds", ()): 0.0,
}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("docdb-tls"))


@pytest.fixture(scope="module")
def docdb(tls_files: TlsFiles) -> Iterator[DocDBServer]:
    """DocumentDB as users meet it: TLS, rs0, a SCRAM login."""
    with DocDBServer(tls=tls_files, users={USER: PASSWORD}) as server:
        yield server


@pytest.fixture
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record of every logger (pymongo's debug output included), unscrubbed: the
    password must not be there in the first place."""
    with log_records(logging.DEBUG, root_level=logging.DEBUG) as records:
        yield records


def settings_for(info: dict[str, Any] | list[dict[str, Any]]) -> tuple[DocDBSettings, ...]:
    """Through the real configuration path, from the JSON a user would set."""
    return load_settings({"MONGO_INFO": json.dumps(info)}).docdb


def source_for(info: dict[str, Any], search_dirs: list[Path] | None = None) -> DocumentDBSource:
    (settings,) = settings_for(info)
    if search_dirs is None:
        return DocumentDBSource(settings)
    return DocumentDBSource(settings, search_dirs=search_dirs)


def one_pass(*sources: DocumentDBSource, targets: list[Target] | None = None) -> PassResult:
    targets = targets or [Target(f"t{i}", [source]) for i, source in enumerate(sources)]
    return run_pass(
        targets, deadline=time.monotonic() + 30, max_workers=4, collector_instance="collector"
    )


def values(
    result: TargetResult, prefix: str = "mongo_"
) -> dict[tuple[str, tuple[Any, ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in result.families
        for sample in family.samples
        if sample.name.startswith(prefix)
    }


def health(result: TargetResult) -> dict[tuple[str, tuple[Any, ...]], float]:
    found = values(result, "middleware_collector_")
    return {
        key: value
        for key, value in found.items()
        if key[0] in ("middleware_collector_up", "middleware_collector_failure")
    }


def down(reason: str) -> dict[tuple[str, tuple[Any, ...]], float]:
    return {
        ("middleware_collector_up", (("source", "mongo"),)): 0.0,
        ("middleware_collector_failure", (("reason", reason), ("source", "mongo"))): 1.0,
    }


UP = {("middleware_collector_up", (("source", "mongo"),)): 1.0}


def test_every_value_from_a_documentdb_5_reply_over_tls_with_login(docdb: DocDBServer) -> None:
    info = docdb.mongo_info(user=USER, password=PASSWORD)
    assert info["parameter"] == {
        "authSource": "admin",
        "tls": "true",
        "tlsCAFile": info["parameter"]["tlsCAFile"],
        "replicaSet": "rs0",
        "readPreference": "secondaryPreferred",
        "retryWrites": "false",
    }
    source = source_for(info)
    try:
        commands_before = len(docdb.commands)
        result = one_pass(source).targets[0]
        assert values(result) == EXPECTED_DOCDB_VALUES
        assert health(result) == UP
        # Beyond the handshake and the login: serverStatus, then the databases (none here, so
        # no listCollections or collStats) and the running operations.
        asked = docdb.commands[commands_before:]
        assert [c for c in asked if c not in ("ismaster", "isMaster", "hello")] == [
            "saslStart",
            "saslContinue",
            "serverStatus",
            "listDatabases",
            "currentOp",
        ]
        # Warm pass: the same client and its logged-in connection.
        commands_before = len(docdb.commands)
        assert values(one_pass(source).targets[0]) == EXPECTED_DOCDB_VALUES
        asked = docdb.commands[commands_before:]
        assert [c for c in asked if c not in ("ismaster", "isMaster", "hello")] == [
            "serverStatus",
            "listDatabases",
            "currentOp",
        ]
    finally:
        source.close()


def test_the_uri_really_asks_for_replica_set_rs0(tls_files: TlsFiles) -> None:
    """The same DocumentDB-style settings against a server that answers as a standalone:
    pymongo must refuse it (so the passing test above did go through the rs0 handshake)."""
    with DocDBServer(tls=tls_files, users={USER: PASSWORD}, replica_set=None) as standalone:
        info = standalone.mongo_info(user=USER, password=PASSWORD, replicaSet="rs0", **FAST)
        source = source_for(info)
        try:
            result = one_pass(source).targets[0]
        finally:
            source.close()
    assert values(result) == {("mongo_up", ()): 0.0}
    assert health(result) == down("unreachable")


def test_wrong_ca_is_down_with_reason_tls(tls_files: TlsFiles) -> None:
    # A fresh server: a refused handshake must not disturb the shared one.
    with DocDBServer(tls=tls_files, users={USER: PASSWORD}) as server:
        info = server.mongo_info(
            user=USER, password=PASSWORD, ca_file=str(tls_files.other_ca), **FAST
        )
        source = source_for(info)
        try:
            result = one_pass(source).targets[0]
        finally:
            source.close()
        assert server.handshake_failures  # the server saw the client give up on its certificate
    assert values(result) == {("mongo_up", ()): 0.0}
    assert health(result) == down("tls")
    (outcome,) = result.outcomes
    assert outcome.detail is not None
    assert outcome.detail.startswith(
        f"TLS failed: {server.address}: [SSL: CERTIFICATE_VERIFY_FAILED]"
    )


def test_relative_ca_file_is_found_in_the_layer_directory(
    docdb: DocDBServer, tls_files: TlsFiles, tmp_path: Path
) -> None:
    function_dir, layer_dir = tmp_path / "var-task", tmp_path / "opt"
    function_dir.mkdir()
    layer_dir.mkdir()
    shutil.copy(tls_files.ca, layer_dir / "global-bundle.pem")
    info = docdb.mongo_info(user=USER, password=PASSWORD, ca_file="global-bundle.pem")
    source = source_for(info, search_dirs=[function_dir, layer_dir])
    try:
        result = one_pass(source).targets[0]
    finally:
        source.close()
    assert values(result) == EXPECTED_DOCDB_VALUES
    assert health(result) == UP


def test_missing_ca_file_is_down_with_reason_tls_and_where_it_looked(
    docdb: DocDBServer, tmp_path: Path
) -> None:
    info = docdb.mongo_info(user=USER, password=PASSWORD, ca_file="global-bundle.pem")
    with closing(source_for(info, search_dirs=[tmp_path / "var-task", tmp_path / "opt"])) as source:
        result = one_pass(source).targets[0]
    assert values(result) == {("mongo_up", ()): 0.0}
    assert health(result) == down("tls")
    assert result.outcomes[0].detail == (
        f"CA file global-bundle.pem not found in {tmp_path / 'var-task'}, {tmp_path / 'opt'}"
    )


def test_wrong_password_is_auth_failed_and_no_log_line_holds_the_password(
    docdb: DocDBServer, captured_logs: list[logging.LogRecord]
) -> None:
    wrong = "Wr0ng:pa55/word@x"
    info = docdb.mongo_info(user=USER, password=wrong, **FAST)
    source = source_for(info)
    try:
        result = one_pass(source).targets[0]
    finally:
        source.close()
    assert values(result) == {("mongo_up", ()): 0.0}
    assert health(result) == down("auth_failed")
    assert result.outcomes[0].detail == "authentication failed: Authentication failed. (code 18)"

    lines = [
        record.getMessage() + " " + json.dumps(record.__dict__, default=str)
        for record in captured_logs
    ]
    down_lines = [r for r in captured_logs if r.getMessage() == "source down"]
    assert len(down_lines) == 1
    assert down_lines[0].__dict__["reason"] == "auth_failed"
    for secret in (wrong, quote_plus(wrong)):
        assert not [line for line in lines if secret in line]


def test_missing_role_is_command_failed(tls_files: TlsFiles) -> None:
    with DocDBServer(users={USER: PASSWORD}, status_error=(13, "Authorization failure")) as server:
        source = source_for(server.mongo_info(user=USER, password=PASSWORD))
        try:
            result = one_pass(source).targets[0]
        finally:
            source.close()
    assert values(result) == {("mongo_up", ()): 0.0}
    assert health(result) == down("command_failed")
    assert result.outcomes[0].detail == (
        "serverStatus failed: Authorization failure (code 13); the login needs the "
        "clusterMonitor role (or serverStatus granted)"
    )


def test_nothing_listening_is_unreachable() -> None:
    port = free_port()
    info = {"connect": {"address": "127.0.0.1", "port": str(port)}, "parameter": FAST}
    with closing(source_for(info)) as source:
        result = one_pass(source).targets[0]
    assert values(result) == {("mongo_up", ()): 0.0}
    assert health(result) == down("unreachable")
    assert result.outcomes[0].detail == (
        f"no usable server: 127.0.0.1:{port}: [Errno 111] Connection refused "
        "(configured timeouts: socketTimeoutMS: 1000.0ms, connectTimeoutMS: 1000.0ms)"
    )


def test_several_targets_each_pushed_as_its_own_and_a_down_one_costs_no_other(
    docdb: DocDBServer,
) -> None:
    gone = free_port()
    up_target = docdb.mongo_info(user=USER, password=PASSWORD) | {"name": "docdb-a"}
    down_target = {
        "name": "docdb-b",
        "connect": {"address": "127.0.0.1", "port": str(gone), "user": USER, "pwd": PASSWORD},
        "parameter": FAST,
    }
    with closing(
        Runtime.from_environ({"MONGO_INFO": json.dumps([up_target, down_target])})
    ) as runtime:
        result = runtime.collect(budget_seconds=30)
    assert [[type(s) for s in t.sources] for t in runtime.targets] == [[DocumentDBSource]] * 2
    by_name = {t.target: t for t in result.targets}
    assert sorted(by_name) == ["docdb-a", "docdb-b"]
    assert values(by_name["docdb-a"]) == EXPECTED_DOCDB_VALUES
    assert health(by_name["docdb-a"]) == UP
    assert values(by_name["docdb-b"]) == {("mongo_up", ()): 0.0}
    assert health(by_name["docdb-b"]) == down("unreachable")


def test_server_stopped_mid_run_is_down_next_pass_and_recovers(tls_files: TlsFiles) -> None:
    server = DocDBServer(tls=tls_files, users={USER: PASSWORD}).start()
    source = source_for(server.mongo_info(user=USER, password=PASSWORD, **FAST))
    target = Target(server.address, [source])
    try:
        assert values(one_pass(targets=[target]).targets[0]) == EXPECTED_DOCDB_VALUES
        first_success = target.last_success["mongo"]

        server.stop()
        result = one_pass(targets=[target]).targets[0]
        assert values(result) == {("mongo_up", ()): 0.0}
        assert health(result) == down("unreachable")
        # The last success stays visible while the server is down.
        assert (
            values(result, "middleware_collector_last_success")[
                ("middleware_collector_last_success_timestamp_seconds", (("source", "mongo"),))
            ]
            == first_success
        )

        server.restart()  # same port
        result = one_pass(targets=[target]).targets[0]
        assert values(result) == EXPECTED_DOCDB_VALUES
        assert health(result) == UP
    finally:
        source.close()
        server.stop()


# --- nx-27017: an independent MongoDB-wire server ----------------------------------------------


@pytest.fixture(scope="module")
def nx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nx27017Server]:
    with Nx27017Server(tmp_path_factory.mktemp("nx-27017")) as server:
        yield server


def test_nx_27017_lacks_opcounters_and_documents_and_stays_up(nx: Nx27017Server) -> None:
    source = source_for(nx.mongo_info(**FAST))
    try:
        result = one_pass(source).targets[0]
    finally:
        source.close()
    found = values(result)
    assert sorted(found) == [
        ("mongo_available_connections", ()),
        ("mongo_current_connections", ()),
        ("mongo_oldest_op_seconds", ()),
        ("mongo_up", ()),
        ("mongo_uptime_seconds", ()),
        ("mongo_version_info", (("version", "7.0.0"),)),
    ]
    assert found[("mongo_up", ())] == 1.0
    # Its currentOp lists the collector's own command, and nothing else runs: left out.
    assert found[("mongo_oldest_op_seconds", ())] == 0.0
    assert found[("mongo_available_connections", ())] == 1000.0
    # Live counters of a real server: the collector's own connection is among them.
    assert found[("mongo_current_connections", ())] >= 1.0
    assert health(result) == UP


def test_nx_27017_restarted_between_passes(nx: Nx27017Server) -> None:
    source = source_for(nx.mongo_info(**FAST))
    target = Target(nx.address, [source])
    try:
        assert health(one_pass(targets=[target]).targets[0]) == UP
        nx.stop()
        result = one_pass(targets=[target]).targets[0]
        assert values(result) == {("mongo_up", ()): 0.0}
        assert health(result) == down("unreachable")
        nx.start()  # same port
        result = one_pass(targets=[target]).targets[0]
        assert values(result)[("mongo_up", ())] == 1.0
        assert health(result) == UP
    finally:
        source.close()


def test_pushed_to_a_real_pushgateway_under_the_target_name(
    docdb: DocDBServer, clean_pushgateway: Pushgateway
) -> None:
    info = docdb.mongo_info(user=USER, password=PASSWORD) | {"name": "docdb-prod"}
    environ = {
        "MONGO_INFO": json.dumps(info),
        "PUSHGATEWAY_URL": clean_pushgateway.url,
        "PUSHGATEWAY_JOB": "docdb-test",
    }
    with closing(Runtime.from_environ(environ)) as runtime:
        build_sink(runtime.settings).send(runtime.collect(budget_seconds=30))
    assert [[type(s) for s in t.sources] for t in runtime.targets] == [[DocumentDBSource]]
    pushed = {
        key: value
        for key, value in clean_pushgateway.samples("docdb-test", "docdb-prod").items()
        if key[0].startswith("mongo_")
    }
    assert pushed == {
        (name, frozenset(labels)): value for (name, labels), value in EXPECTED_DOCDB_VALUES.items()
    }
