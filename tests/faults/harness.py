"""The function as Lambda runs it (``app.lambda_handler``, warm between invocations) and the
checks every fault test makes of one invocation: deadline kept, healthy targets' values at
the real Pushgateway, the broken part down with its reason, one log line per failure and no
secret anywhere, then recovery on the next pass."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from middleware_monitoring.logs import PACKAGE_LOGGER, setup_logging
from tests.helpers import PRODUCT_PREFIXES, close
from tests.standins.docdb import DOCDB_SERVER_STATUS
from tests.standins.pushgateway import META_METRICS, Pushgateway

if TYPE_CHECKING:  # conftest imports this module
    from tests.faults.conftest import Row
    from tests.faults.injectors import HttpFault

ROOT = Path(__file__).resolve().parents[2]
APP_PY = ROOT / "functions" / "collector" / "app.py"

SampleKey = tuple[str, frozenset[tuple[str, str]]]
Samples = dict[SampleKey, float]


def key(name: str, **labels: str) -> SampleKey:
    return name, frozenset(labels.items())


@dataclass
class FakeContext:
    """What lambda_handler and Powertools use of the Lambda context; the deadline is real:
    it counts down from when the invocation starts."""

    remaining_millis: int
    started: float = field(default_factory=time.monotonic)
    function_name: str = "middleware-monitoring"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:mm"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_millis - (time.monotonic() - self.started) * 1000)


@dataclass
class Pushed:
    """What the Pushgateway held for a job right after an invocation, by instance (the
    grouping labels ``job``, ``collector`` and ``shard`` left out of the samples' labels), and
    by group: (collector, shard) -> instance -> samples."""

    groups: dict[str, Samples]
    text: str
    by_group: dict[tuple[str, str], dict[str, Samples]] = field(default_factory=dict)

    def __call__(self, instance: str) -> Samples:
        return self.groups.get(instance, {})


def pushed(gw: Pushgateway, job: str) -> Pushed:
    """One read of the Pushgateway, split by instance (one read per instance would be
    quadratic with the load test's 200 groups)."""
    text = gw.metrics_text()
    groups: dict[str, Samples] = {}
    by_group: dict[tuple[str, str], dict[str, Samples]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if labels.pop("job", None) != job or sample.name in META_METRICS:
                continue
            instance = labels.pop("instance", "")
            group = (labels.pop("collector", ""), labels.pop("shard", ""))
            series = (sample.name, frozenset(labels.items()))
            groups.setdefault(instance, {})[series] = float(sample.value)
            by_group.setdefault(group, {}).setdefault(instance, {})[series] = float(sample.value)
    return Pushed(groups, text, by_group)


@dataclass
class Invocation:
    outcome: dict[str, Any] | None
    error: BaseException | None
    seconds: float
    deadline_seconds: float
    logs: list[dict[str, Any]]
    # Filled by LambdaFunction.invoke when it knows the Pushgateway and job.
    pushed: Pushed = field(default_factory=lambda: Pushed({}, ""))

    def problems(self) -> list[dict[str, Any]]:
        """Log lines at WARNING or above: what an operator's log filter shows."""
        return [line for line in self.logs if line.get("level") in ("WARNING", "ERROR", "CRITICAL")]


class LambdaFunction:
    """One function instance: app.py loaded fresh (its module globals are the warm state),
    the environment set as Lambda would set it, its JSON log lines captured."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        environ: Mapping[str, str],
        gateway: Pushgateway | None = None,
    ) -> None:
        self.gateway = gateway
        self.job = environ.get("PUSHGATEWAY_JOB", "")
        # Cleared before each function is made, so nothing leaks between tests.
        for name in list(os.environ):
            if name.startswith(PRODUCT_PREFIXES):
                monkeypatch.delenv(name)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        spec = importlib.util.spec_from_file_location(f"fault_app_{uuid.uuid4().hex}", APP_PY)
        assert spec is not None and spec.loader is not None
        self.module: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        self._buffer = io.StringIO()
        self._read_up_to = 0
        setup_logging(stream=self._buffer)

    def invoke_logs_since_last(self) -> list[dict[str, Any]]:
        """Lines written between invocations (e.g. by a worker an earlier pass left behind)."""
        text = self._buffer.getvalue()[self._read_up_to :]
        self._read_up_to += len(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def invoke(
        self, remaining_millis: int = 30_000, event: dict[str, Any] | None = None
    ) -> Invocation:
        context = FakeContext(remaining_millis)
        start = len(self._buffer.getvalue())
        outcome: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            outcome = self.module.lambda_handler(event or {}, context)
        except Exception as exc:
            error = exc
        # From when the platform's countdown started: what the deadline is measured against.
        seconds = time.monotonic() - context.started
        text = self._buffer.getvalue()[start:]
        self._read_up_to = start + len(text)
        logs = [json.loads(line) for line in text.splitlines() if line.strip()]
        inv = Invocation(outcome, error, seconds, remaining_millis / 1000, logs)
        if self.gateway is not None:
            inv.pushed = pushed(self.gateway, self.job)
        return inv

    def close(self) -> None:
        close(self.module._runtime)
        close(self.module._stream)


def restore_logging() -> None:
    package = logging.getLogger(PACKAGE_LOGGER)
    package.handlers = []
    package.propagate = True


# --- what healthy targets must have delivered -------------------------------------------

# The DocumentDB stand-in's serverStatus, as the collector must have pushed it.
DOCDB_EXACT: Samples = {
    key("mongo_up"): 1.0,
    key("mongo_version_info", version=str(DOCDB_SERVER_STATUS["version"])): 1.0,
    key("mongo_uptime_seconds"): 86423.0,
    key("mongo_current_connections"): 17.0,
    key("mongo_available_connections"): 4483.0,
    key("mongo_totalCreated_connections"): 2291.0,
    key("mongo_opcounters_insert"): 1201.0,
    key("mongo_opcounters_query"): 34587.0,
    key("mongo_opcounters_update"): 412.0,
    key("mongo_opcounters_delete"): 38.0,
    key("mongo_opcounters_getmore"): 96.0,
    key("mongo_opcounters_command"): 77810.0,
    key("mongo_document_deleted"): 71.0,
    key("mongo_document_inserted"): 1544.0,
    key("mongo_document_returned"): 128003.0,
    key("mongo_document_updated"): 509.0,
}
# What a reachable PostgreSQL with pg_stat_statements always yields (values vary).
PG_NAMES = frozenset(
    {
        "pg_up",
        "pg_total_connections",
        "pg_active_connections",
        "pg_idle_connections",
        "pg_wait_session_sec",
        "pg_wait_session_five_sec",
        "pg_uptime_seconds",
        "pg_database_size_bytes",
        "pg_query_calls",
        "pg_query_total_exec_time",
    }
)


@dataclass
class Expect:
    """One fault's expectation. ``broken``: (instance, source) -> reason. ``healthy``:
    instance -> (exact samples, names that must be present). ``secrets``: strings that must
    appear in no log line, error message or pushed series."""

    job: str
    broken: dict[tuple[str, str], str]
    healthy: dict[str, tuple[Samples, frozenset[str]]]
    secrets: tuple[str, ...] = ()
    # Pass-wide warning lines allowed besides the one per failure (e.g. a shared AWS call
    # failing once for several targets), by message.
    also_logged: tuple[str, ...] = ()


def health_of(samples: Samples) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    up = {
        dict(labels)["source"]: v
        for (name, labels), v in samples.items()
        if name == "middleware_collector_up"
    }
    failures = {
        (dict(labels)["source"], dict(labels)["reason"]): v
        for (name, labels), v in samples.items()
        if name == "middleware_collector_failure"
    }
    return up, failures


def observe(inv: Invocation, expect: Expect) -> str:
    """A one-line summary of what actually happened, for the matrix."""
    parts: list[str] = []
    for (instance, source), _ in expect.broken.items():
        up, failures = health_of(inv.pushed(instance))
        reasons = sorted(r for (s, r) in failures if s == source)
        state = "up" if up.get(source) == 1 else "down" if source in up else "absent"
        parts.append(f"{source}@{instance} {state} {','.join(reasons) or '-'}")
    sent = sum(
        1
        for instance, (exact, names) in expect.healthy.items()
        if _healthy_ok(inv.pushed(instance), exact, names)
    )
    parts.append(f"healthy sent {sent}/{len(expect.healthy)}")
    parts.append(f"{len(inv.problems())} log line(s)")
    parts.append(f"{inv.seconds:.1f}s of {inv.deadline_seconds:.0f}s")
    if inv.error is not None:
        parts.append(f"raised {type(inv.error).__name__}")
    return "; ".join(parts)


def _healthy_ok(samples: Samples, exact: Samples, names: frozenset[str]) -> bool:
    up, failures = health_of(samples)
    return (
        all(samples.get(k) == v for k, v in exact.items())
        and names <= {name for name, _ in samples}
        and bool(up)
        and all(v == 1 for v in up.values())
        and not failures
    )


def check_fault_pass(inv: Invocation, expect: Expect) -> None:
    """The five promises of a pass with a fault in it (the push itself working)."""
    assert inv.error is None, f"the invocation failed: {inv.error!r}"
    # 1. Within the deadline the platform gave the invocation (the deadline itself: the
    # time taken is a figure for the matrix, not a requirement).
    assert inv.seconds < inv.deadline_seconds
    # 2. Every healthy target's values reached the Pushgateway, exactly.
    for instance, (exact, names) in expect.healthy.items():
        samples = inv.pushed(instance)
        for sample_key, value in exact.items():
            assert samples.get(sample_key) == value, (instance, sample_key, samples.get(sample_key))
        assert names <= {name for name, _ in samples}, (instance, names - {n for n, _ in samples})
        up, failures = health_of(samples)
        assert up and all(v == 1 for v in up.values()), (instance, up)
        assert failures == {}, (instance, failures)
    # 3. The broken part is down, with its reason and nothing else.
    broken_instances = {instance for instance, _ in expect.broken}
    for instance in broken_instances:
        up, failures = health_of(inv.pushed(instance))
        want = {(s, r): 1.0 for (i, s), r in expect.broken.items() if i == instance}
        assert failures == want, (instance, failures)
        for source, _ in want:
            assert up[source] == 0, (instance, source, up)
    collector = inv.pushed("collector")
    assert collector[key("middleware_pass_targets", state="down")] == len(broken_instances)
    assert inv.outcome is not None
    assert sorted(inv.outcome["targets_down"]) == sorted(broken_instances)
    assert collector[key("middleware_pass_targets", state="up")] == inv.outcome["targets_up"]
    assert inv.outcome["targets_up"] >= len(expect.healthy)
    # 4. One clear log line per failure, naming target, source and reason.
    problems = inv.problems()
    down = [line for line in problems if line["message"] == "source down"]
    assert sorted((line["target"], line["source"], line["reason"]) for line in down) == (
        sorted((i, s, r) for (i, s), r in expect.broken.items())
    ), problems
    assert all(str(line.get("detail", "")).strip() for line in down), down
    others = [line["message"] for line in problems if line["message"] != "source down"]
    assert others == list(expect.also_logged), problems
    check_no_secret(inv, expect)


def check_no_secret(inv: Invocation, expect: Expect) -> None:
    text = json.dumps(inv.logs) + inv.pushed.text + (str(inv.error) if inv.error else "")
    for secret in expect.secrets:
        assert secret not in text


def check_recovered(inv: Invocation, expect: Expect) -> None:
    """The pass after the fault was removed: everything up, nothing logged, nothing raised."""
    assert inv.error is None, f"the invocation failed: {inv.error!r}"
    assert inv.seconds < inv.deadline_seconds
    assert inv.problems() == []
    for instance in {instance for instance, _ in expect.broken} | set(expect.healthy):
        up, failures = health_of(inv.pushed(instance))
        assert up and all(v == 1 for v in up.values()), (instance, up)
        assert failures == {}, (instance, failures)
    for instance, (exact, names) in expect.healthy.items():
        samples = inv.pushed(instance)
        assert all(samples.get(k) == v for k, v in exact.items()), instance
        assert names <= {name for name, _ in samples}, instance
    collector = inv.pushed("collector")
    assert collector[key("middleware_pass_targets", state="down")] == 0
    check_no_secret(inv, expect)


def counting_requests(
    fault: HttpFault, inject: Callable[[], None], heal: Callable[[], None]
) -> tuple[Callable[[], None], Callable[[], None], list[int]]:
    """``inject`` and ``heal`` that also count the requests ``fault`` received in between
    (the pass with the fault): the list gets that number when heal runs."""
    counted: list[int] = []
    before: list[int] = []

    def counting_inject() -> None:
        before.append(fault.requests)
        inject()

    def counting_heal() -> None:
        counted.append(fault.requests - before[-1])
        heal()

    return counting_inject, counting_heal, counted


def run_fault(
    row: Row,
    fn: LambdaFunction,
    want: Expect,
    inject: Callable[[], None],
    heal: Callable[[], None],
    *,
    back: Mapping[str, tuple[Samples, frozenset[str]]],
    settle: Callable[[Invocation, Expect], Expect] | None = None,
) -> Invocation:
    """Inject, one invocation, heal, one more: the common shape of the fault tests. The pass
    with the fault must meet ``want`` (``settle`` may first narrow it from what that pass
    did); the next must have everything up, ``want``'s healthy targets and ``back`` (the
    targets the fault had taken down, with what they must push again). Returns the pass with
    the fault, for checks of its own."""
    inject()
    try:
        failed = fn.invoke()
    finally:
        heal()
    if settle is not None:
        want = settle(failed, want)
    row.observed = observe(failed, want)
    recovered = fn.invoke()
    row.observed += "; next pass " + ("recovered" if not recovered.problems() else "still down")
    check_fault_pass(failed, want)
    check_recovered(recovered, Expect(want.job, {}, {**want.healthy, **back}, want.secrets))
    return failed
