"""The batched GetMetricData pass against botocore's Stubber: what moto does not emulate
(500-query limit, NextToken paging, throttling) and how values become series."""

from __future__ import annotations

import json
from typing import Any

from middleware_monitoring.cloudwatch import CloudWatchBatch, declarations
from middleware_monitoring.model import Target
from tests.unit.cloudwatch_helpers import (
    NOW,
    REFERENCE_ENV,
    WINDOW_END,
    WINDOW_START,
    at,
    batch_for,
    batch_pass,
    cloudwatch_pass,
    cloudwatch_targets,
    counts,
    metric_result,
    outcomes,
    self_metrics,
    series,
    settings,
    stubbed_client,
)

OLD, NEWER, NEWEST = WINDOW_END - 180, WINDOW_END - 120, WINDOW_END - 60


def _reference_pass(client: Any) -> Any:
    """The issue's reference fleet: 1 RDS instance, 2 DocDB instances + 1 DocDB cluster,
    1 ElastiCache cluster = 38 queries."""
    loaded = settings()
    batch = batch_for(loaded.cloudwatch, client)
    targets = [
        Target("pg-1", [batch.source(declarations.rds("pg-1", "DBInstanceIdentifier"))]),
        *cloudwatch_targets(loaded, batch),
    ]
    return batch_pass(targets, batch), batch


def test_reference_fleet_takes_exactly_one_call_with_exact_values() -> None:
    client, stubber, calls = stubbed_client()
    results = [
        # Unordered points, older ones larger: the newest must win (Datapoints[0] bug).
        metric_result(i, [(OLD, 900.0 + i), (NEWEST, float(i)), (NEWER, 500.0 + i)])
        for i in range(38)
    ]
    # q21 is mongo_volume_bytesused (the first cluster metric): no datapoint, missing.
    results[21] = metric_result(21, [])
    # q7 and q8, DBLoadCPU and DBLoadNonCPU: no datapoint either, but optional (absent
    # without Performance Insights), so not missing.
    results[7] = metric_result(7, [])
    results[8] = metric_result(8, [])
    stubber.add_response("get_metric_data", {"MetricDataResults": results})
    with stubber:
        result, _ = _reference_pass(client)
    stubber.assert_no_pending_responses()

    assert len(calls) == 1
    request = calls[0]
    assert len(request["MetricDataQueries"]) == 38
    assert [q["Id"] for q in request["MetricDataQueries"]] == [f"q{i}" for i in range(38)]
    assert request["StartTime"] == at(WINDOW_START)
    assert request["EndTime"] == at(WINDOW_END)
    assert request["ScanBy"] == "TimestampDescending"

    docdb1 = frozenset({("DocDB", "docdb-1")})
    docdb2 = frozenset({("DocDB", "docdb-2")})
    cluster = frozenset({("DocDB", "docdb-c")})
    redis = frozenset({("ElastiCache", "redis-001")})
    none: frozenset[tuple[str, str]] = frozenset()
    assert series(result) == {
        ("pg-1", "pg_storage_disk_space", none): 0.0,  # 0 is a value
        ("pg-1", "pg_cpu_utilization", none): 1.0,
        ("pg-1", "pg_memory_utilization", none): 2.0,
        ("pg-1", "pg_network_throughput", none): 3.0,
        ("pg-1", "pg_read_iops", none): 4.0,
        ("pg-1", "pg_burst_balance_percent", none): 5.0,
        ("pg-1", "pg_db_load", none): 6.0,
        ("docdb:docdb-1", "mongo_cpu_utilization", docdb1): 9.0,
        ("docdb:docdb-1", "mongo_freeable_memory", docdb1): 10.0,
        ("docdb:docdb-1", "mongo_network_throughput", docdb1): 11.0,
        ("docdb:docdb-1", "mongo_read_latency", docdb1): 12.0,
        ("docdb:docdb-1", "mongo_write_latency", docdb1): 13.0,
        ("docdb:docdb-1", "mongo_replica_lag", docdb1): 14.0,
        ("docdb:docdb-2", "mongo_cpu_utilization", docdb2): 15.0,
        ("docdb:docdb-2", "mongo_freeable_memory", docdb2): 16.0,
        ("docdb:docdb-2", "mongo_network_throughput", docdb2): 17.0,
        ("docdb:docdb-2", "mongo_read_latency", docdb2): 18.0,
        ("docdb:docdb-2", "mongo_write_latency", docdb2): 19.0,
        ("docdb:docdb-2", "mongo_replica_lag", docdb2): 20.0,
        ("docdb-cluster:docdb-c", "mongo_volume_readiops", cluster): 22.0,
        ("docdb-cluster:docdb-c", "mongo_volume_wriateiops", cluster): 23.0,
        ("elasticache:redis-001", "redis_network_bandwidth_inallowance_exceeded", redis): 24.0,
        ("elasticache:redis-001", "redis_network_bandwidthOut_allowance_exceeded", redis): 25.0,
        ("elasticache:redis-001", "redis_network_conntrack_allowance_exceeded", redis): 26.0,
        ("elasticache:redis-001", "redis_network_packetsPerSecond_allowance_exceeded", redis): 27.0,
        ("elasticache:redis-001", "redis_engine_cpu_utilization", redis): 28.0,
        ("elasticache:redis-001", "redis_cpu_utilization", redis): 29.0,
        ("elasticache:redis-001", "redis_database_memory_usage_percentage", redis): 30.0,
        ("elasticache:redis-001", "redis_curr_connections", redis): 31.0,
        ("elasticache:redis-001", "redis_evictions", redis): 32.0,
        ("elasticache:redis-001", "redis_cache_hit_rate", redis): 33.0,
        ("elasticache:redis-001", "redis_replication_lag_seconds", redis): 34.0,
        ("elasticache:redis-001", "redis_freeable_memory_bytes", redis): 35.0,
        ("elasticache:redis-001", "redis_network_in_bytes", redis): 36.0,
        ("elasticache:redis-001", "redis_network_out_bytes", redis): 37.0,
    }
    assert self_metrics(result) == counts(calls=1, requested=38, missing=1, failed=0)
    # Missing data is not a failure: every target is up.
    assert {t: o[0] for t, o in outcomes(result).items()} == {
        "pg-1": True,
        "docdb:docdb-1": True,
        "docdb:docdb-2": True,
        "docdb-cluster:docdb-c": True,
        "elasticache:redis-001": True,
    }


def test_in_value_goes_to_the_in_series_and_out_value_to_the_out_series() -> None:
    """Regression: the older exporter sent NetworkBandwidthInAllowanceExceeded under Out."""
    client, stubber, calls = stubbed_client()
    env = {"AWS_REGION": "eu-west-1", "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["r"]}'}
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                metric_result(i, [(NEWEST, v)]) for i, v in enumerate([7, 0, 0, 0])
            ]
        },
    )
    with stubber:
        result, _ = cloudwatch_pass(env, client)
    assert calls[0]["MetricDataQueries"][0]["MetricStat"]["Metric"]["MetricName"] == (
        "NetworkBandwidthInAllowanceExceeded"
    )
    got = {name: value for (_, name, _), value in series(result).items()}
    assert got["redis_network_bandwidth_inallowance_exceeded"] == 7.0
    assert got["redis_network_bandwidthOut_allowance_exceeded"] == 0.0


def _many_caches(count: int) -> dict[str, str]:
    return {
        "AWS_REGION": "eu-west-1",
        "AWS_ELASTICACHE_INSTANCE_INFO": json.dumps(
            {"CacheClusterId": [f"redis-{i:03d}" for i in range(count)]}
        ),
    }


def test_700_queries_take_exactly_two_calls() -> None:
    client, stubber, calls = stubbed_client()
    for size in (500, 200):
        stubber.add_response(
            "get_metric_data",
            {"MetricDataResults": [metric_result(i, [(NEWEST, 1.0)]) for i in range(size)]},
        )
    with stubber:
        result, _ = cloudwatch_pass(_many_caches(50), client)
    stubber.assert_no_pending_responses()
    assert [len(c["MetricDataQueries"]) for c in calls] == [500, 200]
    # The second call starts where the first stopped: cluster 35's 11th metric (14 each).
    second = calls[1]["MetricDataQueries"][0]["MetricStat"]["Metric"]
    assert second["Dimensions"] == [{"Name": "CacheClusterId", "Value": "redis-035"}]
    assert second["MetricName"] == "ReplicationLag"
    assert len(series(result)) == 700
    assert self_metrics(result)["middleware_cloudwatch_getmetricdata_calls"] == 2.0
    assert self_metrics(result)["middleware_cloudwatch_metrics_requested"] == 700.0


def test_next_token_is_followed_and_newest_wins_across_pages() -> None:
    client, stubber, calls = stubbed_client()
    env = {"AWS_REGION": "eu-west-1", "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["r"]}'}
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                metric_result(0, [(NEWER, 50.0)], "PartialData"),
                metric_result(1, [(NEWEST, 1.0)], "Complete"),
                metric_result(2, [(OLD, 9.0)], "PartialData"),
            ],
            "NextToken": "page-2",
        },
    )
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                metric_result(0, [(NEWEST, 2.0), (OLD, 60.0)]),
                metric_result(2, [(NEWER, 3.0)]),
                metric_result(3, [(OLD, 4.0)]),
            ]
        },
    )
    with stubber:
        result, _ = cloudwatch_pass(env, client)
    stubber.assert_no_pending_responses()
    assert len(calls) == 2
    assert "NextToken" not in calls[0]
    assert calls[1]["NextToken"] == "page-2"
    assert calls[1]["MetricDataQueries"] == calls[0]["MetricDataQueries"]
    assert {name: value for (_, name, _), value in series(result).items()} == {
        "redis_network_bandwidth_inallowance_exceeded": 2.0,
        "redis_network_bandwidthOut_allowance_exceeded": 1.0,
        "redis_network_conntrack_allowance_exceeded": 3.0,
        "redis_network_packetsPerSecond_allowance_exceeded": 4.0,
    }
    # A page repeats every query of its call, and is billed so. The engine metrics (q4 on)
    # got no datapoint on either page.
    assert self_metrics(result) == counts(calls=2, requested=28, missing=10, failed=0)


def test_throttled_call_costs_only_its_own_targets() -> None:
    """Stubber answers before botocore's retry loop, so this is the state after the retries
    gave up (the retries themselves are shown against moto in the integration tests)."""
    client, stubber, _ = stubbed_client()
    stubber.add_response(
        "get_metric_data",
        {"MetricDataResults": [metric_result(i, [(NEWEST, 1.0)]) for i in range(500)]},
    )
    stubber.add_client_error(
        "get_metric_data",
        service_error_code="Throttling",
        service_message="Rate exceeded",
        http_status_code=400,
        response_meta={"RetryAttempts": 2},
    )
    with stubber:
        result, _ = cloudwatch_pass(_many_caches(50), client)
    states = outcomes(result)
    assert states["elasticache:redis-000"] == (True, None, None)
    assert states["elasticache:redis-034"] == (True, None, None)
    # Cluster 35 straddles the two calls: only its metrics in the throttled one are lost.
    throttled = "GetMetricData failed after 3 attempts: Throttling: Rate exceeded"
    assert states["elasticache:redis-035"] == (
        False,
        "throttled",
        "4 of 14 CloudWatch metrics failed (ReplicationLag, FreeableMemory, NetworkBytesIn, "
        f"NetworkBytesOut): {throttled}",
    )
    assert states["elasticache:redis-036"] == (
        False,
        "throttled",
        "14 of 14 CloudWatch metrics failed (NetworkBandwidthInAllowanceExceeded, "
        "NetworkBandwidthOutAllowanceExceeded, NetworkConntrackAllowanceExceeded, "
        "NetworkPacketsPerSecondAllowanceExceeded, EngineCPUUtilization, CPUUtilization, "
        "DatabaseMemoryUsagePercentage, CurrConnections, Evictions, CacheHitRate, "
        f"ReplicationLag, FreeableMemory, NetworkBytesIn, NetworkBytesOut): {throttled}",
    )
    assert sum(1 for up, _, _ in states.values() if up) == 35
    assert len(series(result)) == 500
    assert self_metrics(result) == counts(calls=2, requested=700, missing=0, failed=200)


def test_a_failed_query_loses_only_its_own_value() -> None:
    client, stubber, _ = stubbed_client()
    env = {"AWS_REGION": "eu-west-1", "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["r"]}'}
    stubber.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                metric_result(0, [(NEWEST, 1.0)]),
                metric_result(
                    1,
                    [],
                    "InternalError",
                    Messages=[{"Code": "InternalError", "Value": "try again"}],
                ),
                metric_result(2, [(NEWEST, 0.0)]),
                metric_result(3, [(NEWEST, 3.0)]),
            ]
        },
    )
    with stubber:
        result, _ = cloudwatch_pass(env, client)
    assert {name: v for (_, name, _), v in series(result).items() if "redis" in name} == {
        "redis_network_bandwidth_inallowance_exceeded": 1.0,
        "redis_network_conntrack_allowance_exceeded": 0.0,
        "redis_network_packetsPerSecond_allowance_exceeded": 3.0,
    }
    assert outcomes(result)["elasticache:r"] == (
        False,
        "cloudwatch_error",
        "1 of 14 CloudWatch metrics failed (NetworkBandwidthOutAllowanceExceeded): "
        "AWS/ElastiCache NetworkBandwidthOutAllowanceExceeded{CacheClusterId=r}: "
        "InternalError (InternalError: try again)",
    )


def test_no_datapoint_at_all_reports_the_target_down_as_no_data() -> None:
    client, stubber, _ = stubbed_client()
    env = {"AWS_REGION": "eu-west-1", "AWS_MONGO_INSTANCE_INFO": '{"DBClusterIdentifier": ["x"]}'}
    stubber.add_response(
        "get_metric_data", {"MetricDataResults": [metric_result(i, []) for i in range(3)]}
    )
    with stubber:
        result, _ = cloudwatch_pass(env, client)
    assert outcomes(result)["docdb-cluster:x"] == (
        False,
        "no_data",
        "no CloudWatch datapoint for any of 3 metrics of DBClusterIdentifier=x in AWS/DocDB; "
        "check the id, AWS_REGION and the look-back window",
    )
    assert self_metrics(result)["middleware_cloudwatch_metrics_missing"] == 3.0


def test_client_that_cannot_be_built_fails_the_sources_not_the_pass() -> None:
    from botocore.exceptions import NoRegionError

    def broken() -> Any:
        raise NoRegionError()

    loaded = settings(REFERENCE_ENV)
    batch = CloudWatchBatch(loaded.cloudwatch, client_factory=broken, clock=lambda: NOW)
    targets = cloudwatch_targets(loaded, batch)
    result = batch_pass(targets, batch)
    assert {t: (o[0], o[1]) for t, o in outcomes(result).items()} == {
        "docdb:docdb-1": (False, "no_region"),
        "docdb:docdb-2": (False, "no_region"),
        "docdb-cluster:docdb-c": (False, "no_region"),
        "elasticache:redis-001": (False, "no_region"),
    }
    assert self_metrics(result) == counts(calls=0, requested=0, missing=0, failed=29)


def test_past_the_deadline_no_call_is_made() -> None:
    client, stubber, calls = stubbed_client()
    loaded = settings(REFERENCE_ENV)
    batch = batch_for(loaded.cloudwatch, client)
    with stubber:
        result = batch_pass(cloudwatch_targets(loaded, batch), batch, seconds=-1)
    assert calls == []
    assert {o[1] for o in outcomes(result).values()} == {"deadline"}
    assert self_metrics(result)["middleware_cloudwatch_getmetricdata_calls"] == 0.0


def test_one_client_per_function_instance() -> None:
    client, stubber, calls = stubbed_client()
    made: list[Any] = []

    def factory() -> Any:
        made.append(client)
        return client

    loaded = settings(REFERENCE_ENV)
    # Passes 5 minutes apart: every metric, the 5-minute ones too, is due on each.
    now = [NOW]
    batch = CloudWatchBatch(loaded.cloudwatch, client_factory=factory, clock=lambda: now[0])
    targets = cloudwatch_targets(loaded, batch)
    for _ in range(3):
        stubber.add_response(
            "get_metric_data",
            {"MetricDataResults": [metric_result(i, [(NEWEST, 1.0)]) for i in range(27)]},
        )
    with stubber:
        for _ in range(3):
            batch_pass(targets, batch)
            now[0] += 300
    assert len(calls) == 3
    assert len(made) == 1
