"""Custom SQL metrics (SPEC 16) against postgres_exporter: the same queries file on the same
server gives the same series (names, labels, types, help, values) from Debian's
prometheus-postgres-exporter and from the product; and what the product adds of its own
(pg_custom_query_up, the series bound, runonserver, cache_seconds, read-only)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from middleware_monitoring.model import PassResult, TargetResult
from middleware_monitoring.postgres.source import PostgresSource
from middleware_monitoring.sinks import exposition
from tests.integration.pg_helpers import (
    APP_DB,
    MONITOR,
    MONITOR_PASSWORD,
    ok_pass,
    prepare,
    series_of,
    settings_for,
)
from tests.standins._process import free_port, http_ok, stop_process, wait_until
from tests.standins.postgres import PostgresServer

EXPORTER = "prometheus-postgres-exporter"

# Several queries: labels, gauges, a counter, NULLs, a column the file does not list
# (untyped), DISCARD, DURATION, a master query, a version range that holds, a cache, and a
# query that fails. Namespaces outside pg_: the built-in names stay apart.
QUERIES = """
shop_items:
  query: "SELECT kind, name, stock, price, sold, sold + 1 AS returned_total, note
    FROM shop_items ORDER BY kind, name"
  metrics:
    - kind:
        usage: "LABEL"
        description: "Kind of item"
    - name:
        usage: "LABEL"
        description: "Item name"
    - stock:
        usage: "GAUGE"
        description: "Items in stock"
    - price:
        usage: "GAUGE"
        description: "Price of one item"
    - sold:
        usage: "COUNTER"
        description: "Items sold"
    - returned_total:
        usage: "COUNTER"
        description: "Items returned"
    - note:
        usage: "DISCARD"
        description: "Not a number"
shop_nulls:
  query: "SELECT NULL::text AS who, NULL::float8 AS amount, 7 AS unlisted, true AS open_flag"
  metrics:
    - who:
        usage: "LABEL"
        description: "Nobody"
    - amount:
        usage: "GAUGE"
        description: "Nothing"
    - open_flag:
        usage: "GAUGE"
        description: "A boolean"
shop_master:
  query: "SELECT current_database() AS datname, count(*) AS tables FROM pg_stat_user_tables"
  master: true
  metrics:
    - datname:
        usage: "LABEL"
        description: "Database"
    - tables:
        usage: "GAUGE"
        description: "User tables"
shop_wait:
  query: "SELECT 1500::bigint AS wait, 2::int AS level"
  runonserver: ">=10.0.0"
  cache_seconds: 30
  metrics:
    - wait:
        usage: "DURATION"
        description: "A wait in ms"
    - level:
        usage: "MAPPEDMETRIC"
        description: "A level"
shop_broken:
  query: "SELECT x FROM shop_no_such_table"
  metrics:
    - x:
        usage: "GAUGE"
        description: "Never there"
"""
NAMESPACES = ("shop_items", "shop_nulls", "shop_master", "shop_wait", "shop_broken")

Series = dict[tuple[str, str, str, frozenset[tuple[str, str]]], str]


def prepare_shop(server: PostgresServer) -> None:
    prepare(server)
    server.execute_as_superuser(
        "CREATE TABLE IF NOT EXISTS shop_items (kind text, name text, stock int, "
        "price numeric, sold bigint, note text)",
        database=APP_DB,
    )
    server.execute_as_superuser("TRUNCATE shop_items", database=APP_DB)
    server.execute_as_superuser(
        "INSERT INTO shop_items VALUES ('fruit', 'apple', 12, 0.25, 340, 'red'), "
        "('fruit', 'pear', 0, 1.50, 7, NULL), ('tool', 'saw', NULL, 19.99, 0, 'sharp'), "
        "(NULL, 'mystery', 1, NULL, NULL, NULL)",
        database=APP_DB,
    )
    server.execute_as_superuser(f"GRANT SELECT ON shop_items TO {MONITOR}", database=APP_DB)


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def comparable(text: str) -> Series:
    """The shop_ series of a text exposition: (series, its TYPE, its HELP, labels) -> value,
    without the label each side adds of its own (server; instance). Read line by line, as
    written: prometheus_client's parser folds `x` and `x_total` counters into one family."""
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    series: Series = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line[7:].split(" ", 1)
            types[name] = kind
        elif line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            helps[name] = help_text
        elif line.startswith("shop_"):
            match = _SAMPLE.fullmatch(line)
            assert match is not None, line
            name, raw_labels, raw_value = match.groups()
            labels = {
                k: bytes(v, "utf-8").decode("unicode_escape")
                for k, v in _LABEL.findall(raw_labels or "")
                if k not in ("server", "instance")
            }
            value = float(raw_value)
            key = (name, types.get(name, "untyped"), helps.get(name, ""), frozenset(labels.items()))
            series[key] = "NaN" if math.isnan(value) else repr(value)
    return series


@pytest.fixture
def queries_file(tmp_path: Path) -> Path:
    path = tmp_path / "queries.yaml"
    path.write_text(QUERIES)
    return path


@pytest.fixture
def exporter(pg_server: PostgresServer, queries_file: Path, tmp_path: Path) -> Iterator[str]:
    """postgres_exporter on the same server and database, with the same file: its /metrics."""
    binary = shutil.which(EXPORTER)
    assert binary is not None, f"{EXPORTER} is not installed (make install installs it)"
    port = free_port()
    log = tmp_path / "exporter.log"
    env = {
        "DATA_SOURCE_NAME": (
            f"postgresql://{MONITOR}:{MONITOR_PASSWORD}@{pg_server.host}:{pg_server.port}"
            f"/{APP_DB}?sslmode=disable"
        ),
        "PATH": "/usr/bin:/bin",
    }
    command = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--extend.query-path={queries_file}",
        "--disable-default-metrics",
        "--disable-settings-metrics",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        landing = f"http://127.0.0.1:{port}/"
        wait_until(lambda: http_ok(landing), what=EXPORTER, timeout=30.0, proc=proc, log=log)
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        stop_process(proc)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
    return body.decode()


def product_text(source: PostgresSource) -> str:
    families = list(source.collect())
    result = PassResult([TargetResult("shop-db", families, [])], 0.0, TargetResult("c", [], []))
    return exposition(result).decode()


def test_same_series_as_postgres_exporter(
    pg_server: PostgresServer, queries_file: Path, exporter: str
) -> None:
    prepare_shop(pg_server)
    source = PostgresSource(
        settings_for(pg_server, PG_QUERIES_FILE=str(queries_file), PG_COLLECTORS="none")
    )
    try:
        ours = comparable(product_text(source))
    finally:
        source.close()
    theirs = comparable(scrape(exporter))
    # The one difference: prometheus_client's text format declares a counter as <name>_total,
    # so a counter whose name does not end so goes untyped (docs/postgresql.md).
    assert ours == {
        (name, "untyped" if kind == "counter" and not name.endswith("_total") else kind, *rest): v
        for (name, kind, *rest), v in theirs.items()
    }
    # And what both sent is what the data says (not two empty sides agreeing).
    fruit_apple = frozenset({("kind", "fruit"), ("name", "apple")})
    mystery = frozenset({("kind", ""), ("name", "mystery")})
    assert ours[("shop_items_stock", "gauge", "Items in stock", fruit_apple)] == "12.0"
    assert ours[("shop_items_price", "gauge", "Price of one item", fruit_apple)] == "0.25"
    assert ours[("shop_items_sold", "untyped", "Items sold", fruit_apple)] == "340.0"
    assert ours[("shop_items_returned_total", "counter", "Items returned", fruit_apple)] == (
        "341.0"
    )
    assert ours[("shop_items_price", "gauge", "Price of one item", mystery)] == "NaN"
    nobody = frozenset({("who", "")})
    assert ours[("shop_nulls_amount", "gauge", "Nothing", nobody)] == "NaN"
    assert ours[("shop_nulls_open_flag", "gauge", "A boolean", nobody)] == "1.0"
    assert ours[("shop_nulls_unlisted", "untyped", "Unknown metric from shop_nulls", nobody)] == (
        "7.0"
    )
    assert ours[("shop_master_tables", "gauge", "User tables", frozenset({("datname", APP_DB)}))]
    assert ours[("shop_wait_wait_milliseconds", "gauge", "A wait in ms", frozenset())] == "1500.0"
    assert ours[("shop_wait_level", "gauge", "A level", frozenset())] == "2.0"
    assert {key[0] for key in ours} == {
        "shop_items_stock",
        "shop_items_price",
        "shop_items_sold",
        "shop_items_returned_total",
        "shop_nulls_amount",
        "shop_nulls_open_flag",
        "shop_nulls_unlisted",
        "shop_master_tables",
        "shop_wait_wait_milliseconds",
        "shop_wait_level",
    }
    assert len(ours) == 4 * 4 + 3 + 1 + 2


def test_failing_query_is_down_and_the_others_run(
    pg_server: PostgresServer, queries_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prepare_shop(pg_server)
    source = PostgresSource(
        settings_for(pg_server, PG_QUERIES_FILE=str(queries_file), PG_COLLECTORS="none")
    )
    try:
        first = ok_pass(source)
        second = ok_pass(source)
    finally:
        source.close()
    up = {dict(labels)["query"]: v for labels, v in series_of(first, "pg_custom_query_up").items()}
    assert up == {name: (0.0 if name == "shop_broken" else 1.0) for name in NAMESPACES}
    assert series_of(second, "pg_custom_query_up") == series_of(first, "pg_custom_query_up")
    failures = [r for r in caplog.records if "custom query shop_broken failed" in r.getMessage()]
    # Said when it starts failing, not every pass.
    assert len(failures) == 1
    assert 'relation "shop_no_such_table" does not exist' in failures[0].getMessage()
    assert "SQLSTATE 42P01" in failures[0].getMessage()


def test_series_per_query_are_bounded(pg_server: PostgresServer, tmp_path: Path) -> None:
    prepare(pg_server)
    path = tmp_path / "many.yaml"
    path.write_text(
        "shop_many:\n"
        '  query: "SELECT g::text AS id, g AS value FROM generate_series(1, 50) g ORDER BY g"\n'
        "  metrics:\n"
        "    - id: {usage: LABEL, description: id}\n"
        "    - value: {usage: GAUGE, description: value}\n"
    )
    source = PostgresSource(
        settings_for(
            pg_server, PG_QUERIES_FILE=str(path), PG_QUERIES_MAX_SERIES="20", PG_COLLECTORS="none"
        )
    )
    try:
        samples = ok_pass(source)
    finally:
        source.close()
    sent = series_of(samples, "shop_many_value")
    assert sorted(int(dict(k)["id"]) for k in sent) == list(range(1, 21))
    dropped = series_of(samples, "pg_custom_query_series_dropped")
    assert dropped == {frozenset({("query", "shop_many")}): 30.0}


def test_runonserver_cache_and_read_only(pg_server: PostgresServer, tmp_path: Path) -> None:
    prepare(pg_server)
    pg_server.execute_as_superuser(
        "CREATE TABLE IF NOT EXISTS shop_counter (n int)", database=APP_DB
    )
    pg_server.execute_as_superuser(f"GRANT ALL ON shop_counter TO {MONITOR}", database=APP_DB)
    path = tmp_path / "special.yaml"
    path.write_text(
        "shop_old:\n"
        '  query: "SELECT 1 AS one"\n'
        '  runonserver: "<10.0.0 || 9.6.x"\n'
        "  metrics: [{one: {usage: GAUGE, description: one}}]\n"
        "shop_now:\n"
        '  query: "SELECT 1 AS one"\n'
        '  runonserver: ">=15.0.0 <19.0.0"\n'
        "  metrics: [{one: {usage: GAUGE, description: one}}]\n"
        "shop_cached:\n"
        '  query: "SELECT clock_timestamp() AS at_time"\n'
        "  cache_seconds: 3600\n"
        "  metrics: [{at_time: {usage: GAUGE, description: when}}]\n"
        "shop_writer:\n"
        '  query: "INSERT INTO shop_counter VALUES (1) RETURNING n"\n'
        "  metrics: [{n: {usage: GAUGE, description: n}}]\n"
    )
    source = PostgresSource(
        settings_for(pg_server, PG_QUERIES_FILE=str(path), PG_COLLECTORS="none")
    )
    try:
        first = ok_pass(source)
        second = ok_pass(source)
    finally:
        source.close()
    assert series_of(first, "shop_old_one") == {}
    assert series_of(first, "shop_now_one") == {frozenset(): 1.0}
    # Cached: the same reading an hour long, not a new clock_timestamp().
    assert series_of(second, "shop_cached_at_time") == series_of(first, "shop_cached_at_time")
    up = {dict(k)["query"]: v for k, v in series_of(first, "pg_custom_query_up").items()}
    assert up == {"shop_now": 1.0, "shop_cached": 1.0, "shop_writer": 0.0}
    conn = pg_server.connect(database=APP_DB)
    try:
        assert conn.run("SELECT count(*) FROM shop_counter") == [[0]]
    finally:
        conn.close()
