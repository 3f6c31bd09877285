"""One measured process of the benchmark: the bench starts it fresh for each run, so the
servers (moto and the DocumentDB stand-in are Python threads in the bench's process) never
share an interpreter with what is measured. Prints one JSON object on its last line.

    python -m bench.worker ours|baseline|handler|floor|first-pass-floor SPEC_FILE [--passes N]
        [--no-sleep] [--source postgres|cloudwatch|mongo]

- ``ours``: the product's Runtime for the fleet, ``collect()`` N times (the first is cold).
- ``baseline``: ``bench/baseline_exporter.py``, ``scrape()`` N times (``--no-sleep``: without
  its ``pg_sleep(1)``).
- ``handler``: cold start: import the Lambda handler (functions/collector/app.py) and
  invoke it, then N-1 warm invocations, each with its push to the Pushgateway in the env.
  SPEC_FILE is the environment, or ``{"env": {...}, "count_at": [servers]}``: then the
  connections the product holds at each PostgreSQL server are counted in pg_stat_activity
  after the last invocation, while the function instance still holds them; and each warm
  pass's CPU, the worker's own and that of those servers' processes (from /proc).
- ``floor``: the fleet (one kind of source) collected by the product, each warm pass followed
  by the floor for the same work without the product: the SQL the product ran in that pass,
  replayed back to back over one connection (``postgres``); one GetMetricData call with the
  same queries (``cloudwatch``); one serverStatus (``mongo``).
- ``first-pass-floor``: the floor of a cold instance's first pass over a PostgreSQL fleet
  (SPEC_FILE as for ``handler``): a bare connect per target, and each server's server-wide
  statements once (``run_first_pass_floor``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

APP_FILE = Path(__file__).resolve().parents[1] / "functions" / "collector" / "app.py"
API_CALLS: Counter[str] = Counter()
CLIENTS: Counter[str] = Counter()


def count_aws_calls() -> None:
    """Count every AWS API operation this process makes, whoever makes it (botocore's
    Endpoint.make_request runs once per API call, retries happen inside it), and every
    botocore client created."""
    from botocore.endpoint import Endpoint
    from botocore.session import Session

    original = Endpoint.make_request
    original_client = Session.create_client

    def counted(self: Any, operation_model: Any, request_dict: Any) -> Any:
        API_CALLS[operation_model.name] += 1
        return original(self, operation_model, request_dict)

    def counted_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        CLIENTS[service_name] += 1
        return original_client(self, service_name, *args, **kwargs)

    Endpoint.make_request = counted  # type: ignore[method-assign]
    Session.create_client = counted_client  # type: ignore[method-assign]


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_cpu_seconds(postmasters: list[int]) -> float:
    """CPU the PostgreSQL servers have used so far: each postmaster's own and its reaped
    backends' (cutime, cstime), plus every live process whose parent it is."""
    ticks = os.sysconf("SC_CLK_TCK")

    def stat(pid: str) -> list[str]:
        with open(f"/proc/{pid}/stat") as f:
            # Fields after the command name, which may hold spaces: state is [0].
            return f.read().rsplit(")", 1)[1].split()

    total = 0
    for postmaster in postmasters:
        fields = stat(str(postmaster))
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    parents = {str(postmaster) for postmaster in postmasters}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = stat(entry)
        except OSError:  # exited while listed
            continue
        if fields[1] in parents:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class FakeContext:
    function_name = "middleware-monitoring-bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def __init__(self, timeout: float = 50.0) -> None:
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def cloudwatch_outputs() -> set[str]:
    from middleware_monitoring.cloudwatch import declarations as d

    catalogues = (
        d.RDS_INSTANCE_SERIES,
        d.DB_LOAD_SERIES,
        d.AURORA_CLUSTER_SERIES,
        d.DOCDB_INSTANCE_SERIES,
        d.DOCDB_CLUSTER_SERIES,
        d.ELASTICACHE_SERIES,
    )
    return {series.output for catalogue in catalogues for series in catalogue}


def exported_cloudwatch_values(result: Any, spec: Any) -> dict[str, float]:
    """The CloudWatch series a pass exported, keyed ``series/id`` like the baseline's
    (``CwMetric.key``): the id is the DocDB / ElastiCache label, or the RDS id of the target
    (RDS series carry no label: the target's group is the instance)."""
    outputs = cloudwatch_outputs()
    rds_of = {p["name"]: p["rds_id"] for p in spec.postgres if p.get("rds_id")}
    rds_of.update({rds_id: rds_id for rds_id in spec.rds_instances})
    values: dict[str, float] = {}
    for target in result.targets:
        for family in target.families:
            if family.name not in outputs:
                continue
            for sample in family.samples:
                ident = (
                    sample.labels.get("DocDB")
                    or sample.labels.get("ElastiCache")
                    or rds_of.get(target.target)
                )
                values[f"{family.name}/{ident}"] = sample.value
    return values


def measure_cpu(runtime: Any, postmasters: list[int], into: list[tuple[float, float]]) -> None:
    """Record, for each pass the runtime collects from now on, the process CPU time it took
    and the CPU the PostgreSQL servers used meanwhile (the push is left out)."""
    if getattr(runtime, "_bench_measured", False):
        return
    collect = runtime.collect

    def measured(*args: Any, **kwargs: Any) -> Any:
        servers_before = server_cpu_seconds(postmasters)
        cpu_before = time.process_time()
        result = collect(*args, **kwargs)
        into.append(
            (time.process_time() - cpu_before, server_cpu_seconds(postmasters) - servers_before)
        )
        return result

    runtime.collect = measured
    runtime._bench_measured = True


def measure_first_pass(postmasters: list[int], into: list[tuple[float, float]]) -> None:
    """Record the process CPU (and the servers') of the next pass of any Runtime: the first
    pass of the cold function instance, whose runtime does not exist yet."""
    from middleware_monitoring.runtime import Runtime

    collect = Runtime.collect

    def measured(self: Any, *args: Any, **kwargs: Any) -> Any:
        Runtime.collect = collect  # type: ignore[method-assign]
        servers_before = server_cpu_seconds(postmasters)
        cpu_before = time.process_time()
        result = collect(self, *args, **kwargs)
        into.append(
            (time.process_time() - cpu_before, server_cpu_seconds(postmasters) - servers_before)
        )
        return result

    Runtime.collect = measured  # type: ignore[method-assign]


def on_schedule(runtime: Any, index: int) -> None:
    """Pass ``index`` as the schedule would run it, a minute after the one before: the
    CloudWatch batches plan by that clock (each metric is asked at most once a minute), while
    the passes themselves run back to back."""
    runtime.builder.cloudwatch.clock = lambda: time.time() + 60 * index


def run_ours(spec: Any, passes: int) -> dict[str, Any]:
    from bench.fleet import build_runtime, close_runtime

    count_aws_calls()
    runtime = build_runtime(spec)
    durations: list[float] = []
    calls: list[dict[str, int]] = []
    clients: list[dict[str, int]] = []
    up = down = series = 0
    slowest: dict[str, float] = {}
    down_reasons: list[str] = []
    values: dict[str, float] = {}
    requested = 0.0
    try:
        for index in range(passes):
            API_CALLS.clear()
            CLIENTS.clear()
            on_schedule(runtime, index)
            started = time.perf_counter()
            result = runtime.collect(50.0)
            durations.append(time.perf_counter() - started)
            calls.append(dict(API_CALLS))
            clients.append(dict(CLIENTS))
            up = sum(1 for t in result.targets if t.up)
            down = len(result.targets) - up
            series = result.series_count()
            slowest = {}
            for target in result.targets:
                for outcome in target.outcomes:
                    slowest[outcome.source] = max(
                        slowest.get(outcome.source, 0.0), outcome.duration_seconds
                    )
            down_reasons = sorted(
                {f"{t.target}:{o.reason}" for t in result.targets for o in t.outcomes if not o.up}
            )
            values = exported_cloudwatch_values(result, spec)
            requested = sum(
                sample.value
                for family in result.collector.families
                if family.name == "middleware_cloudwatch_metrics_requested"
                for sample in family.samples
            )
    finally:
        close_runtime(runtime)
    return {
        "durations": durations,
        "calls": calls,
        "clients": clients,
        "targets": len(runtime.targets),
        "up": up,
        "down": down,
        "down_reasons": down_reasons[:10],
        "series": series,
        "slowest_source_s": slowest,
        "max_workers": runtime.settings.max_workers,
        "cloudwatch_values": values,
        "metrics_requested": requested,
        "maxrss_mb": maxrss_mb(),
    }


def run_baseline(spec: Any, passes: int, sleep: bool) -> dict[str, Any]:
    from bench.fleet import build_baseline

    count_aws_calls()
    exporter = build_baseline(spec, sleep=sleep)
    durations: list[float] = []
    calls: list[dict[str, int]] = []
    clients: list[dict[str, int]] = []
    values: dict[str, float] = {}
    first_not_newest = answered = 0
    try:
        for _ in range(passes):
            API_CALLS.clear()
            CLIENTS.clear()
            result = exporter.scrape()
            durations.append(result.duration_seconds)
            calls.append(dict(API_CALLS))
            clients.append(dict(CLIENTS))
            values = result.values
            first_not_newest, answered = result.first_not_newest, result.answered
    finally:
        exporter.close()
    return {
        "durations": durations,
        "calls": calls,
        "clients": clients,
        "targets": spec.targets,
        "series": len(values),
        "cloudwatch_values": {m.key: values[m.key] for m in exporter.cloudwatch if m.key in values},
        "first_not_newest": first_not_newest,
        "answered": answered,
        "maxrss_mb": maxrss_mb(),
    }


def count_connections(servers: list[dict[str, Any]]) -> list[dict[str, int]]:
    """Client connections at each server: the product's (its application_name) and all."""
    import pg8000.native

    from middleware_monitoring.postgres.connection import APPLICATION_NAME

    counted: list[dict[str, int]] = []
    for server in servers:
        conn = pg8000.native.Connection(
            user=server["user"],
            password=server["password"],
            host=server["host"],
            port=server["port"],
            database=server.get("database", "postgres"),
            timeout=30,
        )
        try:
            product, everyone = conn.run(
                "SELECT count(*) FILTER (WHERE application_name = :name), count(*) "
                "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()",
                name=APPLICATION_NAME,
            )[0]
        finally:
            conn.close()
        counted.append({"port": int(server["port"]), "product": product, "all": everyone})
    return counted


def run_handler(spec: dict[str, Any], passes: int) -> dict[str, Any]:
    env: dict[str, str] = spec.get("env", spec)
    os.environ.update(env)
    before_import = time.perf_counter()
    module_spec = importlib.util.spec_from_file_location("app", APP_FILE)
    assert module_spec is not None and module_spec.loader is not None
    app = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(app)
    imported = time.perf_counter()
    invocations: list[float] = []
    invocation_cpu: list[float] = []
    postmasters = [int(x["pid"]) for x in spec.get("count_at", []) if "pid" in x]
    pass_cpu: list[tuple[float, float]] = []
    first_pass_cpu: list[tuple[float, float]] = []
    summaries: list[Any] = []
    rss_after_first = 0.0
    for index in range(passes):
        if app._runtime is not None:
            on_schedule(app._runtime, index)
            measure_cpu(app._runtime, postmasters, pass_cpu)
        else:
            # The runtime is built inside the first invocation: its first pass is measured
            # on the class, for that one call.
            measure_first_pass(postmasters, first_pass_cpu)
        started = time.perf_counter()
        cpu_started = time.process_time()
        summaries.append(app.lambda_handler({}, FakeContext()))
        invocation_cpu.append(time.process_time() - cpu_started)
        invocations.append(time.perf_counter() - started)
        if not rss_after_first:
            rss_after_first = maxrss_mb()
    connections = count_connections(spec.get("count_at", []))
    return {
        "import_s": imported - before_import,
        "invocations": invocations,
        "pass_cpu_s": [own for own, _ in pass_cpu],
        # The cold function instance's first pass (the runtime built before it excluded), and
        # each whole invocation's process CPU: the pass, encoding the push body, the push.
        "first_pass_cpu_s": first_pass_cpu[0][0] if first_pass_cpu else None,
        "first_pass_servers_cpu_s": first_pass_cpu[0][1] if first_pass_cpu else None,
        "invocation_cpu_s": invocation_cpu,
        "series": [int(s["series"]) for s in summaries],
        "pass_servers_cpu_s": [servers for _, servers in pass_cpu],
        "pass_durations": [float(s["duration_seconds"]) for s in summaries],
        "summary": summaries[-1],
        "first_summary": summaries[0],
        "connections": connections,
        "maxrss_after_first_mb": rss_after_first,
        "maxrss_mb": maxrss_mb(),
        "loaded": sorted(
            m for m in ("boto3", "botocore", "pymongo", "pg8000", "kafka") if m in sys.modules
        ),
    }


# --- floors -------------------------------------------------------------------------------


def postgres_floor(spec: Any) -> tuple[Callable[[], None], Callable[[], None], Callable[[], int]]:
    """Record the SQL of each product pass (its connections' run, whoever calls it); the
    floor replays the last pass's statements, with their parameters, back to back over one
    connection opened beforehand. Returns (start recording, floor, statements replayed)."""
    from middleware_monitoring.postgres.connection import NativeConnection

    recorded: list[tuple[str, dict[str, Any]]] = []
    recording = [False]
    # The product's connections are NativeConnection (pg8000's, with its statements'
    # parameter conversion kept): recorded there, and replayed the same way.
    product_run = NativeConnection.run

    def run(self: Any, sql: str, stream: Any = None, types: Any = None, **params: Any) -> Any:
        if recording[0]:
            recorded.append((sql, dict(params)))
        return product_run(self, sql, stream=stream, types=types, **params)

    NativeConnection.run = run  # type: ignore[method-assign]
    target = spec.postgres[0]
    conn = NativeConnection(
        user=target["user"],
        password=target["password"],
        host=target["host"],
        port=target["port"],
        database=target["database"],
        timeout=30,
    )
    replay: list[tuple[str, dict[str, Any]]] = []

    def start() -> None:
        recorded.clear()
        recording[0] = True

    def floor() -> None:
        recording[0] = False
        replay[:] = list(recorded)
        for sql, params in replay:
            product_run(conn, sql, **params)

    return start, floor, lambda: len(replay)


# In a recorded list of statements: the cold-start QPS window, {"seconds": its length}.
QPS_WINDOW = "-- the QPS window"


def server_wide_statements(settings: Any) -> list[tuple[str, dict[str, Any]]]:
    """The statements a cold target carrying its server's series runs for them in its first
    pass (statements with their classification and texts, both QPS snapshots, activity,
    database sizes, health), in order, as the product issues them: recorded from a cold
    PostgresSource with its per-database reads left out (they are not server-wide); its QPS
    window between the two snapshots is recorded as a ``QPS_WINDOW`` entry with its
    seconds, not waited."""
    from middleware_monitoring.postgres.connection import PgConnection
    from middleware_monitoring.postgres.source import PostgresSource

    log: list[tuple[str, dict[str, Any]]] = []

    class Recording(PgConnection):
        def run(self, sql: str, **params: Any) -> list[list[Any]]:
            log.append((sql, params))
            return super().run(sql, **params)

    def window(seconds: float) -> None:
        log.append((QPS_WINDOW, {"seconds": seconds}))

    source = PostgresSource(settings, Recording(settings), sleep=window)
    source._per_database = lambda: iter(())  # type: ignore[method-assign]
    try:
        for _ in source.collect():
            pass
    finally:
        source.close()
    return log


def warm_statements(settings: Any) -> list[tuple[str, dict[str, Any]]]:
    """The statements a target runs on its connection in a warm pass (its second), in order,
    the liveness check included."""
    from middleware_monitoring.postgres.connection import ALIVE_SQL, PgConnection
    from middleware_monitoring.postgres.source import PostgresSource

    log: list[tuple[str, dict[str, Any]]] = []

    class Recording(PgConnection):
        def run(self, sql: str, **params: Any) -> list[list[Any]]:
            log.append((sql, params))
            return super().run(sql, **params)

        def ensure_alive(self) -> None:
            if self.is_open:
                log.append((ALIVE_SQL, {}))
            super().ensure_alive()

    source = PostgresSource(settings, Recording(settings), sleep=lambda _: None)
    try:
        for _ in source.collect():
            pass
        log.clear()
        for _ in source.collect():
            pass
    finally:
        source.close()
    return log


def run_first_pass_floor(spec: dict[str, Any], passes: int) -> dict[str, Any]:
    """The floor of a cold function instance's first pass over a fleet of PostgreSQL targets
    (SPEC_FILE: the handler's, its env naming a TARGETS_FILE): one bare pg8000 connect per
    target (the target's own login, database and TLS as its sslmode negotiates it), and on
    the connection of each server's carrier (the target first by name) that server's
    server-wide statements, recorded beforehand, back to back but for the QPS window between
    the two snapshots, which a cold rate needs (PG_QPS_SAMPLE_SECONDS). The targets run in a
    pool of COLLECTOR_MAX_WORKERS threads, as the product runs them, but the carriers each
    on a thread of their own, so no window holds a pool thread (nor does the product's);
    the pools are made before the clock starts. ``passes`` floors, each with fresh connects.
    Then the CPU floor of a warm pass: each target's statements of a warm pass, recorded
    from its own source, over open connections in the pool (the process's CPU time)."""
    from concurrent.futures import ThreadPoolExecutor

    import pg8000.native

    from middleware_monitoring.config import PostgresSettings
    from middleware_monitoring.postgres.connection import open_socket, ssl_context_for
    from middleware_monitoring.runtime import Runtime

    env: dict[str, str] = spec.get("env", spec)
    os.environ.update(env)
    runtime = Runtime.from_environ(env)
    try:
        targets = [t for t in runtime.specs()[0] if isinstance(t, PostgresSettings)]
        workers = runtime.settings.max_workers
    finally:
        runtime.close()
    recorded = {t.target_name: server_wide_statements(t) for t in targets if t.server_wide}

    def connect(settings: PostgresSettings) -> pg8000.native.Connection:
        timeout = settings.connect_timeout_seconds + settings.statement_timeout_ms / 1000
        sock = open_socket(
            settings.host,
            settings.port,
            timeout,
            ssl_context_for(settings),
            required=settings.sslmode != "prefer",
        )
        return pg8000.native.Connection(
            user=settings.user,
            password=settings.password or None,
            host=settings.host,
            port=settings.port,
            database=settings.database,
            sock=sock,
            ssl_context=False,
            timeout=timeout,
        )

    def replay(
        conn: pg8000.native.Connection, statements: list[tuple[str, dict[str, Any]]]
    ) -> pg8000.native.Connection:
        for sql, params in statements:
            if sql == QPS_WINDOW:
                time.sleep(params["seconds"])
            else:
                conn.run(sql, **params)
        return conn

    def target(settings: PostgresSettings) -> pg8000.native.Connection:
        return replay(connect(settings), recorded.get(settings.target_name, []))

    floors: list[float] = []
    warm_cpu: list[float] = []
    carriers = [t for t in targets if t.target_name in recorded]
    others = [t for t in targets if t.target_name not in recorded]
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        ThreadPoolExecutor(max_workers=max(1, len(carriers))) as own_threads,
    ):
        for _ in range(passes):
            started = time.perf_counter()
            futures = [own_threads.submit(target, t) for t in carriers]
            futures += [pool.submit(target, t) for t in others]
            connections = [future.result() for future in futures]
            floors.append(time.perf_counter() - started)
            for conn in connections:
                conn.close()
        # The CPU floor of a warm pass: each target's warm statements over an open
        # connection, in the same pool, the process's CPU.
        warm = list(pool.map(warm_statements, targets))
        connections = list(pool.map(connect, targets))
        try:
            for _ in range(passes):
                cpu_before = time.process_time()
                list(pool.map(replay, connections, warm))
                warm_cpu.append(time.process_time() - cpu_before)
        finally:
            for conn in connections:
                conn.close()
    return {
        "floor": floors,
        "warm_floor_cpu_s": warm_cpu,
        "warm_statements": sum(len(log) for log in warm),
        "connects": len(targets),
        "servers": len(recorded),
        "server_wide_statements": sum(
            sql != QPS_WINDOW for log in recorded.values() for sql, _ in log
        ),
        "qps_windows_s": [
            params["seconds"]
            for log in recorded.values()
            for sql, params in log
            if sql == QPS_WINDOW
        ],
        "workers": workers,
    }


def cloudwatch_floor(runtime: Any) -> tuple[Callable[[], None], Callable[[], int]]:
    """One GetMetricData call (per 500 queries) for the queries of the pass, on a client made
    like the product's and already used once (connection open)."""
    import datetime as dt

    from middleware_monitoring.cloudwatch.client import make_client
    from middleware_monitoring.cloudwatch.fetch import plan, queries, window
    from middleware_monitoring.cloudwatch.source import CloudWatchSource

    settings = runtime.settings.cloudwatch
    stats = [
        declaration.stat
        for target in runtime.targets
        for source in target.sources
        if isinstance(source, CloudWatchSource)
        for declaration in source.declarations
    ]
    client = make_client(settings)
    chunks = plan(stats)

    def floor() -> None:
        span = window(
            time.time(),
            lookback=settings.lookback_seconds,
            end_delay=settings.end_delay_seconds,
            periods={s.period for s in stats},
        )
        for chunk in chunks:
            client.get_metric_data(
                MetricDataQueries=queries(chunk),
                StartTime=dt.datetime.fromtimestamp(span.start, dt.UTC),
                EndTime=dt.datetime.fromtimestamp(span.end, dt.UTC),
                ScanBy="TimestampDescending",
            )

    floor()  # the client's first call opens its connection
    return floor, lambda: len(chunks)


def mongo_floor(runtime: Any) -> Callable[[], None]:
    """One serverStatus on a client made like the product's, already connected."""
    from middleware_monitoring.docdb.client import new_client

    settings = next(
        spec for spec in runtime.settings.targets if type(spec).__name__ == "DocDBSettings"
    )
    client = new_client(settings)

    def floor() -> None:
        client.admin.command("serverStatus")

    floor()
    return floor


def run_floor(spec: Any, passes: int, source: str) -> dict[str, Any]:
    from bench.fleet import build_runtime, close_runtime

    runtime = build_runtime(spec)
    product: list[float] = []
    floors: list[float] = []
    calls = 0
    try:
        start_recording: Callable[[], None] = lambda: None  # noqa: E731
        if source == "postgres":
            start_recording, floor, calls_of = postgres_floor(spec)
        runtime.collect(50.0)  # cold: connects, classification, the QPS window
        if source == "cloudwatch":
            floor, calls_of = cloudwatch_floor(runtime)
        elif source == "mongo":
            floor = mongo_floor(runtime)
            calls_of = lambda: 1  # noqa: E731
        for index in range(1, passes + 1):
            start_recording()
            on_schedule(runtime, index)
            started = time.perf_counter()
            result = runtime.collect(50.0)
            product.append(time.perf_counter() - started)
            down = [
                f"{t.target}: "
                + "; ".join(f"{o.reason} {o.detail}" for o in t.outcomes if not o.up)
                for t in result.targets
                if not t.up
            ]
            if down:
                raise RuntimeError(f"targets down during the floor run: {down}")
            started = time.perf_counter()
            floor()
            floors.append(time.perf_counter() - started)
            calls = calls_of()
    finally:
        close_runtime(runtime)
    return {"product": product, "floor": floors, "floor_calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "mode", choices=("ours", "baseline", "handler", "floor", "first-pass-floor")
    )
    parser.add_argument("spec", type=Path)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--no-sleep", action="store_true")
    parser.add_argument("--source", choices=("postgres", "cloudwatch", "mongo"))
    args = parser.parse_args()
    text = args.spec.read_text()
    if args.mode == "handler":
        out = run_handler(json.loads(text), args.passes)
    elif args.mode == "first-pass-floor":
        out = run_first_pass_floor(json.loads(text), args.passes)
    else:
        from bench.fleet import FleetSpec

        spec = FleetSpec.loads(text)
        # boto3 finds credentials, region and endpoint in the process environment, as in
        # Lambda (the execution role's variables) and as the older exporter did.
        os.environ.update(spec.env)
        if args.mode == "ours":
            out = run_ours(spec, args.passes)
        elif args.mode == "baseline":
            out = run_baseline(spec, args.passes, sleep=not args.no_sleep)
        else:
            out = run_floor(spec, args.passes, args.source or "postgres")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
