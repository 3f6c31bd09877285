"""One measured process of the benchmark: the bench starts it fresh for each run, so the
servers (moto and the DocumentDB stand-in are Python threads in the bench's process) never
share an interpreter with what is measured. Prints one JSON object on its last line.

    python -m bench.worker ours|baseline|handler SPEC_FILE [--passes N]

- ``ours``: the product's Runtime for the fleet, ``collect()`` N times (the first is cold).
- ``baseline``: ``bench/baseline_exporter.py``, ``scrape()`` N times.
- ``handler``: cold start: import the Lambda handler (functions/collector/app.py) and
  invoke it, then N-1 warm invocations, each with its push to the Pushgateway in the env.
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
from pathlib import Path
from typing import Any

APP_FILE = Path(__file__).resolve().parents[1] / "functions" / "collector" / "app.py"
API_CALLS: Counter[str] = Counter()


def count_aws_calls() -> None:
    """Count every AWS API operation this process makes, whoever makes it: botocore's
    Endpoint.make_request runs once per API call (retries happen inside it)."""
    from botocore.endpoint import Endpoint

    original = Endpoint.make_request

    def counted(self: Any, operation_model: Any, request_dict: Any) -> Any:
        API_CALLS[operation_model.name] += 1
        return original(self, operation_model, request_dict)

    Endpoint.make_request = counted  # type: ignore[method-assign]


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class FakeContext:
    function_name = "middleware-monitoring-bench"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def __init__(self, timeout: float = 50.0) -> None:
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def run_ours(spec: Any, passes: int) -> dict[str, Any]:
    from bench.fleet import build_runtime, close_runtime

    count_aws_calls()
    runtime = build_runtime(spec)
    durations: list[float] = []
    calls: list[dict[str, int]] = []
    up = down = series = 0
    try:
        for _ in range(passes):
            API_CALLS.clear()
            started = time.perf_counter()
            result = runtime.collect(50.0)
            durations.append(time.perf_counter() - started)
            calls.append(dict(API_CALLS))
            up = sum(1 for t in result.targets if t.up)
            down = len(result.targets) - up
            series = result.series_count()
            slowest: dict[str, float] = {}
            for target in result.targets:
                for outcome in target.outcomes:
                    slowest[outcome.source] = max(
                        slowest.get(outcome.source, 0.0), outcome.duration_seconds
                    )
            down_reasons = sorted(
                {f"{t.target}:{o.reason}" for t in result.targets for o in t.outcomes if not o.up}
            )
    finally:
        close_runtime(runtime)
    return {
        "durations": durations,
        "calls": calls,
        "targets": len(runtime.targets),
        "up": up,
        "down": down,
        "down_reasons": down_reasons[:10],
        "series": series,
        "slowest_source_s": slowest,
        "max_workers": runtime.settings.max_workers,
        "maxrss_mb": maxrss_mb(),
    }


def run_baseline(spec: Any, passes: int) -> dict[str, Any]:
    from bench.fleet import build_baseline

    count_aws_calls()
    exporter = build_baseline(spec)
    durations: list[float] = []
    calls: list[dict[str, int]] = []
    values: dict[str, float] = {}
    try:
        for _ in range(passes):
            API_CALLS.clear()
            result = exporter.scrape()
            durations.append(result.duration_seconds)
            calls.append(dict(API_CALLS))
            values = result.values
    finally:
        exporter.close()
    return {
        "durations": durations,
        "calls": calls,
        "targets": spec.targets,
        "series": len(values),
        "cloudwatch_values": {k: v for k, v in values.items() if k.startswith("AWS/")},
        "maxrss_mb": maxrss_mb(),
    }


def run_handler(env: dict[str, str], passes: int) -> dict[str, Any]:
    os.environ.update(env)
    before_import = time.perf_counter()
    spec = importlib.util.spec_from_file_location("app", APP_FILE)
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    imported = time.perf_counter()
    invocations: list[float] = []
    summaries: list[Any] = []
    rss_after_first = 0.0
    for _ in range(passes):
        started = time.perf_counter()
        summaries.append(app.lambda_handler({}, FakeContext()))
        invocations.append(time.perf_counter() - started)
        if not rss_after_first:
            rss_after_first = maxrss_mb()
    return {
        "import_s": imported - before_import,
        "invocations": invocations,
        "summary": summaries[-1],
        "first_summary": summaries[0],
        "maxrss_after_first_mb": rss_after_first,
        "maxrss_mb": maxrss_mb(),
        "loaded": sorted(
            m for m in ("boto3", "botocore", "pymongo", "pg8000", "kafka") if m in sys.modules
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("ours", "baseline", "handler"))
    parser.add_argument("spec", type=Path)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    text = args.spec.read_text()
    if args.mode == "handler":
        out = run_handler(json.loads(text), args.passes)
    else:
        from bench.fleet import FleetSpec

        spec = FleetSpec.loads(text)
        # boto3 finds credentials, region and endpoint in the process environment, as in
        # Lambda (the execution role's variables) and as the older exporter did.
        os.environ.update(spec.env)
        out = (run_ours if args.mode == "ours" else run_baseline)(spec, args.passes)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
