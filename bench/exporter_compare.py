"""Section 3 of `make bench`: pg_stat_statements scraped by the product (pull mode) and by
prometheus-postgres-exporter with the product's top-N query as a custom query, on the same
server, over HTTP, alternately; once with nothing new between scrapes (the product's text
cache warm), once with new statements entering the top N before every scrape (so the product
fetches texts every time)."""

from __future__ import annotations

import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Servers, Sizes, child_env, start_pg
from bench.report import Figure, Part, median_ratio, ms
from bench.section import Section, Table

EXPORTER = "prometheus-postgres-exporter"
EXPORTER_ROLE = "bench_exporter"
# Only the custom query: no default, settings, database or bgwriter metrics.
EXPORTER_FLAGS = (
    "--disable-default-metrics",
    "--disable-settings-metrics",
    "--no-collector.database",
    "--no-collector.bgwriter",
)
COLUMNS_PER_TABLE = 1000  # as bench/pg_warm_pass.py's tables
# A new statement sleeps this long, plus this much more than the one before it.
CHURN_BASE_MS = 5
CHURN_STEP_MS = 1


def exporter_queries(extversion: str, top_n: int, max_length: int) -> str:
    """The product's top-N statement query as a postgres_exporter custom query: same
    aggregation, same columns, same order, texts whitespace-collapsed and capped as the
    product caps them. It starts with the product's marker and leaves out what starts with
    it, as the product leaves out its own statements: neither reader's statements climb
    into either top N while nothing else runs."""
    from middleware_monitoring.postgres.statements import MARKER, columns_for

    c = columns_for(extversion)
    query = f"""{MARKER}
SELECT left(btrim(regexp_replace(max(s.query), '\\s+', ' ', 'g')), {max_length}) AS query,
  s.queryid::text AS queryid, d.datname AS database, r.rolname AS username,
  sum(s.calls)::float8 AS calls, {c.total_time} AS total_exec_time,
  {c.min_time} AS min_exec_time, {c.max_time} AS max_exec_time,
  {c.total_time} / nullif(sum(s.calls), 0) AS mean_exec_time,
  {c.blk_read_time} AS blk_read_time, {c.blk_write_time} AS blk_write_time,
  sum(s.rows)::float8 AS rows,
  100.0 * sum(s.shared_blks_hit) / nullif(sum(s.shared_blks_hit + s.shared_blks_read), 0)
    AS hit_percent
FROM pg_stat_statements s
LEFT JOIN pg_database d ON d.oid = s.dbid
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE NOT starts_with(s.query, '{MARKER}')
GROUP BY s.queryid, s.dbid, s.userid, d.datname, r.rolname
ORDER BY {c.total_time} DESC
LIMIT {top_n}"""
    labels = ("query", "queryid", "database", "username")
    gauges = (
        "calls",
        "total_exec_time",
        "min_exec_time",
        "max_exec_time",
        "mean_exec_time",
        "blk_read_time",
        "blk_write_time",
        "rows",
        "hit_percent",
    )
    metrics = [
        f"    - {name}:\n        usage: LABEL\n        description: {name}" for name in labels
    ]
    metrics += [
        f"    - {name}:\n        usage: GAUGE\n        description: {name}" for name in gauges
    ]
    indented = "\n".join("    " + line for line in query.splitlines())
    return f"pg_stat_statements:\n  query: |\n{indented}\n  metrics:\n" + "\n".join(metrics) + "\n"


def exporter_version(binary: str) -> str:
    """What the installed exporter says it is (`--version`, first line)."""
    proc = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    text = (proc.stdout + proc.stderr).strip()
    return text.splitlines()[0] if text else "unknown (no --version output)"


@contextlib.contextmanager
def http_process(command: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[int]:
    from tests.standins._process import http_ok, stop_process, wait_until

    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: http_ok(url), what=command[0], timeout=30.0, proc=proc, log=log)
        yield proc.pid
    finally:
        stop_process(proc)


def scrape(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read().decode()
    return time.perf_counter() - started, body


def queryids(body: str, series: str) -> set[str]:
    """The queryid labels of ``series`` in an exposition."""
    pattern = re.compile(r'queryid="([^"]*)"')
    return {
        match.group(1)
        for line in body.splitlines()
        if line.startswith(series + "{")
        for match in [pattern.search(line)]
        if match
    }


class Churn:
    """New distinct statements, each sleeping longer than every one before it, so each
    enters the top N by total time (the product must fetch its text)."""

    def __init__(self, server: Any, tables: int) -> None:
        self._conn = server.connect()
        self._tables = tables
        self._next = 0

    def run(self, count: int) -> None:
        for _ in range(count):
            t, c = divmod(self._next % (self._tables * COLUMNS_PER_TABLE), COLUMNS_PER_TABLE)
            sleep = (CHURN_BASE_MS + CHURN_STEP_MS * self._next) / 1000
            self._conn.run(
                f"SELECT pg_sleep({sleep:.4f}) FROM "
                f"(SELECT c{c} FROM bench_t{t} UNION ALL SELECT 1) AS churn"
            )
            self._next += 1

    def close(self) -> None:
        self._conn.close()


def compare(s: Servers, sizes: Sizes) -> tuple[Part, dict[str, Any]]:
    from middleware_monitoring.config import load_settings
    from tests.standins._process import free_port

    part = Part("3", "pg_stat_statements: product against prometheus-postgres-exporter")
    binary = shutil.which(EXPORTER)
    if binary is None:
        part.add(f"Not measured: `{EXPORTER}` is not installed (`make bench` installs it).")
        return part, {"exporter": EXPORTER, "installed": False}
    version = exporter_version(binary)
    rows: list[tuple[Any, ...]] = []
    measured: list[dict[str, Any]] = []
    top_n = 0
    letters = iter("abcdefghijklmnop")
    sizes_run = [sizes.statements] + ([sizes.large_statements] if sizes.large_statements else [])
    for size in sizes_run:
        with contextlib.ExitStack() as stack:
            server = s.reference_pg if size == s.statements else start_pg(stack, size)
            conn = server.connect()
            try:
                extversion = str(
                    conn.run(
                        "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'"
                    )[0][0]
                )
                entries = int(conn.run("SELECT count(*) FROM pg_stat_statements")[0][0])
                text_bytes = int(
                    conn.run("SELECT sum(length(query)) FROM pg_stat_statements")[0][0]
                )
                # The exporter's own statements (`SELECT version()` every scrape) would climb
                # into the top N as the product's would if it did not leave them out: its
                # role is not tracked.
                if not conn.run("SELECT 1 FROM pg_roles WHERE rolname = :r", r=EXPORTER_ROLE):
                    conn.run(
                        f"CREATE ROLE {EXPORTER_ROLE} LOGIN SUPERUSER PASSWORD '{server.password}'"
                    )
                    conn.run(f"ALTER ROLE {EXPORTER_ROLE} SET pg_stat_statements.track = 'none'")
            finally:
                conn.close()
            exporter_port, ours_port = free_port(), free_port()
            pg_env = {
                "PG_DATABASE": server.host,
                "PG_PORT": str(server.port),
                "PG_USER": server.superuser,
                "PG_PWD": server.password,
                "PG_DBNAME": "postgres",
                "SERVER_ADDRESS": "127.0.0.1",
                "SERVER_PORT": str(ours_port),
                "SERVER_SCRAPE_BUDGET_SECONDS": "120",
                "LOG_LEVEL": "WARNING",
            }
            settings = load_settings(pg_env).postgres
            assert settings is not None
            top_n = settings.statements_top_n
            queries = s.write(
                f"queries-{size}.yaml",
                exporter_queries(extversion, top_n, settings.query_max_length),
            )
            dsn = (
                f"postgresql://{EXPORTER_ROLE}:{server.password}@{server.host}:{server.port}"
                "/postgres?sslmode=disable"
            )
            exporter_cmd = [
                binary,
                f"--web.listen-address=127.0.0.1:{exporter_port}",
                f"--extend.query-path={queries}",
                *EXPORTER_FLAGS,
            ]
            ours_cmd = [sys.executable, "-m", "middleware_monitoring", "serve"]
            exporter_url = f"http://127.0.0.1:{exporter_port}/metrics"
            ours_url = f"http://127.0.0.1:{ours_port}/metrics"
            stack.enter_context(
                http_process(
                    exporter_cmd,
                    child_env({"DATA_SOURCE_NAME": dsn}),
                    # Its landing page: a first /metrics can take longer than the probe.
                    f"http://127.0.0.1:{exporter_port}/",
                    s.workdir / f"exporter-{size}.log",
                )
            )
            stack.enter_context(
                http_process(
                    ours_cmd,
                    child_env(pg_env),
                    f"http://127.0.0.1:{ours_port}/healthz",
                    s.workdir / f"serve-{size}.log",
                )
            )
            # Warm both up: the product's first scrape classifies every statement and
            # samples its QPS window; the exporter's first one connects.
            for _ in range(2):
                scrape(ours_url)
                scrape(exporter_url)
            churn = Churn(server, -(-size // COLUMNS_PER_TABLE))
            stack.callback(churn.close)
            for workload, per_scrape in (("steady", 0), ("new statements", sizes.churn_per_scrape)):
                ours_t: list[float] = []
                exp_t: list[float] = []
                ratios: list[float] = []
                new_ours: list[int] = []
                new_exp: list[int] = []
                _, body = scrape(ours_url)
                seen_ours = queryids(body, "pg_query_calls")
                _, body = scrape(exporter_url)
                seen_exp = queryids(body, "pg_stat_statements_calls")
                ours_body = exp_body = ""
                for _ in range(sizes.exporter_scrapes):
                    churn.run(per_scrape)
                    o, ours_body = scrape(ours_url)
                    churn.run(per_scrape)
                    e, exp_body = scrape(exporter_url)
                    ours_t.append(o)
                    exp_t.append(e)
                    ratios.append(e / o)
                    ids = queryids(ours_body, "pg_query_calls")
                    new_ours.append(len(ids - seen_ours))
                    seen_ours = ids
                    ids = queryids(exp_body, "pg_stat_statements_calls")
                    new_exp.append(len(ids - seen_exp))
                    seen_exp = ids
                o_med, e_med = statistics.median(ours_t), statistics.median(exp_t)
                rows.append(
                    (
                        f"{entries:,}",
                        f"{text_bytes / 1e6:.1f} MB",
                        workload,
                        f"{statistics.median(new_ours):g} / {statistics.median(new_exp):g}",
                        ms(o_med),
                        ms(e_med),
                        median_ratio(ratios),
                        f"{len(queryids(ours_body, 'pg_query_calls'))} / "
                        f"{len(queryids(exp_body, 'pg_stat_statements_calls'))}",
                    )
                )
                measured.append(
                    {
                        "entries": entries,
                        "text_mb": round(text_bytes / 1e6, 1),
                        "workload": workload,
                        "new_in_top_n_product": statistics.median(new_ours),
                        "new_in_top_n_exporter": statistics.median(new_exp),
                        "product_scrape_s": o_med,
                        "exporter_scrape_s": e_med,
                        "ratio": statistics.median(ratios),
                        "series_product": len(queryids(ours_body, "pg_query_calls")),
                        "series_exporter": len(queryids(exp_body, "pg_stat_statements_calls")),
                    }
                )
                part.figures.append(
                    Figure(
                        f"3{next(letters)}",
                        f"pg_stat_statements scrape, {entries:,} entries "
                        f"({text_bytes / 1e6:.1f} MB of texts), top {top_n}, {workload}",
                        ms(o_med),
                        f"postgres_exporter {ms(e_med)}",
                        median_ratio(ratios),
                        f"curl http://127.0.0.1:PORT/metrics (`python -m middleware_monitoring "
                        f"serve`) vs {EXPORTER} --extend.query-path=queries-{size}.yaml "
                        + " ".join(EXPORTER_FLAGS),
                    )
                )
    part.add(
        f"The exporter is `{EXPORTER}` as installed here; it reports itself as `{version}`. It "
        f"runs with one custom query and everything else off ({' '.join(EXPORTER_FLAGS)}): the "
        "product's "
        "top-N statement query (same aggregation, columns, order, text length, the collector's "
        "statements left out), written out by "
        "`exporter_queries()` in bench/exporter_compare.py, reading the `pg_stat_statements` "
        f"view. It logs in as its own superuser `{EXPORTER_ROLE}`, whose statements are not "
        "tracked (`pg_stat_statements.track = none`), so neither reader's statements enter "
        "the top N. The product runs in pull mode (`python -m middleware_monitoring serve`, "
        "only PG_* set).",
        "",
        f"Both are scraped alternately after two warm-up scrapes each, {sizes.exporter_scrapes} "
        "times per workload; figures are medians, the ratio the median of the per-scrape ratios "
        "(exporter / product). *steady*: nothing runs between scrapes. *new statements*: before "
        f"every scrape, {sizes.churn_per_scrape} new distinct statements run, each with a "
        f"pg_sleep {CHURN_STEP_MS} ms longer than the one before it (from {CHURN_BASE_MS} ms), "
        "to enter the top N by total time. *new in top N* counts the "
        "queryids in a scrape's top N that were not in the previous scrape of the same "
        "exporter (median).",
        "",
    )
    part.table(
        (
            "entries",
            "texts",
            "workload",
            "new in top N (product / exporter)",
            "product",
            "postgres_exporter",
            "ratio",
            "statement series (product / exporter)",
        ),
        rows,
    )
    return part, {
        "exporter": EXPORTER,
        "installed": True,
        "version": version,
        "flags": list(EXPORTER_FLAGS),
        "role": EXPORTER_ROLE,
        "top_n": top_n,
        "scrapes": sizes.exporter_scrapes,
        "churn_per_scrape": sizes.churn_per_scrape,
        "churn_base_ms": CHURN_BASE_MS,
        "churn_step_ms": CHURN_STEP_MS,
        "workloads": measured,
    }


def section(figures: Mapping[str, Any]) -> Section:
    """Section 3 of the report (bench/section.py), from the stored figures only."""
    question = (
        "How long does a scrape of pg_stat_statements take, against prometheus-postgres-exporter?"
    )
    columns = (
        "pg_stat_statements",
        "texts (MB)",
        "workload",
        "new in top N (product / exporter)",
        "product scrape (ms)",
        "exporter scrape (ms)",
        "exporter / product (x)",
        "statement series (product / exporter)",
    )
    command = (
        "curl http://127.0.0.1:PORT/metrics (`python -m middleware_monitoring serve`) vs "
        f"{figures['exporter']} --extend.query-path=queries-SIZE.yaml"
    )
    if not figures["installed"]:
        return Section(
            question=question,
            method=f"Not measured: `{figures['exporter']}` is not installed (`make bench` "
            "installs it).",
            command=command,
            table=Table(columns, []),
            no_goal="Not measured.",
        )
    return Section(
        question=question,
        method=(
            f"`{figures['exporter']}` as installed here (it reports `{figures['version']}`), "
            f"with one custom query and everything else off ({' '.join(figures['flags'])}): "
            "the product's top-N statement query written out by `exporter_queries()` in "
            f"bench/exporter_compare.py, logged in as `{figures['role']}`, whose statements "
            "are not tracked. The product runs in pull mode (`python -m middleware_monitoring "
            f"serve`). Both scraped alternately after two warm-up scrapes, {figures['scrapes']} "
            "times per workload; medians, the ratio the median of the per-scrape ratios. "
            f"*steady*: nothing runs between scrapes; *new statements*: "
            f"{figures['churn_per_scrape']} new distinct statements before every scrape, each "
            f"with a pg_sleep {figures['churn_step_ms']} ms longer than the one before (from "
            f"{figures['churn_base_ms']} ms), to enter the top N by total time."
        ),
        command=command + " " + " ".join(figures["flags"]),
        table=Table(
            columns,
            [
                (
                    f"{w['entries']:,} entries",
                    w["text_mb"],
                    w["workload"],
                    f"{w['new_in_top_n_product']:g} / {w['new_in_top_n_exporter']:g}",
                    w["product_scrape_s"] * 1000,
                    w["exporter_scrape_s"] * 1000,
                    round(w["ratio"], 2),
                    f"{w['series_product']} / {w['series_exporter']}",
                )
                for w in figures["workloads"]
            ],
        ),
        no_goal="A comparison with prometheus-postgres-exporter, which sets no limit.",
        notes=[
            f"Both return the top {figures['top_n']} statements; *new in top N* counts the "
            "queryids of a scrape's top N that were not in the previous scrape (median)."
        ],
    )
