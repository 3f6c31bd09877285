"""Remote write and the CloudWatch interval, measured.

1. **Cost of CloudWatch at 1-minute resolution**, for the reference fleet (22 metrics) and for
   200 targets of the same mix (731 metrics). The product's own CloudWatch batch runs a pass
   every simulated minute against CloudWatch data holding a datapoint for every minute (every
   5 minutes for Volume*): once with CLOUDWATCH_INTERVAL_SECONDS=60, once with 300 and its
   passes sent by remote write to a real Prometheus. The reference fleet's data is in moto;
   moto scans every stored point for every period of every query (some 10^8 comparisons per
   call at 731 metrics), so the 200-target run reads the same points from ``PointsClient``,
   an in-memory GetMetricData answering in moto's shape. What the run counts (metrics requested
   per pass, points that arrived at the receiver) is turned into a month at list prices:
   GetMetricData $0.01 per 1,000 metrics requested, Metric Streams $0.003 per 1,000 metric
   updates (one update per datapoint published).
2. **Sending a 200-target pass**: remote write (encode, snappy, send to Prometheus) against
   the Pushgateway push (201 PUTs) of the same pass, and what the encoder and compressor
   choices cost: the protobuf runtime against the hand-written encoder, cramjam against a
   pure-Python snappy compressor, in time and in size (installed, and the wheel's zip).

``python -m bench.remote_write`` prints the figures as JSON; ``measure(quick=True)`` is the
reference fleet over a few minutes (the smoke test).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.fleet import DocServerRef, PgServerRef, cloudwatch_declarations, scaled
from bench.section import Goal, Section, Table, quantity
from bench.section import number as count

PASSES_PER_MONTH = 30 * 24 * 60  # a pass every minute, 30-day month
MINUTES_PER_MONTH = PASSES_PER_MONTH
ROOT = Path(__file__).resolve().parents[1]
# List prices: bench/prices.json (one file for every cost section).
_PRICES = json.loads((ROOT / "bench" / "prices.json").read_text())
GETMETRICDATA_PER_1000_METRICS = float(_PRICES["getmetricdata_per_1000_metrics"])
METRIC_STREAMS_PER_1000_UPDATES = float(_PRICES["cloudwatch_metric_streams_per_1000_updates"])


# --- 1. CloudWatch cost --------------------------------------------------------------------


def _targets(spec: Any, batch: Any) -> list[Any]:
    """CloudWatch-only targets of the fleet: one per id, as the product makes them."""
    from middleware_monitoring.cloudwatch import declarations as d
    from middleware_monitoring.model import Target

    made = [
        *((p["name"], d.rds(p["rds_id"], "DBInstanceIdentifier")) for p in spec.postgres),
        *((f"docdb:{i}", d.docdb_instance(i)) for i in spec.docdb_instances),
        *((f"docdb-cluster:{i}", d.docdb_cluster(i)) for i in spec.docdb_clusters),
        *((f"elasticache:{i}", d.elasticache(i)) for i in spec.elasticache),
    ]
    return [Target(name, [batch.source(declared)]) for name, declared in made]


def _points(stats: list[Any], start: int, end: int) -> dict[Any, dict[int, float]]:
    """A datapoint per period of every statistic in [start, end)."""
    return {
        stat: {
            at: float((sum(map(ord, stat.describe())) + at) % 1000)
            for at in range(start // stat.period * stat.period, end, stat.period)
            if at >= start
        }
        for stat in stats
    }


class PointsClient:
    """GetMetricData over seeded points, answered like moto (one value per period bucket,
    newest first): only for the 200-target cost run, where moto is too slow to be used."""

    def __init__(self, points: dict[Any, dict[int, float]]) -> None:
        self._points = {
            (s.namespace, s.metric, s.dimensions): (s.period, p) for s, p in points.items()
        }
        self.calls = 0

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        import datetime as dt

        self.calls += 1
        start = int(request["StartTime"].timestamp())
        end = int(request["EndTime"].timestamp())
        results = []
        for query in request["MetricDataQueries"]:
            metric = query["MetricStat"]["Metric"]
            key = (
                metric["Namespace"],
                metric["MetricName"],
                tuple((d["Name"], d["Value"]) for d in metric["Dimensions"]),
            )
            _, points = self._points.get(key, (60, {}))
            found = sorted(((t, v) for t, v in points.items() if start <= t < end), reverse=True)
            results.append(
                {
                    "Id": query["Id"],
                    "Timestamps": [dt.datetime.fromtimestamp(t, dt.UTC) for t, _ in found],
                    "Values": [v for _, v in found],
                    "StatusCode": "Complete",
                }
            )
        return {"MetricDataResults": results}


def _requested(result: Any) -> float:
    return next(
        (
            f.samples[0].value
            for f in result.collector.families
            if f.name == "middleware_cloudwatch_metrics_requested"
        ),
        0.0,
    )


def _simulate(
    aws: Any,
    spec: Any,
    interval: int,
    minutes: int,
    send: Callable[[Any], None] | None,
    client: Any | None,
) -> dict[str, Any]:
    """A pass every simulated minute for ``minutes`` + 1 passes, the last one now."""
    from middleware_monitoring.cloudwatch import CloudWatchBatch
    from middleware_monitoring.config import load_settings
    from middleware_monitoring.runner import run_pass

    settings = load_settings(
        {
            **aws.env(),
            "AWS_MONGO_INSTANCE_INFO": '{"DBInstanceIdentifier": ["x"]}',
            "CLOUDWATCH_INTERVAL_SECONDS": str(interval),
        }
    )
    assert settings.cloudwatch is not None
    now = float(int(time.time()) // 60 * 60 + 1)
    clock = [now - 60 * minutes]
    factory = (lambda: client) if client is not None else None
    batch = CloudWatchBatch(settings.cloudwatch, clock=lambda: clock[0], client_factory=factory)
    targets = _targets(spec, batch)
    requested: list[float] = []
    for _ in range(minutes + 1):
        result = run_pass(
            targets,
            deadline=time.monotonic() + 60,
            max_workers=16,
            collector_instance="collector",
            prefetches=[batch],
        )
        requested.append(_requested(result))
        if send is not None:
            send(result)
        clock[0] += 60
    return {"declared": len(batch.stats), "requested": requested, "now": now}


def _delivered(prom: Any, job: str, since: int, until: int) -> int:
    """Samples the receiver holds for the job's CloudWatch series in [since, until)."""
    names = "pg_.*|mongo_.*|redis_.*"
    expr = f'{{job="{job}",__name__=~"{names}"}}[{(until - since) * 1000}ms]'
    return sum(len(series["values"]) for series in prom.query(expr, at=until - 0.001))


def _monthly(requested: list[float]) -> tuple[float, float]:
    """Metrics requested per pass and what a month of it costs. The first pass (a cold start
    asks for everything) is left out: the run's other passes are whole intervals."""
    per_pass = statistics.fmean(requested[1:])
    return per_pass, per_pass * PASSES_PER_MONTH / 1000 * GETMETRICDATA_PER_1000_METRICS


def cost(aws: Any, prom: Any, targets: int, minutes: int, in_moto: bool) -> dict[str, Any]:
    from middleware_monitoring.cloudwatch.fetch import window
    from middleware_monitoring.remote_write import RemoteWriteSink

    spec = scaled(
        targets,
        [PgServerRef("127.0.0.1", 5432, "u", "p")],
        DocServerRef({"connect": {"address": "127.0.0.1", "port": "27017"}}),
        aws.env(),
    )
    stats = list(dict.fromkeys(d.stat for d in cloudwatch_declarations(spec)))
    now = int(time.time()) // 60 * 60 + 1
    seeded_from = now - 60 * minutes - 1800
    points = _points(stats, seeded_from, now)
    client = None
    if in_moto:
        from tests.standins.cloudwatch import put

        aws.reset()
        put(
            aws.client("cloudwatch"),
            [(stat, float(at), value) for stat, by in points.items() for at, value in by.items()],
        )
    else:
        client = PointsClient(points)

    polling = _simulate(aws, spec, 60, minutes, None, client)
    job = f"bench-rw-{uuid.uuid4().hex[:6]}"
    settings_url = prom.remote_write_url
    from middleware_monitoring.config import load_settings

    clock_of_sink = [0.0]
    rw_settings = load_settings(
        {"METRICS_SINK": "remote_write", "REMOTE_WRITE_URL": settings_url}
    ).remote_write
    sink = RemoteWriteSink(rw_settings, job, clock=lambda: clock_of_sink[0] or time.time())
    sent_at: list[float] = []

    def send(result: Any) -> None:
        sent_at.append(time.time())
        sink.send(result, time.monotonic() + 30)

    backfill = _simulate(aws, spec, 300, minutes, send, client)
    first = window(
        backfill["now"] - 60 * minutes,
        lookback=900,
        end_delay=60,
        periods={s.period for s in stats},
    )
    last_end = window(backfill["now"], lookback=0, end_delay=60, periods={60}).end
    # Every datapoint the queries' windows covered, from the cold start's look-back to the
    # last query: what the receiver must hold.
    expected = sum(
        1
        for stat in stats
        for at in range(first.start // stat.period * stat.period, last_end, stat.period)
        if first.start <= at < last_end and at >= seeded_from
    )
    time.sleep(1)  # the receiver's head appends before the query sees them
    delivered = _delivered(prom, job, first.start, last_end)
    # Metric updates a month, as Metric Streams would count them: the points delivered over
    # whole 5-minute spans (every metric's period divides them), scaled to a month.
    span_start, span_end = -(-first.start // 300) * 300, last_end // 300 * 300
    in_spans = _delivered(prom, job, span_start, span_end)
    updates_per_month = in_spans / ((span_end - span_start) / 60) * MINUTES_PER_MONTH
    today = [float(polling["declared"])] * len(polling["requested"])
    today_pass, today_month = _monthly(today)
    poll_pass, poll_month = _monthly(polling["requested"])
    rw_pass, rw_month = _monthly(backfill["requested"])
    streams_month = updates_per_month / 1000 * METRIC_STREAMS_PER_1000_UPDATES
    return {
        "targets": targets,
        "cloudwatch": "moto" if in_moto else "PointsClient",
        "metrics": polling["declared"],
        "passes": len(polling["requested"]),
        "per_minute_before_this_change": {
            "metrics_per_pass": today_pass,
            "monthly_usd": round(today_month, 2),
        },
        "per_minute_now": {"metrics_per_pass": poll_pass, "monthly_usd": round(poll_month, 2)},
        "five_minute_remote_write": {
            "metrics_per_pass": rw_pass,
            "monthly_usd": round(rw_month, 2),
            "points_expected": expected,
            "points_delivered": delivered,
        },
        "metric_streams": {
            "updates_per_month": round(updates_per_month),
            "monthly_usd": round(streams_month, 2),
        },
        "cheaper_than_per_minute": round(today_month / rw_month, 2) if rw_month else math.inf,
        "cheaper_than_streams": round(streams_month / rw_month, 2) if rw_month else math.inf,
    }


# --- 2. Sending a pass ----------------------------------------------------------------------


def synthetic_pass(targets: int) -> Any:
    """A pass shaped like the reference mix at ``targets``: per PostgreSQL target its SQL
    series and a top 20 of statements (9 series each), per DocumentDB target its 16
    serverStatus series, per CloudWatch metric five 1-minute points (a 5-minute query), and
    every target's health series."""
    from prometheus_client.core import GaugeMetricFamily

    from middleware_monitoring.health import health_families
    from middleware_monitoring.model import PassResult, SourceOutcome, TargetResult

    now = float(int(time.time()) // 60 * 60)
    spec = scaled(
        targets,
        [PgServerRef("h", 5432, "u", "p")],
        DocServerRef({"connect": {"address": "h", "port": "1"}}),
        {},
    )
    by_target: dict[str, list[Any]] = {}
    for p in spec.postgres:
        families = [GaugeMetricFamily(n, n, value=1.0) for n in _PG_SERIES]
        for name in _STATEMENT_SERIES:
            family = GaugeMetricFamily(name, name, labels=["query", "queryid", "database", "user"])
            for q in range(20):
                family.add_metric([f"SELECT * FROM t{q} WHERE id = $1", str(q), "app", "u"], q)
            families.append(family)
        by_target[p["name"]] = families
    for doc in spec.docdb:
        by_target[doc["name"]] = [GaugeMetricFamily(n, n, value=2.0) for n in _DOC_SERIES]
    # An RDS instance's metrics go with its PostgreSQL target, as in the product.
    pg_of = {p["rds_id"]: p["name"] for p in spec.postgres}
    for declared in cloudwatch_declarations(spec):
        stat = declared.stat
        owner = next(v for _, v in stat.dimensions)
        family = GaugeMetricFamily(declared.output, declared.documentation, labels=["id"])
        for k in range(5):
            family.add_metric([owner], float(k), timestamp=now - 60 * (6 - k))
        by_target.setdefault(pg_of.get(owner, f"cw:{owner}"), []).append(family)
    results = [
        TargetResult(
            name,
            [*families, *health_families([SourceOutcome("x", True, 0.1)], {"x": now})],
            [SourceOutcome("x", True, 0.1)],
        )
        for name, families in by_target.items()
    ]
    collector = TargetResult("collector", [GaugeMetricFamily("p", "p", value=1.0)], [])
    return PassResult(results, 1.0, collector)


_PG_SERIES = (
    "pg_up",
    "pg_total_connections",
    "pg_active_connections",
    "pg_idle_connections",
    "pg_uptime_seconds",
    "pg_qps_all",
    "pg_qps_read",
    "pg_qps_write",
    "pg_wait_session_sec",
    "pg_wait_session_five_sec",
    "pg_in_recovery",
    "pg_max_connections",
)
_STATEMENT_SERIES = (
    "pg_query_calls",
    "pg_query_total_exec_time",
    "pg_query_min_exec_time",
    "pg_query_max_exec_time",
    "pg_query_mean_exec_time",
    "pg_query_blk_read_time",
    "pg_query_blk_write_time",
    "pg_query_rows",
    "pg_query_hit_percent",
)
_DOC_SERIES = tuple(f"mongo_s{i}" for i in range(16))


def snappy_compress_python(data: bytes) -> bytes:
    """A pure-Python snappy block compressor (greedy, 4-byte hash): what shipping without
    cramjam would mean. Bench only."""
    out = bytearray()
    n = len(data)
    value = n
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)

    def literal(chunk: bytes) -> None:
        size = len(chunk) - 1
        if size < 60:
            out.append(size << 2)
        else:
            count = (size.bit_length() + 7) // 8
            out.append((59 + count) << 2)
            out.extend(size.to_bytes(count, "little"))
        out.extend(chunk)

    table: dict[bytes, int] = {}
    i = start = 0
    while i + 4 <= n:
        key = data[i : i + 4]
        candidate = table.get(key)
        table[key] = i
        if candidate is None or i - candidate >= 65536:
            i += 1
            continue
        length = 4
        while i + length < n and length < 64 and data[candidate + length] == data[i + length]:
            length += 1
        if start < i:
            literal(data[start:i])
        offset = i - candidate
        out.append(((length - 1) << 2) | 2)
        out.extend(offset.to_bytes(2, "little"))
        i += length
        start = i
    if start < n:
        literal(data[start:])
    return bytes(out)


def _best(run: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def _import_ms(module: str, *, self_only: bool = False) -> float:
    """Cold import time of ``module`` in a fresh interpreter, median of 3 (-X importtime):
    with everything it imports, or (``self_only``) its own module's time alone."""
    runs = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
        )
        lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
        line = next(x for x in lines if x.split("|")[2].strip() == module)
        runs.append(int(line.split("|")[0 if self_only else 1].split(":")[-1]) / 1000)
    return statistics.median(runs)


def _installed_mb(package_dir: str) -> float:
    import importlib.util

    spec = importlib.util.find_spec(package_dir)
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20


def _wheel_mb(prefix: str) -> float | None:
    wheels = sorted((ROOT / ".wheelhouse").glob(f"{prefix}-*.whl"))
    if not wheels:
        wheels = sorted(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"**/{prefix}-*.whl"))
    return wheels[0].stat().st_size / 2**20 if wheels else None


def sending(gateway: Any, prom: Any, targets: int, repeat: int) -> dict[str, Any]:
    import cramjam

    from middleware_monitoring.config import PushgatewaySettings, load_settings
    from middleware_monitoring.remote_write import (
        RemoteWriteSink,
        compress,
        encode_write_request,
        pass_series,
    )
    from middleware_monitoring.sinks import PushgatewaySink
    from tests.standins.remote_write import WriteRequest

    result = synthetic_pass(targets)
    series = pass_series(result, "bench", time.time())
    samples = sum(len(s.points) for s in series)
    body = encode_write_request((s.labels, s.points) for s in series)

    def library_encode() -> bytes:
        request = WriteRequest()
        for s in series:
            ts = request.timeseries.add()
            for name, text in s.labels:
                ts.labels.add(name=name, value=text)
            for millis, number in s.points:
                ts.samples.add(value=number, timestamp=millis)
        serialised: bytes = request.SerializeToString()
        return serialised

    encode_s = _best(lambda: encode_write_request((s.labels, s.points) for s in series), repeat)
    library_s = _best(library_encode, repeat)
    compressed = compress(body)
    cramjam_s = _best(lambda: compress(body), repeat)
    python_compressed = snappy_compress_python(body)
    assert bytes(cramjam.snappy.decompress_raw(python_compressed)) == body
    python_s = _best(lambda: snappy_compress_python(body), 1)

    rw = load_settings({"METRICS_SINK": "remote_write", "REMOTE_WRITE_URL": prom.remote_write_url})
    job = f"bench-send-{uuid.uuid4().hex[:6]}"

    def remote_write_send() -> None:
        # A sink of its own each time: the timestamped points are new to it.
        RemoteWriteSink(rw.remote_write, job, clock=time.time).send(result, time.monotonic() + 60)

    gw = PushgatewaySink(PushgatewaySettings(gateway.url, job, None, None, 10.0, 0))

    def push() -> None:
        gw.send(result, time.monotonic() + 60)

    send_times = []
    for _ in range(repeat):
        started = time.perf_counter()
        remote_write_send()
        send_times.append(time.perf_counter() - started)
        job = f"bench-send-{uuid.uuid4().hex[:6]}"
    push_s = _best(push, repeat)
    return {
        "targets": targets,
        "groups": len(result.groups()),
        "series": len(series),
        "samples": samples,
        "protobuf_bytes": len(body),
        "snappy_bytes": len(compressed),
        "hand_encode_ms": round(encode_s * 1000, 1),
        "protobuf_library_encode_ms": round(library_s * 1000, 1),
        "cramjam_compress_ms": round(cramjam_s * 1000, 2),
        "python_snappy_compress_ms": round(python_s * 1000, 1),
        "python_snappy_bytes": len(python_compressed),
        "remote_write_send_ms": round(min(send_times) * 1000, 1),
        "pushgateway_push_ms": round(push_s * 1000, 1),
    }


def dependency_costs() -> dict[str, Any]:
    return {
        "cramjam_installed_mb": round(_installed_mb("cramjam"), 2),
        "cramjam_wheel_mb": round(_wheel_mb("cramjam") or 0.0, 2),
        "cramjam_import_ms": round(_import_ms("cramjam"), 1),
        "protobuf_installed_mb": round(_installed_mb("google.protobuf"), 2),
        "protobuf_import_ms": round(_import_ms("google.protobuf.message_factory"), 1),
        # The sink's own module (encoder included), without what the package imports anyway.
        "remote_write_module_import_ms": round(
            _import_ms("middleware_monitoring.remote_write", self_only=True), 1
        ),
    }


@contextlib.contextmanager
def _servers() -> Iterator[tuple[Any, Any, Any]]:
    import logging

    from tests.standins.aws import MotoServer
    from tests.standins.prometheus import Prometheus
    from tests.standins.pushgateway import Pushgateway

    # Quiet while measuring, and as it was afterwards: the smoke test runs in a pytest
    # process whose later tests read the package's warnings.
    package = logging.getLogger("middleware_monitoring")
    level = package.level
    package.setLevel(logging.ERROR)
    try:
        with (
            MotoServer() as aws,
            Prometheus(None, remote_write_receiver=True) as prom,
            Pushgateway() as gw,
        ):
            saved = {name: os.environ.get(name) for name in aws.env()}
            os.environ.update(aws.env())  # boto3's credential chain, as in Lambda
            try:
                yield aws, prom, gw
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
    finally:
        package.setLevel(level)


def measure(quick: bool) -> dict[str, Any]:
    with _servers() as (aws, prom, gateway):
        runs = [(6, 10, True)] if quick else [(6, 30, True), (200, 30, False)]
        return {
            "cost": [cost(aws, prom, n, minutes, moto) for n, minutes, moto in runs],
            "send": sending(gateway, prom, 6 if quick else 200, 1 if quick else 5),
            "dependencies": dependency_costs(),
            "command": "python -m bench.remote_write" + (" --quick" if quick else ""),
        }


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:]), indent=2))


# --- the report section (bench/section.py) -----------------------------------------------------


def _fleet_name(targets: int) -> str:
    return "reference fleet (6 targets)" if targets == 6 else f"{targets} targets, same mix"


def section(figures: Mapping[str, Any]) -> Section:
    """What CloudWatch at 1-minute resolution costs a month, every minute against every 5
    minutes by remote write, and whether every point still arrives."""
    rows = []
    goals = []
    for fleet in figures["cost"]:
        name = _fleet_name(int(fleet["targets"]))
        before = fleet["per_minute_before_this_change"]["monthly_usd"]
        rw = fleet["five_minute_remote_write"]
        rows.append(
            (
                name,
                fleet["metrics"],
                quantity(before, "$"),
                quantity(fleet["per_minute_now"]["monthly_usd"], "$"),
                quantity(rw["monthly_usd"], "$"),
                quantity(fleet["metric_streams"]["monthly_usd"], "$"),
                f"{count(rw['points_delivered'])} of {count(rw['points_expected'])}",
            )
        )
        # Every metric asked once in five passes instead of every pass: a fifth of the bill.
        goals.append(
            Goal(
                f"{name}: a month every 5 minutes by remote write, a fifth of every minute",
                rw["monthly_usd"],
                round(before / 5, 2),
                "$",
            )
        )
        goals.append(
            Goal(
                f"{name}: every 1-minute point delivered by remote write",
                rw["points_delivered"],
                rw["points_expected"],
                "",
                at_most=False,
            )
        )
    send = figures["send"]
    return Section(
        question="What does CloudWatch at 1-minute resolution cost a month, asked every "
        "minute or every 5 minutes by remote write?",
        method=(
            "The product's own CloudWatch batch runs a pass every simulated minute over data "
            "holding a point per minute (per 5 minutes for Volume*): once asking every minute, "
            "once every 5 minutes with its passes sent by remote write to a real Prometheus. "
            "Metrics requested per pass are counted and priced for a 30-day month at "
            "GetMetricData's $0.01 per 1,000 metrics; Metric Streams at $0.003 per 1,000 updates."
        ),
        command=str(figures["command"]),
        table=Table(
            (
                "fleet",
                "metrics",
                "every minute, all metrics ($/month)",
                "every minute, Volume* every 5 min ($/month)",
                "every 5 min, remote write ($/month)",
                "Metric Streams ($/month)",
                "points delivered",
            ),
            rows,
        ),
        goals=goals,
        notes=[
            f"Sending a {send['targets']}-target pass: remote write "
            f"{quantity(send['remote_write_send_ms'], 'ms')} against "
            f"{quantity(send['pushgateway_push_ms'] / 1000, 's')} for the Pushgateway's "
            f"{count(send['groups'])} PUTs; encoding by hand "
            f"{quantity(send['hand_encode_ms'], 'ms')} against the protobuf runtime's "
            f"{quantity(send['protobuf_library_encode_ms'], 'ms')}, cramjam "
            f"{quantity(send['cramjam_compress_ms'], 'ms')} against pure-Python snappy's "
            f"{quantity(send['python_snappy_compress_ms'], 'ms')}."
        ],
    )
