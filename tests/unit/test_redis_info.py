"""INFO text -> series, without a server: replies a 7.0 test server never gives (Valkey's
fields, old replicas without lag, a replica whose link is down, malformed lines), units for
the EMF sink, and the mapping table of docs/elasticache.md held to the code."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client import Metric

from middleware_monitoring.config.elasticache import RedisSettings
from middleware_monitoring.emf import UNITS, EmfSink, unit_for
from middleware_monitoring.model import PassResult, TargetResult
from middleware_monitoring.redis import info
from tests.dashboards import ROOT

NOW = 1_800_000_000.0

# A Valkey 8 replica of a primary that is gone, with two databases, an old-style replica line
# (no lag) and error statistics; values the collector must skip are marked.
REPLY = """\
# Server\r
valkey_version:8.0.2\r
redis_version:7.2.4\r
server_mode:cluster\r
redis_build_id:1234e56\r
os:Amazon ElastiCache\r
process_id:1\r
run_id:0000000000000000000000000000000000000042\r
tcp_port:6379\r
uptime_in_seconds:100\r
executable:/usr/bin/valkey-server\r
\r
# Clients\r
connected_clients:12\r
maxclients:65000\r
\r
# Memory\r
used_memory:1048576\r
maxmemory:2097152\r
maxmemory_policy:volatile-lru\r
mem_fragmentation_ratio:1.25\r
\r
# Persistence\r
rdb_last_bgsave_status:err\r
aof_last_write_status:ok\r
rdb_last_bgsave_time_sec:-1\r
\r
# Stats\r
keyspace_hits:40\r
keyspace_misses:not-a-number\r
evicted_keys:7\r
latest_fork_usec:1500\r
total_error_replies:3\r
acl_access_denied_auth:2\r
\r
# Replication\r
role:slave\r
master_host:fe80::1\r
master_port:6379\r
master_link_status:down\r
master_last_io_seconds_ago:-1\r
master_sync_in_progress:0\r
slave_read_repl_offset:500\r
slave_repl_offset:500\r
slave_read_only:1\r
connected_slaves:2\r
slave0:ip=10.0.0.2,port=6379,state=online,offset=480,lag=1\r
slave1:ip=10.0.0.3,port=6379,state=wait_bgsave,offset=0\r
master_replid:abc\r
\r
# CPU\r
used_cpu_sys:1.5\r
\r
# Commandstats\r
cmdstat_get:calls=21,usec=175,usec_per_call=8.33,rejected_calls=1,failed_calls=2\r
cmdstat_config|get:calls=4,usec=2000000,usec_per_call=500000.00,rejected_calls=0,failed_calls=0\r
cmdstat_sync:calls=3,usec=30,usec_per_call=10.00\r
cmdstat_broken:calls=x,usec=1\r
\r
# Errorstats\r
errorstat_ERR:count=2\r
errorstat_NOPERM:count=1\r
\r
# Latencystats\r
latency_percentiles_usec_get:p50=1.003,p99=4.015,p99.9=8.031\r
latency_percentiles_usec_config|get:p50=500000.1\r
latency_percentiles_usec_gone:p50=1.003\r
\r
# Cluster\r
cluster_enabled:1\r
\r
# Keyspace\r
db0:keys=10,expires=4,avg_ttl=2500\r
db3:keys=1,expires=0,avg_ttl=0,subexpiry=0\r
dbx:keys=1,expires=1\r
db9:broken\r
"""


def samples(families: list[Metric]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_parse_keeps_the_servers_strings() -> None:
    fields = info.parse(REPLY)
    assert fields["master_host"] == "fe80::1"  # split at the first colon only
    assert fields["redis_build_id"] == "1234e56"  # would be a float to a type-guessing parser
    assert fields["run_id"] == "0000000000000000000000000000000000000042"
    assert fields["executable"] == "/usr/bin/valkey-server"
    assert "# Server" not in fields and "" not in fields


def test_every_series_of_the_reply_exactly() -> None:
    link = {"master_host": "fe80::1", "master_port": "6379"}
    assert samples(list(info.families(info.parse(REPLY), NOW))) == {
        key("redis_up"): 1.0,
        key(
            "redis_instance_info",
            role="slave",
            redis_version="7.2.4",
            redis_build_id="1234e56",
            redis_mode="cluster",
            os="Amazon ElastiCache",
            maxmemory_policy="volatile-lru",
            tcp_port="6379",
            run_id="0000000000000000000000000000000000000042",
            process_id="1",
            master_replid="abc",
            valkey_version="8.0.2",
        ): 1.0,
        key("redis_uptime_in_seconds"): 100.0,
        key("redis_start_time_seconds"): NOW - 100,
        key("redis_connected_clients"): 12.0,
        key("redis_max_clients"): 65000.0,
        key("redis_memory_used_bytes"): 1048576.0,
        key("redis_memory_max_bytes"): 2097152.0,
        key("redis_mem_fragmentation_ratio"): 1.25,
        key("redis_rdb_last_bgsave_status"): 0.0,  # err
        key("redis_aof_last_write_status"): 1.0,  # ok
        key("redis_rdb_last_bgsave_duration_sec"): -1.0,
        key("redis_keyspace_hits_total"): 40.0,
        # keyspace_misses is not a number: left out, not 0
        key("redis_evicted_keys_total"): 7.0,
        key("redis_latest_fork_seconds"): 0.0015,
        key("redis_total_error_replies_total"): 3.0,
        key("redis_process_id"): 1.0,
        key("redis_acl_access_denied_auth_total"): 2.0,
        key("redis_connected_slaves"): 2.0,
        key("redis_cpu_sys_seconds_total"): 1.5,
        key("redis_cluster_enabled"): 1.0,
        key("redis_db_keys", db="db0"): 10.0,
        key("redis_db_keys", db="db3"): 1.0,
        key("redis_db_keys_expiring", db="db0"): 4.0,
        key("redis_db_keys_expiring", db="db3"): 0.0,
        key("redis_db_avg_ttl_seconds", db="db0"): 2.5,
        key("redis_db_avg_ttl_seconds", db="db3"): 0.0,
        key("redis_connected_slave_offset_bytes", slave_ip="10.0.0.2", slave_port="6379",
            slave_state="online"): 480.0,
        key("redis_connected_slave_offset_bytes", slave_ip="10.0.0.3", slave_port="6379",
            slave_state="wait_bgsave"): 0.0,
        # The second replica line has no lag: no lag series for it (not a fake 0).
        key("redis_connected_slave_lag_seconds", slave_ip="10.0.0.2", slave_port="6379",
            slave_state="online"): 1.0,
        key("redis_master_link_up", **link): 0.0,
        key("redis_master_last_io_seconds_ago", **link): -1.0,
        key("redis_master_sync_in_progress", **link): 0.0,
        key("redis_slave_repl_offset", **link): 500.0,
        key("redis_slave_info", **link, read_only="1"): 1.0,
        key("redis_errors_total", err="ERR"): 2.0,
        key("redis_errors_total", err="NOPERM"): 1.0,
        # Per command; before 6.2 (sync's line) no rejected or failed calls; a line whose
        # calls are not a number is left out.
        key("redis_commands_total", cmd="get"): 21.0,
        key("redis_commands_total", cmd="config|get"): 4.0,
        key("redis_commands_total", cmd="sync"): 3.0,
        key("redis_commands_duration_seconds_total", cmd="get"): 175e-6,
        key("redis_commands_duration_seconds_total", cmd="config|get"): 2.0,
        key("redis_commands_duration_seconds_total", cmd="sync"): 30e-6,
        key("redis_commands_rejected_calls_total", cmd="get"): 1.0,
        key("redis_commands_rejected_calls_total", cmd="config|get"): 0.0,
        key("redis_commands_failed_calls_total", cmd="get"): 2.0,
        key("redis_commands_failed_calls_total", cmd="config|get"): 0.0,
        # redis_exporter's summary: quantiles as INFO names them, count/sum from cmdstat (µs);
        # a command with percentiles but no cmdstat line has none.
        key("redis_latency_percentiles_usec", cmd="get", quantile="50"): 1.003,
        key("redis_latency_percentiles_usec", cmd="get", quantile="99"): 4.015,
        key("redis_latency_percentiles_usec", cmd="get", quantile="99.9"): 8.031,
        key("redis_latency_percentiles_usec_count", cmd="get"): 21.0,
        key("redis_latency_percentiles_usec_sum", cmd="get"): 175.0,
        key("redis_latency_percentiles_usec", cmd="config|get", quantile="50"): 500000.1,
        key("redis_latency_percentiles_usec_count", cmd="config|get"): 4.0,
        key("redis_latency_percentiles_usec_sum", cmd="config|get"): 2000000.0,
    }  # fmt: skip


def test_types_follow_redis_exporter() -> None:
    families = {f.name: f.type for f in info.families(info.parse(REPLY), NOW)}
    assert families["redis_keyspace_hits"] == "counter"
    assert families["redis_errors"] == "counter"
    assert families["redis_total_error_replies"] == "counter"  # SPEC 18: ..._total
    assert families["redis_connected_clients"] == "gauge"
    assert families["redis_commands"] == "counter"
    assert families["redis_latency_percentiles_usec"] == "summary"


def test_slowlog_newest_entry_and_an_empty_log() -> None:
    entry: list[object] = [41, 1_800_000_000, 25_000, ["KEYS", "*"], "10.0.0.9:5000", ""]
    assert samples(list(info.slowlog_families(7, entry))) == {
        key("redis_slowlog_length"): 7.0,
        key("redis_slowlog_last_id"): 41.0,
        key("redis_last_slow_execution_duration_seconds"): 0.025,
    }
    assert samples(list(info.slowlog_families(0, None))) == {
        key("redis_slowlog_length"): 0.0,
        key("redis_slowlog_last_id"): 0.0,
        key("redis_last_slow_execution_duration_seconds"): 0.0,
    }


def test_a_primary_reports_no_replica_series_and_an_empty_reply_only_up_and_info() -> None:
    got = samples(list(info.families(info.parse("# Replication\r\nrole:master\r\n"), NOW)))
    assert got == {
        key("redis_up"): 1.0,
        key(
            "redis_instance_info", **{**dict.fromkeys(info.INFO_LABELS, ""), "role": "master"}
        ): 1.0,
    }


def test_every_series_has_its_cloudwatch_unit_for_the_emf_sink() -> None:
    families = info.units()
    assert len(families) == len(info.FIELDS) + len(info.DERIVED)
    for name, unit in families.items():
        assert UNITS[name].value == unit, name
    for family in info.families(info.parse(REPLY), NOW):
        assert unit_for(family).value == families[family.name], family.name


def test_restart_ids_are_emf_properties_not_dimensions(capsys: pytest.CaptureFixture[str]) -> None:
    """A node restart must not create new billed CloudWatch metrics."""
    families = [f for f in info.families(info.parse(REPLY), NOW) if f.name == "redis_instance_info"]
    result = PassResult([TargetResult("node-1", families, [])], 0.1, TargetResult("c", [], []))
    EmfSink("NS", ("redis_instance_info",)).send(result)  # opted in (EMF_METRICS)
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    (dimensions,) = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert "run_id" not in dimensions and "master_replid" not in dimensions
    assert "process_id" not in dimensions
    assert (line["run_id"], line["role"]) == ("0000000000000000000000000000000000000042", "slave")


def test_settings_hide_the_password_and_name_the_node() -> None:
    settings = RedisSettings("orders-cache-001", "h.cache.amazonaws.com", password="s3cret-token")
    assert "s3cret-token" not in repr(settings)
    assert settings.where == "orders-cache-001 (h.cache.amazonaws.com:6379)"
    assert (settings.port, settings.tls, settings.user, settings.tls_ca_file) == (
        6379,
        False,
        None,
        None,
    )
    named = RedisSettings("n", "h", origin="TARGETS_FILE elasticache[2] (orders-cache)")
    assert named.where == "TARGETS_FILE elasticache[2] (orders-cache)"


# --- docs/elasticache.md ------------------------------------------------------------------------

DOC = ROOT / "docs" / "elasticache.md"


def _table_after(heading: str) -> list[list[str]]:
    text = DOC.read_text()
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # the header row


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_docs_map_every_info_field_to_its_series() -> None:
    rows = _table_after("## INFO field -> series")
    documented: dict[str, tuple[str, str, str]] = {}
    for row in rows:
        (series,) = _code(row[1])
        documented[series] = (", ".join(_code(row[0])) or row[0], row[2], row[3])
    expected: dict[str, Any] = {}
    for field in info.FIELDS:
        expected[field.series] = (field.info, field.kind, field.unit)
    for derived in info.DERIVED:
        expected[derived.series] = (documented.get(derived.series, ("",))[0], derived.kind,
                                    derived.unit)  # fmt: skip
    assert documented == expected


def test_docs_list_every_cloudwatch_series() -> None:
    from middleware_monitoring.cloudwatch.declarations import ELASTICACHE_SERIES

    rows = _table_after("## From CloudWatch")
    documented = {_code(row[0])[0]: (_code(row[1])[0], row[2], row[3]) for row in rows}
    assert documented == {
        s.output: (s.metric, s.statistic, UNITS[s.output].value) for s in ELASTICACHE_SERIES
    }
