"""CloudWatch settings: the id variables, AWS_RDS_TYPE, defaults, and target naming."""

from __future__ import annotations

import pytest

from middleware_monitoring.cloudwatch import CloudWatchBatch
from middleware_monitoring.config import (
    CloudWatchSettings,
    CloudWatchTarget,
    ConfigError,
    ElastiCacheId,
    load_settings,
)
from tests.unit.cloudwatch_helpers import build_targets

PG = {"PG_DATABASE": "db.example", "PG_USER": "monitor", "PG_PWD": "secret-pw"}
MONGO_SHAPE = (
    "AWS_MONGO_INSTANCE_INFO: expected an object with DBInstanceIdentifier and/or "
    "DBClusterIdentifier, each a list of id strings, e.g. "
    '{"DBInstanceIdentifier": ["docdb-1", "docdb-2"], "DBClusterIdentifier": ["docdb-cluster"]}'
)
CACHE_SHAPE = (
    "AWS_ELASTICACHE_INSTANCE_INFO: expected an object with CacheClusterId, a list of cluster "
    'ids (or of {"CacheClusterId": ..., "CacheNodeId": ...} objects for per-node metrics), '
    'e.g. {"CacheClusterId": ["staging-001", {"CacheClusterId": "prod-001", '
    '"CacheNodeId": "0001"}]}'
)


def _problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    return caught.value.problems


def test_no_cloudwatch_variables_no_cloudwatch_target() -> None:
    for environ in ({}, PG):
        settings = load_settings(environ)
        assert [spec for spec in settings.targets if isinstance(spec, CloudWatchTarget)] == []
        assert [
            t.sources[-1].name
            for t in build_targets(settings, CloudWatchBatch(settings.cloudwatch))
        ] == (["postgres"] if environ else [])


def test_contract_examples_and_defaults() -> None:
    settings = load_settings(
        {
            "AWS_REGION": "eu-west-1",
            "AWS_MONGO_INSTANCE_INFO": (
                '{"DBInstanceIdentifier": ["dev-staging", "dev-staging2"], '
                '"DBClusterIdentifier": ["dev-staging"]}'
            ),
            "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["staging-001"]}',
        }
    )
    assert settings.cloudwatch == CloudWatchSettings(
        region="eu-west-1",
        endpoint_url=None,
        lookback_seconds=900,
        end_delay_seconds=60,
        connect_timeout_seconds=3.0,
        read_timeout_seconds=10.0,
        max_attempts=3,
        retry_mode="standard",
        docdb_instances=("dev-staging", "dev-staging2"),
        docdb_clusters=("dev-staging",),
        elasticache=(ElastiCacheId("staging-001"),),
    )


def test_elasticache_node_ids_and_only_one_kind_of_docdb_id() -> None:
    settings = load_settings(
        {
            "AWS_DEFAULT_REGION": "us-east-2",
            "AWS_MONGO_INSTANCE_INFO": '{"DBClusterIdentifier": ["c1"]}',
            "AWS_ELASTICACHE_INSTANCE_INFO": (
                '{"CacheClusterId": ["a-001", {"CacheClusterId": "b-001", "CacheNodeId": "0002"}]}'
            ),
            "AWS_ENDPOINT_URL_CLOUDWATCH": "http://127.0.0.1:5000",
            "AWS_ENDPOINT_URL": "http://ignored:1",
            "CLOUDWATCH_RETRY_MODE": "adaptive",
            "CLOUDWATCH_LOOKBACK_SECONDS": "600",
            "CLOUDWATCH_END_DELAY_SECONDS": "0",
        }
    )
    cw = settings.cloudwatch
    assert cw is not None
    assert cw.region == "us-east-2"
    assert cw.endpoint_url == "http://127.0.0.1:5000"
    assert (cw.retry_mode, cw.lookback_seconds, cw.end_delay_seconds) == ("adaptive", 600, 0)
    assert cw.docdb_instances == ()
    assert cw.docdb_clusters == ("c1",)
    assert cw.elasticache == (ElastiCacheId("a-001"), ElastiCacheId("b-001", "0002"))


@pytest.mark.parametrize(
    "raw",
    [
        '["dev-staging"]',
        '{"DBInstanceIdentifier": "dev-staging"}',
        '{"DBInstanceIdentifier": [1, 2]}',
        '{"DBInstanceIdentifier": [""]}',
        '{"DbInstanceIdentifier": ["dev-staging"]}',
    ],
)
def test_wrong_mongo_shapes_name_the_variable_and_an_example(raw: str) -> None:
    assert _problems({"AWS_MONGO_INSTANCE_INFO": raw}) == [MONGO_SHAPE]


@pytest.mark.parametrize(
    "raw",
    [
        '["staging-001"]',
        '{"CacheClusterId": "staging-001"}',
        '{"CacheClusterId": [{"CacheClusterId": "x"}]}',
        '{"CacheClusterId": ["a"], "Other": []}',
    ],
)
def test_wrong_elasticache_shapes_name_the_variable_and_an_example(raw: str) -> None:
    assert _problems({"AWS_ELASTICACHE_INSTANCE_INFO": raw}) == [CACHE_SHAPE]


def test_malformed_json_is_one_problem_per_variable_without_echoing_it() -> None:
    assert _problems(
        {
            "AWS_MONGO_INSTANCE_INFO": "{DBInstanceIdentifier: [x]}",
            "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["a"]',
        }
    ) == [
        "AWS_MONGO_INSTANCE_INFO: is not valid JSON (Expecting property name enclosed in double "
        "quotes at line 1 column 2); expected e.g. "
        '{"DBInstanceIdentifier": ["docdb-1", "docdb-2"], '
        '"DBClusterIdentifier": ["docdb-cluster"]}',
        "AWS_ELASTICACHE_INSTANCE_INFO: is not valid JSON (Expecting ',' delimiter at line 1 "
        'column 25); expected e.g. {"CacheClusterId": ["staging-001", '
        '{"CacheClusterId": "prod-001", "CacheNodeId": "0001"}]}',
    ]


def test_unknown_rds_type_names_both_allowed_values() -> None:
    assert _problems({**PG, "AWS_RDS_INSTANCE_ID": "pg-1", "AWS_RDS_TYPE": "DBInstance"}) == [
        "AWS_RDS_TYPE: expected one of DBInstanceIdentifier, DBClusterIdentifier, got 'DBInstance'"
    ]


def test_bad_cloudwatch_settings_are_named() -> None:
    assert _problems(
        {
            "AWS_ELASTICACHE_INSTANCE_INFO": '{"CacheClusterId": ["a"]}',
            "AWS_ENDPOINT_URL": "localhost:5000",
            "CLOUDWATCH_RETRY_MODE": "legacy",
            "CLOUDWATCH_LOOKBACK_SECONDS": "60",
        }
    ) == [
        "AWS_ENDPOINT_URL: expected an http:// or https:// URL, got 'localhost:5000'",
        "CLOUDWATCH_LOOKBACK_SECONDS: expected a whole number from 300 to 86400, got '60'",
        "CLOUDWATCH_RETRY_MODE: expected one of standard, adaptive, got 'legacy'",
    ]


def test_targets_one_per_id_with_kind_prefixes() -> None:
    settings = load_settings(
        {
            **PG,
            "AWS_REGION": "eu-west-1",
            "AWS_RDS_INSTANCE_ID": "aurora-1",
            "AWS_RDS_TYPE": "DBClusterIdentifier",
            "AWS_MONGO_INSTANCE_INFO": (
                '{"DBInstanceIdentifier": ["same"], "DBClusterIdentifier": ["same"]}'
            ),
            "AWS_ELASTICACHE_INSTANCE_INFO": (
                '{"CacheClusterId": ["r-001", {"CacheClusterId": "r-002", "CacheNodeId": "0001"}]}'
            ),
        }
    )
    assert settings.cloudwatch is not None
    batch = CloudWatchBatch(settings.cloudwatch)  # the client is made on the first pass
    targets = build_targets(settings, batch)
    assert [(t.name, [s.name for s in t.sources]) for t in targets] == [
        ("aurora-1", ["postgres", "cloudwatch"]),
        ("docdb:same", ["cloudwatch"]),
        ("docdb-cluster:same", ["cloudwatch"]),
        ("elasticache:r-001", ["cloudwatch"]),
        ("elasticache:r-002:0001", ["cloudwatch"]),
    ]
    # Aurora: 5 (no FreeStorageSpace, plus VolumeBytesUsed); 6 + 3 DocDB; 14 + 14 ElastiCache.
    assert len(batch.stats) == 42


def test_rds_id_without_postgresql_is_a_cloudwatch_only_target() -> None:
    settings = load_settings(
        {"AWS_RDS_INSTANCE_ID": "aurora-1", "AWS_RDS_TYPE": "DBClusterIdentifier"}
    )
    assert settings.postgres is None
    assert settings.cloudwatch is not None
    batch = CloudWatchBatch(settings.cloudwatch)
    targets = build_targets(settings, batch)
    assert [(t.name, [s.name for s in t.sources]) for t in targets] == [
        ("aurora-1", ["cloudwatch"])
    ]
    assert sorted(stat.metric for stat in batch.stats) == [
        "CPUUtilization",
        "FreeableMemory",
        "NetworkTransmitThroughput",
        "ReadIOPS",
        "VolumeBytesUsed",
    ]
    assert {stat.dimensions for stat in batch.stats} == {(("DBClusterIdentifier", "aurora-1"),)}


def test_rds_type_checked_without_postgresql_too() -> None:
    assert _problems({"AWS_RDS_INSTANCE_ID": "pg-1", "AWS_RDS_TYPE": "cluster"}) == [
        "AWS_RDS_TYPE: expected one of DBInstanceIdentifier, DBClusterIdentifier, got 'cluster'"
    ]


def test_a_target_named_like_the_collectors_group_is_a_configuration_error() -> None:
    assert _problems(
        {**PG, "PG_TARGET_NAME": "collector", "COLLECTOR_INSTANCE_NAME": "collector"}
    ) == [
        "PG_*: target name 'collector' is a name the collector uses for its own series "
        "(COLLECTOR_INSTANCE_NAME='collector'); give the target another name"
    ]


def test_two_targets_of_one_name_are_named_with_both_places() -> None:
    assert _problems(
        {
            **PG,
            "PG_TARGET_NAME": "docdb:same",
            "AWS_MONGO_INSTANCE_INFO": ('{"DBInstanceIdentifier": ["same"]}'),
        }
    ) == [
        "AWS_MONGO_INSTANCE_INFO: target name 'docdb:same' is already used by PG_*; each "
        "target needs its own name (the instance label of its series)"
    ]
