"""The ElastiCache engine source side by side with redis_exporter 1.45 (Debian's
``prometheus-redis-exporter``) on one redis-server 7.0 after a workload (SPEC 18): the names
it derives from INFO are the product's, and every value neither reader's own commands move is
equal. Also what an RBAC user needs: the access string docs/elasticache.md gives works with
nothing refused, and a user without SLOWLOG loses the three slowlog series alone."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from prometheus_client import Metric
from prometheus_client.parser import text_string_to_metric_families

from middleware_monitoring.redis.source import RedisSource
from tests.dashboards import REDIS_INFO_ALWAYS
from tests.helpers import Closer
from tests.standins.redis import MONITOR, TOKEN, AclUser, RedisExporter, RedisServer

NOW = 1_800_000_000.0
SampleKey = tuple[str, frozenset[tuple[str, str]]]

# What redis_exporter sends that does not come from INFO: its own scrape bookkeeping
# (redis_exporter_*, redis_target_scrape_request_errors_total), CONFIG
# GET (which ElastiCache refuses), the slow log and LATENCY LATEST (compared apart), and the
# key-group timing of an option left off. redis_up is the scrape's outcome, not INFO's.
NOT_FROM_INFO = frozenset(
    {
        "redis_up",
        "redis_target_scrape_request_errors_total",
        "redis_last_key_groups_scrape_duration_milliseconds",
        "redis_config_io_threads",
        "redis_config_maxclients",
        "redis_config_maxmemory",
        "redis_slowlog_length",
        "redis_slowlog_last_id",
        "redis_last_slow_execution_duration_seconds",
        "redis_latency_spike_last",
        "redis_latency_spike_duration_seconds",
    }
)
# Counters redis_exporter 1.45 names without ``_total``; a Prometheus counter's samples end
# in it (SPEC 18: redis_total_error_replies_total).
RENAMED_COUNTERS = frozenset(
    {
        "redis_total_error_replies",
        "redis_unexpected_error_replies",
        "redis_total_reads_processed",
        "redis_total_writes_processed",
        "redis_io_threaded_reads_processed",
        "redis_io_threaded_writes_processed",
        "redis_dump_payload_sanitizations",
    }
)
# Values a reader moves by connecting and asking (its connection's buffers and memory, the
# clients count) or that it computes from its own clock: not comparable between two readers.
MOVED_BY_A_READER = ("redis_memory_", "redis_allocator_", "redis_mem_", "redis_client")
MOVED_NAMES = frozenset(
    {"redis_connected_clients", "redis_start_time_seconds", "redis_mem_fragmentation_ratio"}
)


def _exporter_families(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(families: Iterator[Metric] | list[Metric]) -> dict[SampleKey, float]:
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def _types(families: list[Metric]) -> dict[str, str]:
    """Sample name -> type, as the text format shows it (a counter's samples end in _total)."""
    return {s.name: f.type for f in families for s in f.samples if not s.name.endswith("_created")}


def _workload(server: RedisServer) -> None:
    """Reads, writes, misses, expiring keys, an error reply and a slow command (the slow log
    takes everything while the threshold is 0)."""
    admin = server.admin
    admin.config_set("slowlog-log-slower-than", "0")
    for i in range(50):
        admin.set(f"k{i}", "v" * i)
    admin.set("expiring", "1", ex=3600)
    for i in range(70):
        admin.get(f"k{i}")
    admin.hset("h", mapping={"a": "1", "b": "2"})
    admin.lpush("l", "x", "y", "z")
    admin.incr("counter")
    with pytest.raises(Exception, match="unknown command"):
        admin.execute_command("NO-SUCH-COMMAND")
    with pytest.raises(Exception, match="WRONGTYPE"):
        admin.incr("h")
    admin.config_set("slowlog-log-slower-than", "10000")


@pytest.fixture
def node() -> Iterator[RedisServer]:
    with RedisServer(password=TOKEN, users=[MONITOR]) as server:
        yield server


def test_redis_exporter_names_and_values(node: RedisServer, closer: Closer) -> None:
    _workload(node)
    with RedisExporter(node) as exporter:
        before = list(text_string_to_metric_families(exporter.scrape()))
        product = closer(RedisSource(node.settings(password=TOKEN), clock=lambda: NOW))
        ours = list(product.collect())
        product.close()
        after = list(text_string_to_metric_families(exporter.scrape()))

    theirs_types, our_types = _types(before), _types(ours)
    from_info = {
        name
        for name in theirs_types
        if name not in NOT_FROM_INFO and not name.startswith("redis_exporter_")
    }
    present = {
        name
        for name in from_info
        if name in our_types or (name in RENAMED_COUNTERS and f"{name}_total" in our_types)
    }
    # Every name redis_exporter derives from this node's INFO is there (at least 95% is the
    # contract; a 7.0 primary gives all of them).
    assert len(from_info) >= 100
    assert sorted(from_info - present) == []
    assert len(present) / len(from_info) >= 0.95
    # ... under its types: counters as counters (the renamed ones too), its one summary.
    for name in present:
        ours_name = name if name in our_types else f"{name}_total"
        expected = theirs_types[name]
        if name == "redis_expired_time_cap_reached_total":
            expected = "counter"  # a gauge in 1.45, a counter in later redis_exporter releases
        assert our_types[ours_name] == expected, name
    # The slow log too.
    for name in ("redis_slowlog_length", "redis_slowlog_last_id"):
        assert our_types[name] == theirs_types[name] == "gauge"

    # Values: a sample equal in both of redis_exporter's scrapes (so neither reader moved it)
    # must be the product's, read between them.
    first, second, got = _samples(before), _samples(after), _samples(ours)
    renamed = {
        (f"{name}_total", labels): value
        for (name, labels), value in first.items()
        if name in RENAMED_COUNTERS
    }
    # The commands the readers themselves run (AUTH, INFO, ...: called between the two
    # scrapes): each reader moves their statistics, and a latency percentile may be back at
    # the first scrape's value in the second while the product, between them, saw another.
    readers_commands = {
        dict(labels)["cmd"]
        for (name, labels), value in first.items()
        if name == "redis_commands_total" and second.get((name, labels)) != value
    }
    compared: dict[SampleKey, float] = {}
    for (name, labels), value in [*first.items(), *renamed.items()]:
        original = name.removesuffix("_total") if (name, labels) in renamed else name
        if original.startswith(MOVED_BY_A_READER) or original in MOVED_NAMES:
            continue
        if dict(labels).get("cmd") in readers_commands:
            continue
        if second.get((original, labels)) != value or (name, labels) not in got:
            continue
        compared[(name, labels)] = value
    assert {k: got[k] for k in compared} == compared
    # ... and the comparison covers the workload, not just idle zeros.
    cmd = lambda c: frozenset({("cmd", c)})  # noqa: E731
    for expected_key, value in {
        ("redis_commands_total", cmd("set")): 51.0,
        ("redis_commands_total", cmd("get")): 70.0,
        ("redis_commands_failed_calls_total", cmd("incrby")): 1.0,  # valkey-py: INCRBY
        ("redis_keyspace_hits_total", frozenset()): 50.0,
        ("redis_keyspace_misses_total", frozenset()): 20.0,
        ("redis_db_keys", frozenset({("db", "db0")})): 54.0,
        ("redis_db_keys_expiring", frozenset({("db", "db0")})): 1.0,
        ("redis_errors_total", frozenset({("err", "ERR")})): 1.0,
        ("redis_errors_total", frozenset({("err", "WRONGTYPE")})): 1.0,
        ("redis_total_error_replies_total", frozenset()): 2.0,
        ("redis_latency_percentiles_usec_count", cmd("get")): 70.0,
        ("redis_slowlog_length", frozenset()): first[("redis_slowlog_length", frozenset())],
    }.items():
        assert compared.get(expected_key) == value, expected_key
    assert sum(1 for name, _ in compared if name == "redis_latency_percentiles_usec") >= 9
    # The slow log as redis_exporter reads it (its own scrape adds no entry: threshold 10 ms).
    for name in (
        "redis_slowlog_length",
        "redis_slowlog_last_id",
        "redis_last_slow_execution_duration_seconds",
    ):
        assert got[(name, frozenset())] == first[(name, frozenset())] == second[(name, frozenset())]
    # Logged: the first CONFIG SET, 51 SET, 70 GET, HSET, LPUSH, two INCRBY (the failed one
    # too); not the unknown command, nor the CONFIG SET that raised the threshold again.
    assert got[("redis_slowlog_length", frozenset())] == 126.0
    assert got[("redis_slowlog_last_id", frozenset())] == 125.0


def _commands(server: RedisServer) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in server.info("commandstats").items()
    }


def test_the_documented_access_string_is_enough(node: RedisServer, closer: Closer) -> None:
    """MONITOR's rules are docs/elasticache.md's: two passes, nothing refused, the slowlog
    series there, and one round trip's commands per pass."""
    node.reset()
    node.admin.config_set("slowlog-log-slower-than", "0")  # the slow log shows what was sent
    product = closer(RedisSource(node.settings(user=MONITOR.name, password=MONITOR.password)))
    for _ in range(2):
        names = {s.name for f in product.collect() for s in f.samples}
        assert names >= REDIS_INFO_ALWAYS
    assert _commands(node) == {
        "config|resetstat": 1,
        "acl|log": 1,
        "config|set": 1,
        "auth": 1,
        "info": 2,
        "slowlog|len": 2,
        "slowlog|get": 2,
    }
    assert node.info("stats")["total_error_replies"] == 0
    assert node.admin.execute_command("ACL", "LOG") == []
    # The first pass asks INFO all (the version is not known yet); a 7.0 node then gets the
    # list of sections the series come from.
    entries = node.admin.slowlog_get(20)
    assert isinstance(entries, list)
    sent = [entry["command"] for entry in reversed(entries)]
    infos = [command for command in sent if command.startswith(b"INFO")]
    assert infos[:2] == [  # then the test's own
        b"INFO all",
        b"INFO server clients memory persistence stats replication cpu commandstats "
        b"errorstats latencystats cluster keyspace",
    ]


def test_a_user_without_slowlog_loses_only_the_slowlog_series(
    node: RedisServer, closer: Closer, caplog: pytest.LogCaptureFixture
) -> None:
    user = AclUser("info-only", "info-only-pw", "-@all +info")
    node.admin.execute_command("ACL", "SETUSER", user.name, *user.line().split()[2:])
    node.reset()
    product = closer(RedisSource(node.settings(user=user.name, password=user.password)))
    slowlog = {
        "redis_slowlog_length",
        "redis_slowlog_last_id",
        "redis_last_slow_execution_duration_seconds",
    }
    with caplog.at_level(logging.WARNING, logger="middleware_monitoring.redis.source"):
        for _ in range(3):
            names = {s.name for f in product.collect() for s in f.samples}
            assert names >= REDIS_INFO_ALWAYS - slowlog
            assert names & slowlog == set()
    assert [r.getMessage() for r in caplog.records] == [
        "SLOWLOG refused: the slowlog series are left out while this instance runs "
        "(the user needs +slowlog)"
    ]
    # Asked once (both refused within the first pass's round trip), never again.
    stats = node.info("commandstats")
    assert stats["cmdstat_info"]["calls"] == 3
    assert stats["cmdstat_slowlog|len"]["rejected_calls"] == 1
    assert stats["cmdstat_slowlog|get"]["rejected_calls"] == 1
    assert node.info("errorstats") == {"errorstat_NOPERM": {"count": 2}}
