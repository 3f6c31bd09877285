"""The ElastiCache engine source against a real redis-server 7.0: plain and TLS, the AUTH
token and an RBAC user allowed only INFO, PING and SLOWLOG, exact values from known data,
evictions under a small maxmemory, a replica's role and link, and every way a node can refuse."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Metric, generate_latest

from middleware_monitoring.config import SecretStoreSettings
from middleware_monitoring.credentials import SecretStore, redis_secret_login
from middleware_monitoring.model import FrozenFamilies, SourceFailure
from middleware_monitoring.redis.source import RedisSource
from tests.dashboards import REDIS_INFO_ALWAYS, REDIS_INFO_METRICS
from tests.helpers import Closer
from tests.standins._process import free_port, wait_until
from tests.standins.aws import MotoServer
from tests.standins.redis import MONITOR, TOKEN, AclUser, RedisServer
from tests.standins.tls import TlsFiles, make_tls_files

NOW = 1_800_000_000.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
NONE: frozenset[tuple[str, str]] = frozenset()
DB0 = frozenset({("db", "db0")})


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def samples(families: Iterable[Metric]) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in families
        for s in family.samples
    }


def source(closer: Closer, settings: Any, **kwargs: Any) -> RedisSource:
    made = RedisSource(settings, clock=lambda: NOW, **kwargs)
    closer(made)
    return made


def failure_of(made: RedisSource) -> tuple[list[Metric], SourceFailure]:
    """What a failing pass yields before it raises, and the failure."""
    yielded: list[Metric] = []
    with pytest.raises(SourceFailure) as raised:
        for family in made.collect():
            yielded.append(family)
    return yielded, raised.value


@pytest.fixture
def private() -> Iterator[list[RedisServer]]:
    """Servers a test reconfigures or stops: started by the test, stopped after it."""
    made: list[RedisServer] = []
    yield made
    for server in reversed(made):
        server.stop()


def start(private: list[RedisServer], **options: Any) -> RedisServer:
    server = RedisServer(**options).start()
    private.append(server)
    return server


# --- values -----------------------------------------------------------------------------------


def test_plain_node_without_auth_exact_values(private, closer) -> None:
    server = start(private)
    admin = server.admin
    admin.set("a", "1")
    admin.set("b", "2")
    admin.set("c", "3", ex=1000)
    assert (admin.get("a"), admin.get("b"), admin.get("missing")) == ("1", "2", None)
    made = source(closer, server.settings())

    got = samples(made.collect())

    info = {**server.info("server"), **server.info("replication")}
    assert {k: v for k, v in got.items() if k[0] == "redis_instance_info"} == {
        key(
            "redis_instance_info",
            role="master",
            redis_version=str(info["redis_version"]),
            redis_build_id=str(info["redis_build_id"]),
            redis_mode="standalone",
            os=str(info["os"]),
            maxmemory_policy="noeviction",
            tcp_port=str(server.port),
            run_id=str(info["run_id"]),
            process_id=str(server.pid),
            master_replid=str(info["master_replid"]),
        ): 1.0
    }
    maxclients = float(server.config("maxclients"))
    expected = {
        key("redis_up"): 1.0,
        key("redis_db_keys", db="db0"): 3.0,
        key("redis_db_keys_expiring", db="db0"): 1.0,
        key("redis_keyspace_hits_total"): 2.0,
        key("redis_keyspace_misses_total"): 1.0,
        key("redis_evicted_keys_total"): 0.0,
        key("redis_expired_keys_total"): 0.0,
        key("redis_connected_slaves"): 0.0,
        key("redis_memory_max_bytes"): 0.0,
        key("redis_max_clients"): maxclients,
        key("redis_cluster_enabled"): 0.0,
        key("redis_aof_enabled"): 0.0,
        key("redis_rdb_last_bgsave_status"): 1.0,
        key("redis_rdb_bgsave_in_progress"): 0.0,
        key("redis_loading_dump_file"): 0.0,
        key("redis_total_error_replies_total"): 0.0,
    }
    assert {k: got.get(k) for k in expected} == expected
    assert got[key("redis_start_time_seconds")] + got[key("redis_uptime_in_seconds")] == NOW
    assert got[key("redis_commands_total", cmd="set")] == 3.0
    assert got[key("redis_commands_total", cmd="get")] == 3.0
    assert got[key("redis_latency_percentiles_usec_count", cmd="get")] == 3.0
    assert got[key("redis_slowlog_length")] == 0.0
    # A primary without replicas or errors: exactly these series, one sample each but the
    # three keyspace series of db0 and the per-command ones.
    per_command = {
        "redis_commands_total",
        "redis_commands_duration_seconds_total",
        "redis_commands_rejected_calls_total",
        "redis_commands_failed_calls_total",
        "redis_latency_percentiles_usec",
        "redis_latency_percentiles_usec_count",
        "redis_latency_percentiles_usec_sum",
    }
    assert {name for name, _ in got} == REDIS_INFO_ALWAYS | per_command | {
        "redis_db_keys",
        "redis_db_keys_expiring",
        "redis_db_avg_ttl_seconds",
    }
    assert len([k for k in got if k[0] not in per_command]) == len(REDIS_INFO_ALWAYS) + 3


def test_counters_are_counters_and_named_as_redis_exporter_names_them(private, closer) -> None:
    server = start(private)
    families = {f.name: f for f in source(closer, server.settings()).collect()}
    counters = {name: f.samples[0].name for name, f in families.items() if f.type == "counter"}
    assert counters == {
        "redis_connections_received": "redis_connections_received_total",
        "redis_commands_processed": "redis_commands_processed_total",
        "redis_net_input_bytes": "redis_net_input_bytes_total",
        "redis_net_output_bytes": "redis_net_output_bytes_total",
        "redis_net_repl_input_bytes": "redis_net_repl_input_bytes_total",
        "redis_net_repl_output_bytes": "redis_net_repl_output_bytes_total",
        "redis_rejected_connections": "redis_rejected_connections_total",
        "redis_expired_keys": "redis_expired_keys_total",
        "redis_expired_time_cap_reached": "redis_expired_time_cap_reached_total",
        "redis_evicted_keys": "redis_evicted_keys_total",
        "redis_evicted_clients": "redis_evicted_clients_total",
        "redis_eviction_exceeded_time_ms": "redis_eviction_exceeded_time_ms_total",
        "redis_keyspace_hits": "redis_keyspace_hits_total",
        "redis_keyspace_misses": "redis_keyspace_misses_total",
        "redis_cpu_sys_seconds": "redis_cpu_sys_seconds_total",
        "redis_cpu_user_seconds": "redis_cpu_user_seconds_total",
        "redis_cpu_sys_children_seconds": "redis_cpu_sys_children_seconds_total",
        "redis_cpu_user_children_seconds": "redis_cpu_user_children_seconds_total",
        "redis_cpu_sys_main_thread_seconds": "redis_cpu_sys_main_thread_seconds_total",
        "redis_cpu_user_main_thread_seconds": "redis_cpu_user_main_thread_seconds_total",
        # redis_exporter 1.45 names these without _total; counters here (SPEC 18).
        "redis_unexpected_error_replies": "redis_unexpected_error_replies_total",
        "redis_total_error_replies": "redis_total_error_replies_total",
        "redis_dump_payload_sanitizations": "redis_dump_payload_sanitizations_total",
        "redis_total_reads_processed": "redis_total_reads_processed_total",
        "redis_total_writes_processed": "redis_total_writes_processed_total",
        "redis_io_threaded_reads_processed": "redis_io_threaded_reads_processed_total",
        "redis_io_threaded_writes_processed": "redis_io_threaded_writes_processed_total",
        # Per command (the start-up check's PING at least).
        "redis_commands": "redis_commands_total",
        "redis_commands_duration_seconds": "redis_commands_duration_seconds_total",
        "redis_commands_rejected_calls": "redis_commands_rejected_calls_total",
        "redis_commands_failed_calls": "redis_commands_failed_calls_total",
    }


def test_auth_token_over_plain(clean_redis, closer) -> None:
    made = source(closer, clean_redis.settings(password=TOKEN))
    got = samples(made.collect())
    assert got[key("redis_up")] == 1.0
    # An empty node has no keyspace line, so no db series (redis_exporter does the same).
    assert not [name for name, _ in got if name.startswith("redis_db_")]


def test_tls_verified_with_a_bundle_found_by_relative_name(
    clean_redis, redis_tls: TlsFiles, closer, tmp_path: Path
) -> None:
    shutil.copy(redis_tls.ca, tmp_path / "redis-ca.pem")
    settings = clean_redis.settings(tls=True, password=TOKEN, tls_ca_file="redis-ca.pem")
    made = source(closer, settings, search_dirs=[tmp_path / "elsewhere", tmp_path])
    got = samples(made.collect())
    assert got[key("redis_up")] == 1.0
    # The server counts TLS connections among all; the collector's one was over TLS.
    assert clean_redis.info("stats")["total_connections_received"] == 1


def test_without_a_bundle_tls_trusts_the_system_store_only(clean_redis, closer) -> None:
    settings = clean_redis.settings(tls=True, password=TOKEN, tls_ca_file=None)
    yielded, failure = failure_of(source(closer, settings))
    assert samples(yielded) == {key("redis_up"): 0.0}
    assert (failure.reason, failure.detail) == (
        "tls",
        "test redis-node: TLS failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
        "failed: self-signed certificate in certificate chain (_ssl.c:1000)",
    )


def test_tls_checks_the_host_name(private, closer, tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, names="DNS:other.example")
    server = start(private, tls=files)
    _, failure = failure_of(source(closer, server.settings(tls=True)))
    assert (failure.reason, failure.detail) == (
        "tls",
        "test redis-node: TLS failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
        "failed: IP address mismatch, certificate is not valid for '127.0.0.1'. (_ssl.c:1000)",
    )


def test_missing_bundle_is_a_tls_failure_naming_where_it_was_looked_for(
    clean_redis, closer, tmp_path: Path
) -> None:
    settings = clean_redis.settings(tls=True, tls_ca_file="nope.pem")
    _, failure = failure_of(source(closer, settings, search_dirs=[tmp_path]))
    assert (failure.reason, failure.detail) == (
        "tls",
        f"test redis-node: CA file nope.pem not found in {tmp_path}",
    )


# --- what is sent -----------------------------------------------------------------------------


def _commands(server: RedisServer) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in server.info("commandstats").items()
    }


def test_an_rbac_user_allowed_only_what_the_docs_list_is_enough(clean_redis, closer) -> None:
    """Proves nothing but AUTH, INFO and SLOWLOG LEN / GET is sent: a command the user may not
    run would be in the ACL log, an unknown one (CLIENT SETINFO on 7.0) among the error
    replies."""
    settings = clean_redis.settings(user=MONITOR.name, password=MONITOR.password)
    made = source(closer, settings)
    for _ in range(2):
        assert samples(made.collect())[key("redis_up")] == 1.0
    # Read first: the test's own commands count too. reset() ran CONFIG RESETSTAT (counted
    # after the reset) and ACL LOG RESET.
    assert _commands(clean_redis) == {
        "config|resetstat": 1,
        "acl|log": 1,
        "auth": 1,
        "info": 2,
        "slowlog|len": 2,
        "slowlog|get": 2,
    }
    stats = clean_redis.info("stats")
    assert (stats["total_error_replies"], stats["total_connections_received"]) == (0, 1)
    assert clean_redis.admin.execute_command("ACL", "LOG") == []


def test_the_kept_connection_is_replaced_when_broken(clean_redis, closer) -> None:
    made = source(closer, clean_redis.settings(user=MONITOR.name, password=MONITOR.password))
    assert samples(made.collect())[key("redis_up")] == 1.0
    # A failover or an idle timeout on the way closes it while the function sleeps.
    assert clean_redis.admin.execute_command("CLIENT", "KILL", "USER", MONITOR.name) == 1
    got = samples(made.collect())
    assert got[key("redis_up")] == 1.0
    assert clean_redis.info("stats")["total_connections_received"] == 2


# --- refusals ---------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_without_being_echoed(clean_redis, closer) -> None:
    wrong = "wrong@:/%pw"
    settings = clean_redis.settings(user=MONITOR.name, password=wrong)
    yielded, failure = failure_of(source(closer, settings))
    assert samples(yielded) == {key("redis_up"): 0.0}
    assert (failure.reason, failure.detail) == (
        "auth_failed",
        "test redis-node: login refused: invalid username-password pair or user is disabled.",
    )
    assert wrong not in str(failure) and MONITOR.password not in str(failure)


def test_no_password_for_a_node_that_requires_one(clean_redis, closer) -> None:
    _, failure = failure_of(source(closer, clean_redis.settings()))
    assert (failure.reason, failure.detail) == (
        "auth_failed",
        "test redis-node: login refused: Authentication required. (the node requires a "
        "password: its AUTH token, or an RBAC user's)",
    )


def test_a_password_for_a_node_without_one(private, closer) -> None:
    server = start(private)
    _, failure = failure_of(source(closer, server.settings(password="an-auth-token")))
    assert (failure.reason, failure.detail) == (
        "auth_failed",
        "test redis-node: login refused: AUTH <password> called without any password "
        "configured for the default user. Are you sure your configuration is correct?",
    )


def test_a_user_without_info_permission(clean_redis, closer) -> None:
    user = AclUser("noinfo", "noinfo-pw", "-@all +ping")
    clean_redis.admin.execute_command("ACL", "SETUSER", user.name, *user.line().split()[2:])
    try:
        settings = clean_redis.settings(user=user.name, password=user.password)
        yielded, failure = failure_of(source(closer, settings))
    finally:
        clean_redis.admin.execute_command("ACL", "DELUSER", user.name)
    assert samples(yielded) == {key("redis_up"): 0.0}
    assert (failure.reason, failure.detail) == (
        "command_failed",
        "test redis-node: INFO refused: this user has no permissions to run the 'info' "
        "command (the user needs the INFO command: an ElastiCache access string like "
        "'on -@all +info +ping +slowlog')",
    )


def test_info_renamed_away(private, closer) -> None:
    server = start(private, renamed={"INFO": ""})
    _, failure = failure_of(source(closer, server.settings()))
    assert (failure.reason, failure.detail) == (
        "command_failed",
        "test redis-node: INFO failed: unknown command 'INFO', with args beginning with:"
        " 'all' (INFO is renamed or disabled on this node)",
    )


def test_nothing_listening_is_unreachable_with_redis_up_0(closer) -> None:
    port = free_port()
    settings = RedisServer().settings()
    settings = type(settings)(target_name="gone", host="127.0.0.1", port=port)
    yielded, failure = failure_of(source(closer, settings))
    assert samples(yielded) == {key("redis_up"): 0.0}
    assert (failure.reason, failure.detail) == (
        "unreachable",
        f"gone (127.0.0.1:{port}): Error 111 connecting to 127.0.0.1:{port}. Connection refused.",
    )
    assert [f.name for f in RedisSource(settings).down_families()] == ["redis_up"]


# --- memory, evictions, replication -----------------------------------------------------------


def test_evictions_under_a_small_maxmemory(private, closer) -> None:
    server = start(private, maxmemory="2mb", maxmemory_policy="allkeys-lru")
    written = 400
    value = "x" * 10_240  # 4 MB written into 2 MB
    for i in range(written):
        server.admin.set(f"k{i}", value)

    got = samples(source(closer, server.settings()).collect())

    # No key expires here: every key written and gone was evicted. Counted within one INFO
    # reply: any command, INFO too, may evict more while the node sits above maxmemory.
    evicted, kept = got[key("redis_evicted_keys_total")], got[key("redis_db_keys", db="db0")]
    assert evicted + kept == written
    assert 0 < kept < written
    assert got[key("redis_memory_max_bytes")] == 2 * 1024 * 1024
    assert got[key("redis_instance_info", **_info_labels(server, "master", "allkeys-lru"))] == 1


def _info_labels(server: RedisServer, role: str, policy: str) -> dict[str, str]:
    info = {**server.info("server"), **server.info("replication")}
    return {
        "role": role,
        "redis_version": str(info["redis_version"]),
        "redis_build_id": str(info["redis_build_id"]),
        "redis_mode": "standalone",
        "os": str(info["os"]),
        "maxmemory_policy": policy,
        "tcp_port": str(server.port),
        "run_id": str(info["run_id"]),
        "process_id": str(server.pid),
        "master_replid": str(info["master_replid"]),
    }


def test_a_replica_reports_its_role_and_master_link(private, closer) -> None:
    primary = start(private, password=TOKEN)
    replica = start(private, replica_of=primary)
    replica.wait_link_up()
    primary.admin.set("k", "v")
    wait_until(lambda: replica.admin.get("k") == "v", what="replication of k", timeout=30)
    link = {"master_host": primary.host, "master_port": str(primary.port)}

    got = samples(source(closer, replica.settings()).collect())
    assert got[key("redis_instance_info", **_info_labels(replica, "slave", "noeviction"))] == 1
    assert got[key("redis_master_link_up", **link)] == 1.0
    assert got[key("redis_master_sync_in_progress", **link)] == 0.0
    assert got[key("redis_slave_info", **link, read_only="1")] == 1.0
    assert got[key("redis_db_keys", db="db0")] == 1.0
    primary_view = samples(source(closer, primary.settings(password=TOKEN)).collect())
    assert primary_view[key("redis_connected_slaves")] == 1.0
    assert [k for k in primary_view if k[0] == "redis_connected_slave_offset_bytes"] == [
        key(
            "redis_connected_slave_offset_bytes",
            slave_ip=replica.host,
            slave_port=str(replica.port),
            slave_state="online",
        )
    ]

    primary.stop()
    wait_until(
        lambda: replica.info("replication")["master_link_status"] == "down",
        what="the replica noticing its primary is gone",
        timeout=30,
    )
    got = samples(source(closer, replica.settings()).collect())
    assert got[key("redis_master_link_up", **link)] == 0.0
    assert got[key("redis_master_last_io_seconds_ago", **link)] == -1.0


# --- the login from Secrets Manager -----------------------------------------------------------


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    moto_server.reset()
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return moto_server


def test_secret_login_and_a_rotated_password(aws, private, closer) -> None:
    old, new = "Old@:/%redis-1", "New@:/%redis-2"
    server = start(private, users=[AclUser("app-monitor", old)])
    sm = aws.client("secretsmanager")
    arn = sm.create_secret(
        Name="redis", SecretString=json.dumps({"username": "app-monitor", "password": old})
    )["ARN"]
    settings = server.settings(secret_arn=arn)
    store = SecretStore(SecretStoreSettings(region=aws.region, max_age_seconds=300))
    asked: list[bool] = []
    login = redis_secret_login(settings, store)

    def counting(refresh: bool) -> tuple[str | None, str]:
        asked.append(refresh)
        return login(refresh)

    made = source(closer, settings, login=counting)
    assert samples(made.collect())[key("redis_up")] == 1.0

    # Rotated: the node and the secret change; the cached copy is refused once, re-read.
    server.admin.execute_command("ACL", "SETUSER", "app-monitor", "resetpass", f">{new}")
    sm.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "app-monitor", "password": new})
    )
    server.admin.execute_command("CLIENT", "KILL", "USER", "app-monitor")
    assert samples(made.collect())[key("redis_up")] == 1.0
    assert asked == [False, False, True]


def test_a_secret_without_a_password_is_invalid(aws, clean_redis, closer) -> None:
    arn = aws.client("secretsmanager").create_secret(
        Name="redis-bad", SecretString=json.dumps({"username": "u"})
    )["ARN"]
    settings = clean_redis.settings(secret_arn=arn)
    store = SecretStore(SecretStoreSettings(region=aws.region))
    _, failure = failure_of(source(closer, settings, login=redis_secret_login(settings, store)))
    assert (failure.reason, failure.detail) == (
        "secret_invalid",
        f"the secret_arn of test redis-node ({arn}) has no password string; expected "
        '{"password": "..."} for an AUTH token, or {"username": "...", "password": "..."} '
        "for an RBAC user",
    )


# --- names ------------------------------------------------------------------------------------


def _promtool(families: list[Metric]) -> set[tuple[str, str]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrozenFamilies(families))
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (make install does)"
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry).decode(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    found = set()
    for line in (checked.stdout + checked.stderr).splitlines():
        metric, _, message = line.strip().partition(" ")
        if metric:
            found.add((metric, message))
    return found


# redis_exporter's names that promtool would not choose; kept because they are the contract.
REDIS_PROMTOOL_FINDINGS = {
    ("redis_rdb_last_bgsave_duration_sec", "metric names should not contain abbreviated units"),
    ("redis_eviction_exceeded_time_ms_total", "metric names should not contain abbreviated units"),
    (
        "redis_current_eviction_exceeded_time_ms",
        "metric names should not contain abbreviated units",
    ),
    ("redis_rdb_current_bgsave_duration_sec", "metric names should not contain abbreviated units"),
    ("redis_aof_last_rewrite_duration_sec", "metric names should not contain abbreviated units"),
    ("redis_aof_current_rewrite_duration_sec", "metric names should not contain abbreviated units"),
    ("redis_migrate_cached_sockets_total", 'non-counter metrics should not have "_total" suffix'),
}


def test_every_series_of_a_primary_and_a_replica(private, closer) -> None:
    """With a replica and an error reply every series a 7.0 node can send is there; promtool
    finds only redis_exporter's own naming choices."""
    primary = start(private)
    replica = start(private, replica_of=primary)
    replica.wait_link_up()
    primary.admin.set("k", "v")
    with pytest.raises(Exception, match="unknown command"):
        primary.admin.execute_command("NO-SUCH-COMMAND")
    wait_until(lambda: replica.admin.get("k") == "v", what="replication of k", timeout=30)
    from_primary = list(source(closer, primary.settings()).collect())
    from_replica = list(source(closer, replica.settings()).collect())
    names = {s.name for family in (*from_primary, *from_replica) for s in family.samples}
    assert names == REDIS_INFO_METRICS
    assert samples(from_primary)[key("redis_errors_total", err="ERR")] == 1.0
    assert _promtool(from_primary) | _promtool(from_replica) == REDIS_PROMTOOL_FINDINGS
