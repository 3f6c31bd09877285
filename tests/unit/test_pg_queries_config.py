"""PG_QUERIES_FILE / queries_file (SPEC 16): postgres_exporter's queries.yaml read as it does,
every problem named by the file, the query and the key; and the value conversions that make
the product's series equal postgres_exporter's."""

from __future__ import annotations

import datetime
import math
import re
from decimal import Decimal
from pathlib import Path

import pytest

from middleware_monitoring.config import ConfigError, load_settings
from middleware_monitoring.config.pg_queries import (
    BUILTIN_PG_SERIES,
    parse_queries,
    parse_range,
    server_semver,
)
from middleware_monitoring.postgres.custom_queries import go_float_text, label_of, value_of

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
pg_replication_custom:
  query: "SELECT 1 AS lag"
  master: true
  cache_seconds: 30
  runonserver: ">=10.0.0"
  metrics:
    - lag:
        usage: "GAUGE"
        description: "Replication lag"
shop:
  query: "SELECT 'a' AS kind, 2 AS n, 3 AS wait, 'x' AS note"
  metrics:
    - kind: {usage: LABEL, description: kind}
    - n: {usage: COUNTER, description: n}
    - wait: {usage: DURATION, description: wait}
    - note: {usage: DISCARD}
"""
PG_ENV = {"PG_DATABASE": "db.local", "PG_USER": "monitor", "PG_PWD": "pw"}


def test_a_good_file_is_read_as_postgres_exporter_reads_it() -> None:
    queries, problems = parse_queries(GOOD, "q.yaml")
    assert problems == []
    assert queries is not None
    lag, shop = queries.queries
    assert (lag.namespace, lag.master, lag.cache_seconds, lag.sql) == (
        "pg_replication_custom",
        True,
        30,
        "SELECT 1 AS lag",
    )
    assert lag.runonserver is not None and lag.runonserver.admits((15, 7, 0))
    assert shop.labels == ("kind",)
    assert shop.series_names() == ["shop_n", "shop_wait_milliseconds"]
    assert (shop.master, shop.cache_seconds, shop.runonserver) == (False, 0, None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [", "queries file q.yaml: YAML syntax error at line 1 column 5: "),
        ("- 1", "queries file q.yaml: expected a mapping of namespace: {query: ..., "),
        (
            "shop:\n  query: SELECT 1 AS n\n  metrics: [{n: {usage: GUAGE}}]",
            "queries file q.yaml: shop.metrics[0].n.usage: expected one of LABEL, GAUGE, COUNTER, "
            "DURATION, MAPPEDMETRIC, DISCARD, got 'GUAGE'",
        ),
        (
            "shop:\n  query: SELECT 1 AS n\n  metrics: [{n: {usage: HISTOGRAM}}]",
            "queries file q.yaml: shop.metrics[0].n.usage: HISTOGRAM columns are not supported",
        ),
        (
            "shop:\n  metrics: [{n: {usage: GAUGE}}]",
            "queries file q.yaml: shop.query: expected the SQL text, got nothing",
        ),
        (
            "shop:\n  query: SELECT 1 AS n\n  metrics: [{n: {usage: GAUGE}}]\n  master: maybe",
            "queries file q.yaml: shop.master: expected true or false, got str",
        ),
        (
            "shop:\n  query: SELECT 1 AS n\n  metrics: [{n: {usage: GAUGE}}]\n  cache_seconds: -1",
            "queries file q.yaml: shop.cache_seconds: expected a whole number of seconds, 0 or "
            "more, got -1",
        ),
        (
            "shop:\n  query: SELECT 1 AS n\n  metrics: [{n: {usage: GAUGE}}]\n  runonserver: soon",
            "queries file q.yaml: shop.runonserver: expected a version range like",
        ),
        (
            "shop:\n  query: SELECT 1 AS n\n  metrics: [{n: {usage: GAUGE}}]\n  timeout: 3",
            "queries file q.yaml: shop.timeout: unknown key; expected query, metrics, master, "
            "cache_seconds, runonserver",
        ),
        (
            "pg:\n  query: SELECT 1 AS up\n  metrics: [{up: {usage: GAUGE}}]",
            "queries file q.yaml: pg.metrics: series pg_up clashes with a series the product "
            "sends itself; rename the namespace or the column",
        ),
        (
            "pg_database:\n  query: SELECT 1 AS deadlocks\n  metrics: [{deadlocks: {usage: "
            "COUNTER}}]",
            "queries file q.yaml: pg_database.metrics: series pg_database_deadlocks clashes",
        ),
        (
            "a:\n  query: SELECT 1 AS b_c\n  metrics: [{b_c: {usage: GAUGE}}]\n"
            "a_b:\n  query: SELECT 1 AS c\n  metrics: [{c: {usage: GAUGE}}]",
            "queries file q.yaml: a_b.metrics: series a_b_c is also made by query a",
        ),
        (
            "shop:\n  query: SELECT 1 AS instance\n  metrics: [{instance: {usage: LABEL}}]",
            "queries file q.yaml: shop.metrics[0].instance: label instance is one the product "
            "sets itself",
        ),
    ],
)
def test_a_bad_file_names_file_query_and_key(text: str, problem: str) -> None:
    queries, problems = parse_queries(text, "q.yaml")
    assert queries is None
    assert len(problems) == 1
    assert problems[0].startswith(problem), problems[0]


def test_pg_queries_file_problems_are_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pg:\n  query: SELECT 1 AS up\n  metrics: [{up: {usage: GAUGE}}]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({**PG_ENV, "PG_QUERIES_FILE": str(bad)})
    assert caught.value.problems == [
        f"PG_QUERIES_FILE: queries file {bad}: pg.metrics: series pg_up clashes with a series "
        "the product sends itself; rename the namespace or the column"
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings({**PG_ENV, "PG_QUERIES_FILE": str(tmp_path / "missing.yaml")})
    assert caught.value.problems == [
        f"PG_QUERIES_FILE: queries file {tmp_path / 'missing.yaml'}: cannot be read: queries "
        f"file {tmp_path / 'missing.yaml'} does not exist"
    ]


def test_targets_file_entry_has_its_own_queries_file(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(GOOD)
    (tmp_path / "own.yaml").write_text(
        "own:\n  query: SELECT 1 AS n\n  metrics: [{n: {usage: GAUGE}}]\n"
    )
    (tmp_path / "bad.yaml").write_text("own:\n  query: SELECT 1 AS n\n")
    (tmp_path / "targets.yaml").write_text(
        "postgres:\n"
        "  - {name: a, host: a.local, user: u, password: p}\n"
        "  - {name: b, host: b.local, user: u, password: p, queries_file: own.yaml}\n"
    )
    settings = load_settings(
        {"TARGETS_FILE": "targets.yaml", "PG_QUERIES_FILE": "default.yaml"},
        search_dirs=[tmp_path],
    )
    by_name = {spec.target_name: spec for spec in settings.targets}
    a_queries, b_queries = by_name["a"].custom_queries, by_name["b"].custom_queries  # type: ignore[union-attr]
    assert a_queries is not None and b_queries is not None
    assert [q.namespace for q in a_queries.queries] == ["pg_replication_custom", "shop"]
    assert [q.namespace for q in b_queries.queries] == ["own"]
    (tmp_path / "targets.yaml").write_text(
        "postgres:\n  - {name: c, host: c.local, user: u, password: p, queries_file: bad.yaml}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({"TARGETS_FILE": "targets.yaml"}, search_dirs=[tmp_path])
    assert caught.value.problems == [
        "TARGETS_FILE (targets.yaml): postgres[0] (c).queries_file: queries file bad.yaml: "
        "own.metrics: expected a list of {column: {usage: ..., description: ...}}, got nothing"
    ]


def test_pg_queries_max_series_is_bounded() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**PG_ENV, "PG_QUERIES_MAX_SERIES": "0"})
    assert caught.value.problems[0].startswith("PG_QUERIES_MAX_SERIES: ")


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        (">=10.0.0", [(10, 0, 0), (18, 1, 0)], [(9, 6, 24)]),
        (">=12.0.0 <16.0.0", [(12, 0, 0), (15, 7, 0)], [(16, 0, 0), (11, 9, 0)]),
        ("<10.0.0 || 17.x", [(9, 6, 0), (17, 2, 0)], [(15, 0, 0), (18, 0, 0)]),
        ("15.7.0", [(15, 7, 0)], [(15, 8, 0)]),
        ("!=16.0.0", [(15, 0, 0)], [(16, 0, 0)]),
    ],
)
def test_runonserver_ranges(
    text: str, inside: list[tuple[int, int, int]], outside: list[tuple[int, int, int]]
) -> None:
    version_range = parse_range(text)
    assert version_range is not None
    assert [version_range.admits(v) for v in inside + outside] == [True] * len(inside) + [
        False
    ] * len(outside)


def test_server_version_as_semver() -> None:
    assert [server_semver(v) for v in (150007, 170002, 180000, 90624)] == [
        (15, 7, 0),
        (17, 2, 0),
        (18, 0, 0),
        (9, 6, 24),
    ]


def test_values_as_postgres_exporter_converts_them() -> None:
    stamp = datetime.datetime(2024, 1, 2, 3, 4, 5, 900000, tzinfo=datetime.UTC)
    assert [
        value_of(v) for v in (3, 2.5, Decimal("1.50"), True, False, "42", "1e3", "0x10", stamp)
    ] == [3.0, 2.5, 1.5, 1.0, 0.0, 42.0, 1000.0, 16.0, 1704164645.0]
    assert math.isnan(value_of(None) or 0)
    assert [value_of(v) for v in ("abc", " 1", "1_000", datetime.timedelta(seconds=1))] == [
        None
    ] * 4


def test_labels_as_postgres_exporter_writes_them() -> None:
    assert [label_of(v) for v in (None, True, 7, Decimal("1.50"), "x", b"y")] == [
        "",
        "true",
        "7",
        "1.50",
        "x",
        "y",
    ]
    assert [go_float_text(v) for v in (0.5, 123456.0, 1e6, 1234567.0, 1.5e-5, 0.0001, -2.0)] == [
        "0.5",
        "123456",
        "1e+06",
        "1.234567e+06",
        "1.5e-05",
        "0.0001",
        "-2",
    ]


def test_builtin_series_are_the_documented_pg_series() -> None:
    """A custom series may not take a name the product sends: the list the check uses is
    every pg_ series of docs/metrics.md. Adding a pg_ series? Add it to BUILTIN_PG_SERIES."""
    documented = set(
        re.findall(r"^\| `(pg_[a-z0-9_]+)` \|", (ROOT / "docs/metrics.md").read_text(), re.M)
    )
    assert documented == set(BUILTIN_PG_SERIES)
