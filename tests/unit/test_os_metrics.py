"""Enhanced Monitoring events (RDS PostgreSQL and Aurora PostgreSQL shapes of AWS's field
tables, tests/standins/rdsosmetrics.py) parsed into exact rds_os_* series: every series, its
labels and its value after the unit conversions (kB x 1024, ms / 1000); an old event; a
malformed one."""

from __future__ import annotations

import json

import pytest

from middleware_monitoring.insights.os_metrics import MalformedEvent, ParsedEvent, parse_event
from tests.standins.rdsosmetrics import aurora_postgres_event, rds_postgres_event

TAKEN = 1_780_000_000.0
KIB = 1024

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def series(parsed: ParsedEvent) -> Series:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parsed.families
        for s in family.samples
    }


def one(name: str, value: float, **labels: str) -> Series:
    return {(name, tuple(sorted(labels.items()))): value}


def many(name: str, label: str, values: dict[str, float]) -> Series:
    out: Series = {}
    for key, value in values.items():
        out |= one(name, value, **{label: key})
    return out


COMMON: Series = {
    **many(
        "rds_os_cpu_utilization_percent",
        "mode",
        {
            "guest": 0.0,
            "irq": 0.02,
            "system": 1.5,
            "wait": 0.25,
            "idle": 90.5,
            "user": 7.0,
            "total": 9.5,
            "steal": 0.1,
            "nice": 0.63,
        },
    ),
    **many("rds_os_load_average", "period", {"1m": 0.5, "5m": 0.25, "15m": 0.125}),
    **many(
        "rds_os_memory_bytes",
        "kind",
        {
            "writeback": 0.0,
            "cached": 2048000.0 * KIB,
            "free": 512000.0 * KIB,
            "inactive": 1024000.0 * KIB,
            "pageTables": 8192.0 * KIB,
            "dirty": 256.0 * KIB,
            "mapped": 128000.0 * KIB,
            "active": 2560000.0 * KIB,
            "total": 4000000.0 * KIB,
            "slab": 64000.0 * KIB,
            "buffers": 32000.0 * KIB,
        },
    ),
    **many(
        "rds_os_swap_bytes", "kind", {"total": 4096.0 * KIB, "free": 3072.0 * KIB, "cached": 0.0}
    ),
    **many(
        "rds_os_tasks",
        "state",
        {"sleeping": 120, "zombie": 0, "running": 2, "stopped": 0, "total": 122, "blocked": 1},
    ),
    **one("rds_os_network_bytes_per_second", 2048.5, interface="eth0", direction="rx"),
    **one("rds_os_network_bytes_per_second", 4096.25, interface="eth0", direction="tx"),
    **one("rds_os_sample_age_seconds", 30.0),
}


def test_rds_postgres_event_every_series_exact() -> None:
    event = rds_postgres_event("db-ORDERS", "orders-db", TAKEN)
    parsed = parse_event(json.dumps(event), now=TAKEN + 30, processes=10)
    assert parsed.taken_at == TAKEN
    assert parsed.skipped == []
    assert series(parsed) == {
        **COMMON,
        **one("rds_os_vcpus", 2),
        **one("rds_os_disk_iops", 3.5, device="rdsdev", op="read"),
        **one("rds_os_disk_iops", 7.5, device="rdsdev", op="write"),
        **one("rds_os_disk_throughput_bytes_per_second", 64.0 * KIB, device="rdsdev", op="read"),
        **one("rds_os_disk_throughput_bytes_per_second", 100.5 * KIB, device="rdsdev", op="write"),
        **one("rds_os_disk_utilization_percent", 4.25, device="rdsdev"),
        **one("rds_os_disk_queue_length", 0.75, device="rdsdev"),
        **one("rds_os_disk_await_seconds", 2.5 / 1000, device="rdsdev"),
        **one("rds_os_filesystem_size_bytes", 20971520.0 * KIB, mount="/rdsdbdata"),
        **one("rds_os_filesystem_used_bytes", 1048576.0 * KIB, mount="/rdsdbdata"),
        # Two backends of one name are one series: CPU 4.0 + 2.5, memory 2.5 + 1.5.
        **many(
            "rds_os_process_cpu_percent",
            "process",
            {"postgres": 6.5, "RDS processes": 0.75, "OS processes": 0.5, "postgres: logger": 0.0},
        ),
        **many(
            "rds_os_process_memory_percent",
            "process",
            {
                "postgres": 4.0,
                "RDS processes": 2.75,
                "OS processes": 0.25,
                "postgres: logger": 0.125,
            },
        ),
    }


def test_aurora_event_maps_the_cluster_storage_entry() -> None:
    event = aurora_postgres_event("db-LEDGER1", "ledger-1", TAKEN)
    parsed = parse_event(json.dumps(event), now=TAKEN + 30, processes=10)
    assert series(parsed) == {
        **COMMON,
        **one("rds_os_vcpus", 4),
        # The diskIO entry without a device: Aurora's cluster storage.
        **one("rds_os_disk_iops", 12.0, device="aurora-storage", op="read"),
        **one("rds_os_disk_iops", 24.0, device="aurora-storage", op="write"),
        **one(
            "rds_os_disk_throughput_bytes_per_second", 4096.0, device="aurora-storage", op="read"
        ),
        **one(
            "rds_os_disk_throughput_bytes_per_second", 8192.0, device="aurora-storage", op="write"
        ),
        **one("rds_os_disk_latency_seconds", 1.25 / 1000, device="aurora-storage", op="read"),
        **one("rds_os_disk_latency_seconds", 2.5 / 1000, device="aurora-storage", op="write"),
        **one("rds_os_disk_queue_length", 3.0, device="aurora-storage"),
        **one("rds_os_aurora_storage_bytes_per_second", 65536.0, direction="rx"),
        **one("rds_os_aurora_storage_bytes_per_second", 32768.0, direction="tx"),
        **one("rds_os_disk_iops", 0.5, device="rdstemp", op="read"),
        **one("rds_os_disk_iops", 1.5, device="rdstemp", op="write"),
        **one("rds_os_disk_throughput_bytes_per_second", 8.0 * KIB, device="rdstemp", op="read"),
        **one("rds_os_disk_throughput_bytes_per_second", 16.0 * KIB, device="rdstemp", op="write"),
        **one("rds_os_disk_utilization_percent", 0.5, device="rdstemp"),
        **one("rds_os_disk_queue_length", 0.25, device="rdstemp"),
        **one("rds_os_disk_await_seconds", 0.75 / 1000, device="rdstemp"),
        **one("rds_os_filesystem_size_bytes", 8388608.0 * KIB, mount="/rdstemp"),
        **one("rds_os_filesystem_used_bytes", 524288.0 * KIB, mount="/rdstemp"),
        # Two threads of one process (tgid 8455): CPU summed, its memory counted once.
        **many("rds_os_process_cpu_percent", "process", {"aurora": 1.75, "RDS processes": 0.75}),
        **many("rds_os_process_memory_percent", "process", {"aurora": 66.5, "RDS processes": 2.75}),
    }


def test_only_the_busiest_processes_are_sent() -> None:
    event = rds_postgres_event("db-ORDERS", "orders-db", TAKEN)
    parsed = series(parse_event(json.dumps(event), now=TAKEN, processes=2))
    assert {labels for name, labels in parsed if name == "rds_os_process_cpu_percent"} == {
        (("process", "postgres"),),
        (("process", "RDS processes"),),
    }


def test_an_old_event_sends_only_its_age() -> None:
    event = rds_postgres_event("db-ORDERS", "orders-db", TAKEN)
    parsed = parse_event(json.dumps(event), now=TAKEN + 600, processes=10, max_age_seconds=300)
    assert series(parsed) == one("rds_os_sample_age_seconds", 600.0)


def test_a_field_that_is_no_number_is_left_out_and_named() -> None:
    event = rds_postgres_event("db-ORDERS", "orders-db", TAKEN)
    event["cpuUtilization"]["user"] = "n/a"
    event["memory"]["free"] = None  # absent this time: not an error
    parsed = parse_event(json.dumps(event), now=TAKEN, processes=10)
    assert parsed.skipped == ["cpuUtilization.user"]
    got = series(parsed)
    assert ("rds_os_cpu_utilization_percent", (("mode", "user"),)) not in got
    assert ("rds_os_memory_bytes", (("kind", "free"),)) not in got
    assert got[("rds_os_cpu_utilization_percent", (("mode", "system"),))] == 1.5


def test_the_log_events_own_time_when_the_message_has_none() -> None:
    event = rds_postgres_event("db-ORDERS", "orders-db", TAKEN)
    del event["timestamp"]
    parsed = parse_event(
        json.dumps(event), now=TAKEN + 5, processes=10, event_timestamp_ms=int(TAKEN * 1000)
    )
    assert parsed.age_seconds == 5.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RDS OS metrics", "not JSON (Expecting value at character 0)"),
        ('{"numVCPUs": 2', "not JSON (Expecting ',' delimiter at character 14)"),
        ("[1, 2]", "not a JSON object but list"),
        ('{"numVCPUs": 2}', "no readable timestamp (got None)"),
        ('{"timestamp": "yesterday"}', "no readable timestamp (got 'yesterday')"),
    ],
)
def test_a_malformed_event_says_why(text: str, message: str) -> None:
    with pytest.raises(MalformedEvent) as raised:
        parse_event(text, now=TAKEN, processes=10)
    assert str(raised.value) == message
