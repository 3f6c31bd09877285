"""`make demo`: one real collection pass, no AWS account needed.

Starts a local PostgreSQL with pg_stat_statements and a small workload, a DocumentDB
stand-in (MongoDB wire protocol, TLS with a CA made for the demo, SCRAM login), a local AWS
stand-in (moto) holding CloudWatch data for a small fleet, and a local Pushgateway; runs
the real Lambda handler twice (the second pass is warm, so QPS comes from the rate between
the two); prints what the Pushgateway now holds; stops everything it started, also on
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType

from prometheus_client.parser import text_string_to_metric_families

from tests.standins.aws import MotoServer
from tests.standins.cloudwatch import Fleet, fleet_env, seed_cloudwatch
from tests.standins.docdb import start_demo_docdb
from tests.standins.postgres import PostgresServer
from tests.standins.pushgateway import Pushgateway

JOB = "demo"
MONITOR_USER, MONITOR_PASSWORD = "monitor", "demo-monitor-pw"
APP_USER, APP_PASSWORD = "app", "demo-app-pw"
APP_FILE = Path(__file__).resolve().parents[2] / "functions" / "collector" / "app.py"
# Shown per statement in the summary table; the rest of pg_query_* is in the Pushgateway.
STATEMENT_COLUMNS = ("pg_query_calls", "pg_query_mean_exec_time", "pg_query_rows")


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda context object the handler and Powertools read."""

    function_name: str = "middleware-monitoring-demo"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:demo"
    aws_request_id: str = "demo"
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def _load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("app", APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _workload(server: PostgresServer, stop: threading.Event) -> None:
    """A steady mix of reads and writes, so QPS and the statement table have something."""
    connection = server.connect(user=APP_USER, password=APP_PASSWORD, database="shop")
    try:
        while not stop.is_set():
            connection.run("INSERT INTO orders (amount) VALUES (:a)", a=42)
            connection.run("SELECT count(*), sum(amount) FROM orders")
            connection.run("SELECT * FROM orders WHERE id = :id", id=1)
            stop.wait(0.02)
    finally:
        connection.close()


def _prepare(server: PostgresServer) -> None:
    server.create_role(MONITOR_USER, MONITOR_PASSWORD, monitor=True)
    server.create_role(APP_USER, APP_PASSWORD, monitor=False)
    server.create_database("shop", owner=APP_USER)
    server.create_extension(database="postgres")
    shop = server.connect(user=APP_USER, password=APP_PASSWORD, database="shop")
    try:
        shop.run("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, amount int)")
    finally:
        shop.close()


def _print_gateway(gateway: Pushgateway) -> None:
    by_instance: dict[str, list[str]] = defaultdict(list)
    statements: dict[str, dict[str, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(gateway.metrics_text()):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.pop("job", None) != JOB:
                continue
            instance = labels.pop("instance", "")
            if "query" in labels:
                if sample.name in STATEMENT_COLUMNS:
                    statements[labels["query"]][sample.name] = sample.value
                continue
            shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            by_instance[instance].append(
                f"  {sample.name}{{{shown}}}".replace("{}", "").ljust(78) + f" {sample.value:g}"
            )
    for instance, lines in sorted(by_instance.items()):
        print(f"\n== Pushgateway group job={JOB} instance={instance}")
        print("\n".join(sorted(lines)))
    if statements:
        print("\n== Top statements (pg_query_*; every pg_query_* series is in the Pushgateway)")
        print(f"  {'calls':>8} {'mean ms':>9} {'rows':>8}  query")
        ranked = sorted(statements.items(), key=lambda item: -item[1].get("pg_query_calls", 0))
        for query, values in ranked[:10]:
            calls, mean, rows = (values.get(name, 0.0) for name in STATEMENT_COLUMNS)
            print(f"  {calls:>8g} {mean:>9.3f} {rows:>8g}  {query[:70]}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    stop = threading.Event()
    with _sigterm_as_interrupt(), contextlib.ExitStack() as started:
        print("starting PostgreSQL 15, a DocumentDB stand-in, a local AWS and a Pushgateway ...")
        server = started.enter_context(PostgresServer(15))
        gateway = started.enter_context(Pushgateway())
        aws = started.enter_context(MotoServer())
        fleet = Fleet()
        seed_cloudwatch(aws.endpoint_url, fleet)
        workdir = Path(started.enter_context(tempfile.TemporaryDirectory(prefix="demo-")))
        docdb, mongo_info = start_demo_docdb(workdir)
        started.callback(docdb.stop)
        _prepare(server)
        worker = threading.Thread(target=_workload, args=(server, stop), daemon=True)
        worker.start()
        started.callback(worker.join, 5)
        started.callback(stop.set)

        environ = {
            **server.collector_env(user=MONITOR_USER, password=MONITOR_PASSWORD),
            **aws.env(),
            **fleet_env(fleet),
            "MONGO_INFO": json.dumps({**json.loads(mongo_info), "name": "demo-docdb"}),
            "PG_TARGET_NAME": "demo-postgres",
            "PUSHGATEWAY_URL": gateway.url,
            "PUSHGATEWAY_JOB": JOB,
            "POWERTOOLS_SERVICE_NAME": "middleware-monitoring",
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(environ)  # this process exists for the demo only
        app = _load_app()
        for number in (1, 2):
            summary = app.lambda_handler({}, FakeLambdaContext())
            print(f"pass {number}: {summary}")
            if number == 1:
                time.sleep(2)
        _print_gateway(gateway)
        print(f"\nPushgateway was at {gateway.url}; everything started is being stopped.")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
