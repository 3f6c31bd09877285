"""SERVER_* (pull mode) and KAFKA_* / PG_ENV_NAME (query-statistics stream) settings."""

from __future__ import annotations

import logging

import pytest

from middleware_monitoring.config import (
    ConfigError,
    KafkaSettings,
    ServeSettings,
    load_settings,
)
from middleware_monitoring.kafka_stream import build_stream


def _problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    return caught.value.problems


def test_serve_defaults() -> None:
    assert load_settings({}).serve == ServeSettings("0.0.0.0", 9010, 8.0)


def test_serve_from_environment() -> None:
    settings = load_settings(
        {
            "SERVER_PORT": "9187",
            "SERVER_ADDRESS": "127.0.0.1",
            "SERVER_SCRAPE_BUDGET_SECONDS": "2.5",
        }
    )
    assert settings.serve == ServeSettings("127.0.0.1", 9187, 2.5)


@pytest.mark.parametrize("raw", ["abc", "0", "65536", "-1", "90 10", "9010.0"])
def test_bad_server_port_is_named(raw: str) -> None:
    assert _problems({"SERVER_PORT": raw}) == [
        f"SERVER_PORT: expected a port number from 1 to 65535, got {raw!r}"
    ]


def test_bad_scrape_budget_is_named() -> None:
    assert _problems({"SERVER_SCRAPE_BUDGET_SECONDS": "0"}) == [
        "SERVER_SCRAPE_BUDGET_SECONDS: expected a number from 0.5 to 300, got '0'"
    ]


def test_kafka_off_when_unset() -> None:
    assert load_settings({"PG_ENV_NAME": "production"}).kafka is None


def test_kafka_settings() -> None:
    settings = load_settings(
        {"KAFKA_SERVER": " kafka-1:9092, kafka-2:9093 ", "PG_ENV_NAME": "production"}
    )
    assert settings.kafka == KafkaSettings(
        ("kafka-1:9092", "kafka-2:9093"), "pgsql_query_message", "production", 5.0
    )


def test_kafka_topic_and_timeout_overrides() -> None:
    settings = load_settings(
        {
            "KAFKA_SERVER": "10.0.0.5:9092",
            "PG_ENV_NAME": "staging",
            "KAFKA_TOPIC": "pg_statements",
            "KAFKA_TIMEOUT_SECONDS": "2",
        }
    )
    assert settings.kafka == KafkaSettings(("10.0.0.5:9092",), "pg_statements", "staging", 2.0)


@pytest.mark.parametrize("raw", ["kafka", "kafka:", ":9092", "kafka:port", "kafka:70000", "a:1,b"])
def test_bad_kafka_server_is_named(raw: str) -> None:
    assert _problems({"KAFKA_SERVER": raw, "PG_ENV_NAME": "production"}) == [
        "KAFKA_SERVER: expected host:port[,host:port...] (e.g. kafka-1:9092,kafka-2:9092), "
        f"got {raw!r}"
    ]


def test_kafka_server_of_only_commas() -> None:
    assert _problems({"KAFKA_SERVER": ",", "PG_ENV_NAME": "production"}) == [
        "KAFKA_SERVER: expected host:port[,host:port...] (e.g. kafka-1:9092)"
    ]


def test_kafka_without_env_name_streams_with_the_default_tag_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12.7: KAFKA_SERVER alone (an older exporter's user) must not stop collection."""
    settings = load_settings({"KAFKA_SERVER": "kafka:9092"})
    assert settings.kafka == KafkaSettings(
        ("kafka:9092",), "pgsql_query_message", "default", 5.0, env_name_defaulted=True
    )
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    stream = build_stream(settings.kafka)
    assert stream is not None
    assert [(r.message, r.detail) for r in caplog.records] == [  # type: ignore[attr-defined]
        (
            "PG_ENV_NAME is not set",
            "KAFKA_SERVER is set without PG_ENV_NAME: statement messages are tagged "
            "env_name='default'; set PG_ENV_NAME (e.g. production)",
        )
    ]
    stream.close()


def test_every_problem_in_one_error() -> None:
    assert _problems({"SERVER_PORT": "x", "KAFKA_SERVER": "kafka"}) == [
        "SERVER_PORT: expected a port number from 1 to 65535, got 'x'",
        "KAFKA_SERVER: expected host:port[,host:port...] (e.g. kafka-1:9092,kafka-2:9092), "
        "got 'kafka'",
    ]
