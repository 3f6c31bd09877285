"""The `replica` label of pg_replica_lag_seconds names a replica, not one of its connections:
two real streaming replicas that share the default application_name (walreceiver) keep their
labels when they reconnect (a new label is a new series, and under EMF a new billed metric).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from middleware_monitoring.postgres.source import PostgresSource
from tests.helpers import Closer
from tests.integration.pg_helpers import labels_of, ok_pass, prepare, series_of, settings_for
from tests.standins.postgres import PostgresServer

SLOT = "mm_label_slot"
# Reconnect quickly after the walsender is ended (the default waits 5 s).
REPLICA_SETTINGS: dict[str, str | int] = {
    "wal_retrieve_retry_interval": "100ms",
    "wal_receiver_status_interval": 1,
}
CONNECTIONS = (
    "SELECT application_name, client_port, pid FROM pg_stat_replication"
    " WHERE state = 'streaming' ORDER BY pid"
)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def streaming(server: PostgresServer) -> list[list[object]]:
    return server.execute_as_superuser(CONNECTIONS) or []


def replicas(source: PostgresSource) -> set[str]:
    samples = ok_pass(source)
    return {labels_of(key)["replica"] for key in series_of(samples, "pg_replica_lag_seconds")}


def test_replicas_sharing_walreceiver_keep_their_labels_across_reconnects(
    pg17: PostgresServer, closer: Closer
) -> None:
    server = prepare(pg17)
    with_slot = server.start_replica(slot=SLOT, settings=REPLICA_SETTINGS)
    without = server.start_replica(settings=REPLICA_SETTINGS)
    try:
        wait_for(lambda: len(streaming(server)) == 2, "two replicas streaming")
        before = streaming(server)
        assert [row[0] for row in before] == ["walreceiver", "walreceiver"]
        source = closer(PostgresSource(settings_for(server)))
        first = replicas(source)
        # Every walsender ended: both replicas connect again, from other ports.
        server.execute_as_superuser("SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
        old_ports = {row[1] for row in before}
        wait_for(
            lambda: len(now := streaming(server)) == 2 and not {r[1] for r in now} & old_ports,
            "both replicas back on new ports",
        )
        second = replicas(source)
    finally:
        with_slot.cleanup()
        without.cleanup()
        server.execute_as_superuser(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = :slot",
            slot=SLOT,
        )
    # The one streaming through a slot is named by it; the other by its address.
    assert first == {f"walreceiver@{SLOT}", "walreceiver@127.0.0.1"}
    assert second == first
