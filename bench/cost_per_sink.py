"""What a fleet costs per sink (SPEC 19): series per pass counted from a real pass of one
target of each kind, scaled to 1, 100 and 1,000 targets, priced with bench/prices.json.

    .venv/bin/python -m bench.cost_per_sink [--quick]

Kinds: PostgreSQL with a typical server (8 databases) and with a many-database one (40),
each with pg_stat_statements filled, tables in PG_DBNAME and its RDS instance's CloudWatch
metrics; DocumentDB (the wire-protocol stand-in, serverStatus) with a cluster and two
instances on CloudWatch; an ElastiCache node (redis-server 7.0) with its cluster's
CloudWatch metrics. CloudWatch is moto, seeded with datapoints, so every CloudWatch series a
real pass sends is there.

For each kind one target is collected as the function does (Runtime.collect, warm passes
after a cold one) and counted from its last pass: series (what the Pushgateway and remote
write receive), distinct EMF custom metrics with the default set and with ``EMF_METRICS=*``,
the bytes of its EMF log lines, and the CloudWatch metrics it requests per pass. The
collector's own pass-wide series are counted once per pass. The Lambda time of a pass of N
targets is the measured warm invocation of one target plus, per further target, the slope
measured with K copies of it (its engine source; CloudWatch is one batched call per pass):
collection plus the EMF lines, the cheapest sink to send.

Costs, a pass every minute (43,200 a month) and CloudWatch's default interval (60 s):
EMF custom metrics at CloudWatch's tiers plus its log lines at the Logs ingestion price;
remote write's samples (series x passes) at AMP's ingestion tiers; GetMetricData per metric
requested; Lambda GB-seconds at the template's memory and its requests. The Pushgateway has
no per-series bill (your Prometheus's own cost is not priced). Not a test: nothing here is
asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.harness import ROOT, template_default
from bench.section import Goal, Section, Table
from middleware_monitoring.bounds import MINUTES_PER_MONTH, SeriesBudget, count_series
from middleware_monitoring.emf import EmfSink, count_custom_metrics
from middleware_monitoring.model import PassResult, TargetResult
from middleware_monitoring.runtime import Runtime

COMMAND = ".venv/bin/python -m bench.cost_per_sink"
PRICES_FILE = ROOT / "bench" / "prices.json"
FLEETS = (1, 100, 1000)
KINDS = ("pg_typical", "pg_many", "docdb", "elasticache")
TITLES = {
    "pg_typical": "PostgreSQL, typical server",
    "pg_many": "PostgreSQL, many databases",
    "docdb": "DocumentDB",
    "elasticache": "ElastiCache node",
}
SECONDS_PER_MONTH = MINUTES_PER_MONTH * 60
CLOUDWATCH_INTERVAL_SECONDS = 60
GB = 1024**3


def prices() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(PRICES_FILE.read_text())
    return loaded


def tiered(quantity: float, tiers: Sequence[Sequence[float | None]], per: float = 1.0) -> float:
    """The price of ``quantity`` units under ``tiers`` ([[units in the tier or None for the
    rest, price per ``per`` units], ...])."""
    cost, left = 0.0, quantity
    for size, price in tiers:
        assert price is not None
        taken = left if size is None else min(left, size)
        cost += taken / per * price
        left -= taken
        if left <= 0:
            break
    return cost


# --- servers and targets -----------------------------------------------------------------


def _pg_server(stack: contextlib.ExitStack, databases: int, statements: int) -> Any:
    from bench.pg_warm_pass import fill
    from tests.standins.postgres import PostgresServer

    server = stack.enter_context(PostgresServer(17, settings={"max_connections": 200}))
    fill(server, statements)
    # "postgres" is one of them.
    for i in range(databases - 1):
        server.create_database(f"app_{i:02}")
    return server


def _pg_entry(server: Any, name: str, rds_id: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "host": server.host,
        "port": server.port,
        "dbname": "postgres",
        "user": server.superuser,
        "password": server.password,
        "sslmode": "disable",
    }
    if rds_id is not None:
        entry["rds_id"] = rds_id
    return entry


def _docdb_entry(mongo_info: Mapping[str, Any], name: str) -> dict[str, Any]:
    connect = mongo_info["connect"]
    return {
        "name": name,
        "host": connect["address"],
        "port": int(connect["port"]),
        "user": connect["user"],
        "password": connect["pwd"],
        "options": dict(mongo_info["parameter"]),
    }


def _redis_entry(server: Any, name: str, cluster: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "host": server.host, "port": server.port}
    if cluster is not None:
        entry["cache_cluster_id"] = cluster
    return entry


Document = dict[str, Any]


def _documents(servers: Mapping[str, Any], copies: int) -> dict[str, tuple[Document, Document]]:
    """Per kind: the one-target document (with CloudWatch) and ``copies`` engine-only
    targets (for the per-target slope)."""
    fleet = servers["fleet"]
    docs: dict[str, tuple[Document, Document]] = {}
    for kind in ("pg_typical", "pg_many"):
        server = servers[kind]
        one = {"postgres": [_pg_entry(server, f"{kind}-0", fleet.rds_instance)]}
        many = {"postgres": [_pg_entry(server, f"{kind}-{i}", None) for i in range(copies)]}
        docs[kind] = (one, many)
    info = servers["mongo_info"]
    docs["docdb"] = (
        {
            "docdb": [_docdb_entry(info, "docdb-0")],
            "cloudwatch": {
                "docdb_instances": list(fleet.docdb_instances),
                "docdb_clusters": list(fleet.docdb_clusters),
            },
        },
        {"docdb": [_docdb_entry(info, f"docdb-{i}") for i in range(copies)]},
    )
    redis = servers["redis"]
    docs["elasticache"] = (
        {"elasticache": [_redis_entry(redis, "cache-0", fleet.elasticache[0])]},
        {"elasticache": [_redis_entry(redis, f"cache-{i}", None) for i in range(copies)]},
    )
    return docs


@contextlib.contextmanager
def _servers(quick: bool) -> Iterator[dict[str, Any]]:
    from tests.standins.aws import MotoServer
    from tests.standins.cloudwatch import Fleet, seed_cloudwatch
    from tests.standins.docdb import start_demo_docdb
    from tests.standins.redis import RedisServer

    typical, many, statements = (3, 6, 60) if quick else (8, 40, 500)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cost-")))
        aws = stack.enter_context(MotoServer())
        fleet = Fleet(rds_instance="cost-postgres")
        seed_cloudwatch(aws.endpoint_url, fleet)
        docdb, mongo_info = start_demo_docdb(workdir)
        stack.callback(docdb.stop)
        yield {
            "workdir": workdir,
            "aws": aws,
            "fleet": fleet,
            "pg_typical": _pg_server(stack, typical, statements),
            "pg_many": _pg_server(stack, many, statements),
            "mongo_info": json.loads(mongo_info),
            "redis": stack.enter_context(RedisServer()),
            "databases": {"pg_typical": typical, "pg_many": many},
            "statements": statements,
        }


# --- one kind ----------------------------------------------------------------------------


def _runtime(servers: Mapping[str, Any], name: str, document: Mapping[str, Any]) -> Runtime:
    path = Path(servers["workdir"]) / f"{name}.json"
    path.write_text(json.dumps(document))
    environ = {
        **servers["aws"].env(),
        "TARGETS_FILE": str(path),
        "METRICS_SINK": "emf",
        "PG_QPS_SAMPLE_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }
    return Runtime.from_environ(environ)


def _invocation(runtime: Runtime, sink: EmfSink) -> tuple[float, PassResult, int]:
    """One warm invocation's work: the pass, the budget's count, the EMF lines printed (into
    memory). Seconds, the pass, bytes printed."""
    out = io.StringIO()
    started = time.perf_counter()
    result, _ = SeriesBudget(None).apply(runtime.collect(30.0), "emf")
    with contextlib.redirect_stdout(out):
        sink.send(result)
    return time.perf_counter() - started, result, len(out.getvalue().encode())


def _warm(runtime: Runtime, passes: int) -> tuple[float, PassResult, PassResult]:
    """The median warm invocation after a cold one, the cold pass (the one that queried
    CloudWatch: warm passes within its interval do not) and the last pass."""
    sink = EmfSink("Bench/Cost")
    _, cold, _ = _invocation(runtime, sink)
    timed = [_invocation(runtime, sink) for _ in range(passes)]
    seconds = statistics.median(t for t, _, _ in timed)
    return seconds, cold, timed[-1][1]


def _units(result: PassResult) -> tuple[PassResult, PassResult]:
    """The pass split into the targets' share and the collector's own pass-wide series."""
    empty = TargetResult(result.collector.target, [], [])
    return (
        PassResult(result.targets, 0.0, empty),
        PassResult([], 0.0, result.collector),
    )


def _metrics_requested(result: PassResult) -> int:
    for family in result.collector.families:
        if family.name == "middleware_cloudwatch_metrics_requested":
            return int(sum(s.value for s in family.samples))
    return 0


def _kind(servers: Mapping[str, Any], kind: str, copies: int, passes: int) -> dict[str, Any]:
    one_document, many_document = _documents(servers, copies)[kind]
    with contextlib.closing(_runtime(servers, f"{kind}-one", one_document)) as runtime:
        one_s, cold, result = _warm(runtime, passes)
    targets, own = _units(result)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        EmfSink("Bench/Cost").send(targets)
    emf_bytes = len(printed.getvalue().encode())
    with contextlib.closing(_runtime(servers, f"{kind}-many", many_document)) as runtime:
        many_s, many_result, _ = _warm(runtime, passes)
    return {
        "targets_up": sum(1 for t in result.targets if t.up),
        "series_per_target": count_series(targets),
        "emf_custom_metrics_per_target": count_custom_metrics(targets),
        "emf_custom_metrics_per_target_all": count_custom_metrics(targets, ("*",)),
        "emf_log_bytes_per_target": emf_bytes,
        "getmetricdata_metrics_per_target": _metrics_requested(cold),
        "collector_series_per_pass": count_series(own),
        "collector_emf_custom_metrics": count_custom_metrics(own),
        "warm_invocation_s_one": round(one_s, 4),
        "copies": copies,
        "copies_up": sum(1 for t in many_result.targets if t.up),
        "warm_invocation_s_copies": round(many_s, 4),
        "slope_s_per_target": round(max(0.0, (many_s - one_s) / max(copies - 1, 1)), 5),
    }


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """boto3 reads its endpoint and credentials from the process environment."""
    import os

    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure(quick: bool) -> dict[str, Any]:
    copies, passes = (3, 1) if quick else (20, 3)
    with _servers(quick) as servers, _environment(servers["aws"].env()):
        kinds = {kind: _kind(servers, kind, copies, passes) for kind in KINDS}
        setup = {
            "databases": dict(servers["databases"]),
            "statements_in_pg_stat_statements": servers["statements"],
            "docdb_cloudwatch_ids": "1 cluster, 2 instances",
        }
    return {
        "command": COMMAND + (" --quick" if quick else ""),
        "setup": setup,
        "memory_mb": int(template_default("MemorySize")),
        "kinds": kinds,
        "prices": prices(),
        "costs": costs(kinds, int(template_default("MemorySize")), prices()),
    }


# --- cost ----------------------------------------------------------------------------------


def costs(
    kinds: Mapping[str, Mapping[str, Any]], memory_mb: int, price: Mapping[str, Any]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per kind and fleet size: what a month costs on each sink, from the counted figures."""
    passes = MINUTES_PER_MONTH  # a pass every minute
    queries = SECONDS_PER_MONTH // CLOUDWATCH_INTERVAL_SECONDS
    out: dict[str, dict[str, dict[str, float]]] = {}
    for kind, k in kinds.items():
        out[kind] = {}
        for n in FLEETS:
            series = n * k["series_per_target"] + k["collector_series_per_pass"]
            metrics = n * k["emf_custom_metrics_per_target"] + k["collector_emf_custom_metrics"]
            metrics_all = (
                n * k["emf_custom_metrics_per_target_all"] + k["collector_emf_custom_metrics"]
            )
            log_gb = n * k["emf_log_bytes_per_target"] * passes / GB
            samples = series * passes
            seconds = k["warm_invocation_s_one"] + k["slope_s_per_target"] * (n - 1)
            billed = math.ceil(seconds * 1000) / 1000  # Lambda bills by the ms
            gb_seconds = passes * billed * memory_mb / 1024
            custom = price["cloudwatch_custom_metrics_per_month"]["tiers"]
            out[kind][str(n)] = {
                "series_per_pass": series,
                "emf_custom_metrics": metrics,
                "emf_usd": round(
                    tiered(metrics, custom) + log_gb * price["cloudwatch_logs_ingested_per_gb"],
                    2,
                ),
                "emf_all_custom_metrics": metrics_all,
                "emf_all_usd": round(
                    tiered(metrics_all, custom) + log_gb * price["cloudwatch_logs_ingested_per_gb"],
                    2,
                ),
                "emf_log_gb": round(log_gb, 3),
                "amp_samples": samples,
                "amp_usd": round(
                    tiered(samples, price["amp_samples_ingested"]["tiers"], per=10_000_000), 2
                ),
                "getmetricdata_usd": round(
                    n
                    * k["getmetricdata_metrics_per_target"]
                    * queries
                    * price["getmetricdata_per_1000_metrics"]
                    / 1000,
                    2,
                ),
                "invocation_s": round(seconds, 3),
                "lambda_usd": round(
                    gb_seconds * price["lambda_x86_per_gb_second"]
                    + passes * price["lambda_per_million_requests"] / 1_000_000,
                    2,
                ),
            }
    return out


# --- the report -----------------------------------------------------------------------------

GOAL_EMF_METRICS = 40  # SPEC 19: at most 40 custom metrics per PostgreSQL target by default
CHART_FLEET = "100"


SCENARIO = {
    "pg_typical": "PostgreSQL targets (typical server)",
    "pg_many": "PostgreSQL targets (many databases)",
    "docdb": "DocumentDB targets",
    "elasticache": "ElastiCache nodes",
}


def table_rows(figures: Mapping[str, Any]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for kind in KINDS:
        for n, c in figures["costs"][kind].items():
            rows.append(
                (
                    f"{int(n):,} {SCENARIO[kind]}",
                    c["series_per_pass"],
                    c["emf_custom_metrics"],
                    c["emf_usd"],
                    c["emf_all_usd"],
                    c["amp_usd"],
                    c["getmetricdata_usd"],
                    c["lambda_usd"],
                )
            )
    return rows


COLUMNS = (
    "fleet",
    "series per pass",
    "EMF custom metrics (default set)",
    "EMF, default set, per month ($)",
    "EMF, EMF_METRICS=*, per month ($)",
    "remote write to AMP, per month ($)",
    "GetMetricData, per month ($)",
    "Lambda, per month ($)",
)


def chart(figures: Mapping[str, Any]) -> str:
    """A bar chart (Mermaid, rendered where the report is read) of what 100 targets of each
    kind cost a month on each sink."""
    costs = figures["costs"]
    kinds = ", ".join(f'"{TITLES[k]}"' for k in KINDS)
    top = max(
        max(costs[k][CHART_FLEET][c] for c in ("emf_usd", "amp_usd", "emf_all_usd")) for k in KINDS
    )
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{CHART_FLEET} targets of a kind, $ a month: EMF default set, EMF_METRICS=*, '
        'remote write to AMP"',
        f"    x-axis [{kinds}]",
        f'    y-axis "USD per month" 0 --> {top * 1.1:.0f}',
    ]
    for column in ("emf_all_usd", "emf_usd", "amp_usd"):
        values = ", ".join(f"{costs[k][CHART_FLEET][column]:.2f}" for k in KINDS)
        lines.append(f"    bar [{values}]")
    lines.append("```")
    return "\n".join(lines)


def section(figures: Mapping[str, Any]) -> Section:
    """The report's section (bench/section.py), from the stored figures only."""
    price = figures["prices"]
    kinds = figures["kinds"]
    return Section(
        question="What does a fleet cost a month on each sink, at 1, 100 and 1,000 targets?",
        method=(
            "One target of each kind collected as the function does (warm passes after a cold "
            "one), its series counted from the last pass, its distinct EMF custom metrics "
            "(metric name x dimension values) from the lines the EMF sink makes, with the "
            "default set and with EMF_METRICS=*; the collector's pass-wide series once per pass; "
            "scaled to N targets. A pass every minute (43,200 a month); GetMetricData per "
            "CloudWatch metric per 60 s interval; Lambda at the measured warm invocation "
            "(collection and EMF lines; one target plus the per-target slope of "
            f"{kinds['pg_typical']['copies']} copies) x {figures['memory_mb']} MB. EMF adds "
            "its log lines at the CloudWatch Logs ingestion price. The Pushgateway has no "
            f"per-series bill. List prices: {price['region']}, read {price['read_on']} "
            "(bench/prices.json).\n\n" + chart(figures)
        ),
        command=str(figures["command"]),
        table=Table(COLUMNS, table_rows(figures)),
        goals=[
            Goal(
                f"EMF custom metrics of one {TITLES[kind]} target, default set "
                f"({figures['setup']['databases'][kind]} databases)",
                kinds[kind]["emf_custom_metrics_per_target"],
                GOAL_EMF_METRICS,
                "",
            )
            for kind in ("pg_typical", "pg_many")
        ],
        notes=[
            "Series per target: "
            + ", ".join(f"{TITLES[k]} {kinds[k]['series_per_target']}" for k in KINDS)
            + f"; the collector's own {kinds['pg_typical']['collector_series_per_pass']} per pass.",
            "The EMF default set keeps each target's per-database, per-table and statement "
            "series as log lines only: compare the two EMF columns (docs/cost.md).",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(measure(parser.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()
