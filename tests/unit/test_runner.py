"""The pass runner: one failing or stuck source never costs the others, a stuck target is
not started again while its worker is still busy, and every down target says why."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from middleware_monitoring.logs import scrubber
from middleware_monitoring.model import Later, PassResult, SourceFailure, Target, in_place
from middleware_monitoring.runner import run_pass


class Steady:
    name = "steady"

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("steady_value", "A value that is always there.", value=42)


class Failing:
    name = "failing"

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("failing_up", "Yielded before the failure.", value=0)
        raise SourceFailure("unreachable", "connection refused")


class Stuck:
    """Blocks until released, like a server that accepted the connection and went silent."""

    name = "stuck"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def collect(self) -> Iterator[Metric]:
        self.calls += 1
        self.release.wait(10)
        yield GaugeMetricFamily("stuck_value", "Arrives once released.", value=1)


def run(targets: list[Target], budget: float = 5.0) -> PassResult:
    return run_pass(
        targets, deadline=time.monotonic() + budget, max_workers=4, collector_instance="collector"
    )


def samples(
    result: PassResult, target: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    (group,) = [group for group in result.groups() if group.target == target]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in group.families
        for s in family.samples
        if not s.name.endswith(("_duration_seconds", "_timestamp_seconds"))
    }


def test_a_failing_source_keeps_its_values_and_costs_no_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    result = run([Target("a", [Failing(), Steady()])])
    assert samples(result, "a") == {
        ("failing_up", ()): 0.0,
        ("steady_value", ()): 42.0,
        ("middleware_collector_up", (("source", "failing"),)): 0.0,
        ("middleware_collector_up", (("source", "steady"),)): 1.0,
        ("middleware_collector_failure", (("reason", "unreachable"), ("source", "failing"))): 1.0,
    }
    assert [(r.message, r.reason, r.detail) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("source down", "unreachable", "connection refused")
    ]


def test_a_stuck_target_is_not_started_again_until_its_worker_is_free(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    stuck = Stuck()
    targets = [Target("stuck", [stuck]), Target("healthy", [Steady()])]
    try:
        first = run(targets, budget=0.3)
        second = run(targets, budget=0.3)
        assert stuck.calls == 1
        for result, reason in ((first, "deadline"), (second, "busy")):
            assert samples(result, "stuck") == {
                ("middleware_collector_up", (("source", "stuck"),)): 0.0,
                ("middleware_collector_failure", (("reason", reason), ("source", "stuck"))): 1.0,
            }
            assert samples(result, "healthy")[("steady_value", ())] == 42.0
        assert [r.reason for r in caplog.records] == ["deadline", "busy"]  # type: ignore[attr-defined]
    finally:
        stuck.release.set()
    # Once the worker is free the target is collected again, by a new call.
    targets[0].in_flight["stuck"].result(timeout=5)
    third = run(targets)
    assert stuck.calls == 2
    assert samples(third, "stuck")[("stuck_value", ())] == 1.0
    assert samples(third, "collector")[("middleware_pass_targets", (("state", "up"),))] == 2.0


class Buggy:
    name = "buggy"

    def collect(self) -> Iterator[Metric]:
        raise KeyError("opcounters")
        yield  # a generator, like every source


def test_an_unforeseen_error_is_one_line_with_its_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The record as the runner makes it. The scrubber is process-wide: with a secret an
    # earlier test of this worker registered, the package's handler would turn the traceback
    # into text in place (test_logs covers that) before caplog reads the record.
    monkeypatch.setattr(scrubber, "_secrets", frozenset())
    monkeypatch.setattr(scrubber, "_short", None)
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    result = run([Target("a", [Buggy(), Steady()])])
    assert samples(result, "a")[("steady_value", ())] == 42.0
    (record,) = caplog.records
    assert (record.message, record.reason, record.detail) == (  # type: ignore[attr-defined]
        "source down",
        "error",
        "KeyError: 'opcounters'",
    )
    assert record.exc_info is not None and record.exc_info[0] is KeyError


class StuckWithUp(Stuck):
    """A stuck source with a series it always sends, like pg_up."""

    def down_families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("stuck_up", "1 if it answered.", value=0)


def value_of(result: PassResult, target: str, name: str) -> float:
    (group,) = [group for group in result.groups() if group.target == target]
    (sample,) = [s for family in group.families for s in family.samples if s.name == name]
    return sample.value


def test_a_target_given_up_on_sends_its_always_series_and_its_success_time_stays() -> None:
    stuck = StuckWithUp()
    target = Target("stuck", [stuck])
    stuck.release.set()
    run([target])
    delivered_at = target.last_success["stuck"]
    stuck.release.clear()
    try:
        late = run([target], budget=0.3)
        assert samples(late, "stuck") == {
            ("stuck_up", ()): 0.0,
            ("middleware_collector_up", (("source", "stuck"),)): 0.0,
            ("middleware_collector_failure", (("reason", "deadline"), ("source", "stuck"))): 1.0,
        }
        # The pass waited until its deadline for it: that is the source's duration.
        assert value_of(late, "stuck", "middleware_collector_duration_seconds") >= 0.3
        last = "middleware_collector_last_success_timestamp_seconds"
        assert value_of(late, "stuck", last) == delivered_at
    finally:
        stuck.release.set()
    target.in_flight["stuck"].result(timeout=5)
    # The late worker did succeed, but nothing of it was delivered: staleness must show.
    assert target.last_success["stuck"] == delivered_at


def test_collection_budget_keeps_the_push_reserve_or_half(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from middleware_monitoring.runtime import collection_budget

    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    assert collection_budget(50.0, 16.5) == 33.5
    assert caplog.records == []
    # A 10 s function with the default push reserve (16.5 s) would collect nothing at all.
    assert collection_budget(10.0, 16.5) == 5.0
    (record,) = caplog.records
    assert record.message == "push reserve too large for the function timeout"


class Passive:
    """Reads what a prefetch fetched (like CloudWatch): no worker of its own."""

    name = "passive"
    passive = True

    def __init__(self) -> None:
        self.threads: list[str] = []

    def collect(self) -> Iterator[Metric]:
        self.threads.append(threading.current_thread().name)
        yield GaugeMetricFamily("passive_value", "Read from the prefetch.", value=7)


def test_a_stuck_source_never_hides_the_same_targets_other_sources() -> None:
    stuck, passive = StuckWithUp(), Passive()
    target = Target("db", [stuck, passive, Steady()])
    try:
        for reason in ("deadline", "busy"):
            result = run([target], budget=0.3)
            assert samples(result, "db") == {
                ("stuck_up", ()): 0.0,
                ("passive_value", ()): 7.0,
                ("steady_value", ()): 42.0,
                ("middleware_collector_up", (("source", "stuck"),)): 0.0,
                ("middleware_collector_up", (("source", "passive"),)): 1.0,
                ("middleware_collector_up", (("source", "steady"),)): 1.0,
                ("middleware_collector_failure", (("reason", reason), ("source", "stuck"))): 1.0,
            }
        # Passive sources are read off the workers (the pass's reader thread: this one
        # says nothing of when it is ready, so it may wait for a prefetch).
        assert passive.threads == ["passive"] * 2
    finally:
        stuck.release.set()
    target.in_flight["stuck"].result(timeout=5)


class Fetching:
    """A prefetch still running when the pass reads its sources; it finishes once
    ``finish`` is set (by a source that is ready at once, below)."""

    name = "fetching"

    def __init__(self) -> None:
        self.finish = threading.Event()

    def start(self, deadline: float) -> None:
        pass

    def families(self) -> Iterator[Metric]:
        return iter(())


class WaitsForFetch:
    """A passive source that waits for the prefetch (CloudWatch's), at most ``wait`` s."""

    name = "waits"
    passive = True

    def __init__(self, fetch: Fetching, read: list[str], wait: float = 2.0) -> None:
        self.fetch = fetch
        self.read = read
        self.wait = wait

    def ready(self) -> bool:
        return self.fetch.finish.is_set()

    def collect(self) -> Iterator[Metric]:
        if not self.fetch.finish.wait(self.wait):
            raise SourceFailure("deadline", "the prefetch did not finish")
        self.read.append(self.name)
        yield GaugeMetricFamily("waits_value", "Read once the prefetch is done.", value=1)


class ReadAtOnce:
    """A passive source that never waits (the discovery inventory); reading it is what lets
    the prefetch finish here, so it must be read before the sources that wait."""

    name = "at_once"
    passive = True

    def __init__(self, fetch: Fetching, read: list[str]) -> None:
        self.fetch = fetch
        self.read = read

    def ready(self) -> bool:
        return True

    def collect(self) -> Iterator[Metric]:
        self.read.append(self.name)
        self.fetch.finish.set()
        yield GaugeMetricFamily("at_once_value", "Read at once.", value=2)


class BrokenReady(Passive):
    def ready(self) -> bool:
        raise RuntimeError("a bug in ready()")


def test_a_passive_source_whose_ready_fails_is_still_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="middleware_monitoring")
    result = run([Target("db", [BrokenReady(), Steady()])])
    assert samples(result, "db") == {
        ("passive_value", ()): 7.0,
        ("steady_value", ()): 42.0,
        ("middleware_collector_up", (("source", "passive"),)): 1.0,
        ("middleware_collector_up", (("source", "steady"),)): 1.0,
    }
    assert [r.message for r in caplog.records] == ["passive source readiness failed"]


def test_passive_sources_that_can_be_read_at_once_go_before_those_that_wait() -> None:
    """While CloudWatch's batch is still fetching, the discovery inventory of every target
    is read, rather than after the batch; results keep the targets' order."""
    fetch, read = Fetching(), list[str]()
    targets = [
        Target("first", [WaitsForFetch(fetch, read), ReadAtOnce(fetch, read)]),
        Target("second", [ReadAtOnce(fetch, read)]),
    ]
    result = run_pass(
        targets,
        deadline=time.monotonic() + 5.0,
        max_workers=2,
        collector_instance="collector",
        prefetches=[fetch],
    )
    assert read == ["at_once", "at_once", "waits"]
    assert [t.target for t in result.targets] == ["first", "second"]
    assert samples(result, "first") == {
        ("waits_value", ()): 1.0,
        ("at_once_value", ()): 2.0,
        ("middleware_collector_up", (("source", "waits"),)): 1.0,
        ("middleware_collector_up", (("source", "at_once"),)): 1.0,
    }


class Recording:
    """Records the order sources start in; fails while ``failing`` is set."""

    def __init__(self, name: str, started: list[str]) -> None:
        self.name = name
        self.started = started
        self.failing = False

    def collect(self) -> Iterator[Metric]:
        self.started.append(self.name)
        if self.failing:
            raise SourceFailure("timeout", "the server did not answer in time")
        yield GaugeMetricFamily(f"{self.name}_value", "Collected.", value=1)


def test_sources_down_last_pass_start_after_the_others() -> None:
    """Hung servers at the front of the queue would hold every worker while healthy
    targets wait: a source that was down starts after those that were up."""
    started: list[str] = []
    first, second, third = (Recording(n, started) for n in ("first", "second", "third"))
    targets = [Target("a", [first]), Target("b", [second]), Target("c", [third])]
    first.failing = True

    def one_worker_pass() -> None:
        run_pass(targets, deadline=time.monotonic() + 5, max_workers=1, collector_instance="c")

    one_worker_pass()
    assert started == ["first", "second", "third"]
    started.clear()
    one_worker_pass()
    assert started == ["second", "third", "first"]
    first.failing = False
    started.clear()
    one_worker_pass()  # still down at the start of this pass: last once more
    started.clear()
    one_worker_pass()
    assert started == ["first", "second", "third"]


def test_freshness_a_pass_timestamp_and_each_targets_last_full_success() -> None:
    before = time.time()
    healthy = Target("a", [Steady()])
    broken = Target("b", [Steady(), Failing()])
    first = run([healthy, broken])
    after = time.time()

    def value(result: PassResult, target: str, name: str) -> float | None:
        (group,) = [group for group in result.groups() if group.target == target]
        found = [s.value for f in group.families for s in f.samples if s.name == name]
        return found[0] if found else None

    stamp = value(first, "collector", "middleware_pass_timestamp_seconds")
    assert stamp is not None and before <= stamp <= after
    succeeded = value(first, "a", "middleware_target_last_success_timestamp_seconds")
    assert succeeded is not None and before <= succeeded <= after
    assert healthy.succeeded_at == succeeded
    # One source down: the target has not fully succeeded (yet), so no value.
    assert value(first, "b", "middleware_target_last_success_timestamp_seconds") is None
    # Later passes: a target that goes down keeps the time of its last full success.
    healthy.sources.append(Failing())
    second = run([healthy])
    assert value(second, "a", "middleware_target_last_success_timestamp_seconds") == succeeded


def test_one_pool_serves_every_pass_until_a_worker_is_left_stuck() -> None:
    from middleware_monitoring.runner import Workers

    workers = Workers(4)
    healthy = [Target(f"t{i}", [Steady()]) for i in range(6)]

    def run_with(targets: list[Target], budget: float = 5.0) -> PassResult:
        return run_pass(
            targets,
            deadline=time.monotonic() + budget,
            max_workers=4,
            collector_instance="collector",
            workers=workers,
        )

    for _ in range(3):
        result = run_with(healthy)
        assert all(t.up for t in result.targets)
    # The same pool over three passes.
    assert workers.pools_made == 1
    stuck = Stuck()
    try:
        run_with([Target("stuck", [stuck]), *healthy], budget=0.3)
        # The stuck worker keeps a thread of that pool: the next pass gets a new one.
        after = run_with(healthy)
        assert all(t.up for t in after.targets)
        assert workers.pools_made == 2
    finally:
        stuck.release.set()
        workers.close()


def test_the_garbage_collector_is_paused_for_the_pass_and_back_after() -> None:
    """A pass's families live until it is sent: the cyclic collector, triggered by their
    number, would walk the growing heap again and again. Sources run with it paused (also
    a source that fails), and it is on again once the pass is over."""
    import gc

    seen: list[bool] = []

    class Watching:
        name = "watching"

        def collect(self) -> Iterator[Metric]:
            seen.append(gc.isenabled())
            yield GaugeMetricFamily("watched", "A value.", value=1)

    assert gc.isenabled()
    run([Target("db1", [Watching(), Failing()]), Target("db2", [Watching()])])
    assert seen == [False, False]
    assert gc.isenabled()


class Windowed:
    """A source with a sampling window, like a cold PostgreSQL's QPS: a first reading,
    a wait of ``window`` seconds, a second reading. ``collect()`` waits in place (``sleep``),
    ``steps()`` hands the wait to the runner."""

    def __init__(self, name: str, events: list[str], window: float, slept: list[float]) -> None:
        self.name = name
        self.events = events
        self.window = window
        self.slept = slept
        self.dropped = 0
        self.fail_first = False
        self.fail_second = False

    def collect(self) -> Iterator[Metric]:
        def sleep(seconds: float) -> None:
            self.slept.append(seconds)
            time.sleep(seconds)

        return in_place(self.steps(), sleep)

    def steps(self) -> Iterator[Metric | Later]:
        self.events.append(f"first {self.name}")
        yield GaugeMetricFamily("first_value", "Read before the window.", value=1)
        yield Later(self.window, self._second, self._dropped)
        yield GaugeMetricFamily("after_value", "Read after the first step's window began.", value=2)
        if self.fail_first:
            raise SourceFailure("statement_timeout", "the first step failed")

    def _second(self) -> Iterator[Metric]:
        self.events.append(f"second {self.name}")
        yield GaugeMetricFamily("second_value", "Read when the window ended.", value=3)
        if self.fail_second:
            raise SourceFailure("timeout", "the second step failed")

    def _dropped(self) -> None:
        self.dropped += 1


def test_sampling_windows_overlap_and_hold_no_worker() -> None:
    """8 cold sources, 2 workers: every window begins before any ends (all first readings
    come before any second), no worker sleeps, and each target gets all its series."""
    events: list[str] = []
    slept: list[float] = []
    sources = [Windowed(f"w{i}", events, 0.05, slept) for i in range(8)]
    targets = [Target(source.name, [source]) for source in sources]
    result = run_pass(
        targets, deadline=time.monotonic() + 30, max_workers=2, collector_instance="collector"
    )
    firsts = [e for e in events if e.startswith("first")]
    assert firsts == [f"first w{i}" for i in range(8)]
    assert events[:8] == firsts
    assert sorted(events[8:]) == [f"second w{i}" for i in range(8)]
    # The old runner called collect(), which sleeps on the worker: 8 sleeps, 4 per worker.
    assert slept == []
    for source in sources:
        assert samples(result, source.name) == {
            ("first_value", ()): 1.0,
            ("after_value", ()): 2.0,
            ("second_value", ()): 3.0,
            ("middleware_collector_up", (("source", source.name),)): 1.0,
        }
        assert source.dropped == 0


def test_a_failure_before_or_after_the_window_is_the_sources_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    events: list[str] = []
    early, late = Windowed("early", events, 0.0, []), Windowed("late", events, 0.0, [])
    early.fail_first, late.fail_second = True, True
    result = run([Target("early", [early]), Target("late", [late])])
    for source, reason in ((early, "statement_timeout"), (late, "timeout")):
        # What each step delivered goes out; the source is down with the failure met.
        assert samples(result, source.name) == {
            ("first_value", ()): 1.0,
            ("after_value", ()): 2.0,
            ("second_value", ()): 3.0,
            ("middleware_collector_up", (("source", source.name),)): 0.0,
            ("middleware_collector_failure", (("reason", reason), ("source", source.name))): 1.0,
        }
    assert sorted((r.source, r.reason) for r in caplog.records) == [  # type: ignore[attr-defined]
        ("early", "statement_timeout"),
        ("late", "timeout"),
    ]
    assert samples(result, "collector")[("middleware_pass_targets", (("state", "down"),))] == 2.0


def test_a_window_ending_after_the_deadline_is_dropped_not_waited_for() -> None:
    events: list[str] = []
    late = Windowed("late", events, 3600.0, [])
    result = run([Target("late", [late]), Target("healthy", [Steady()])], budget=30)
    assert events == ["first late"]
    assert late.dropped == 1
    # The source is up with what its first step read; the second reading is absent.
    assert samples(result, "late") == {
        ("first_value", ()): 1.0,
        ("after_value", ()): 2.0,
        ("middleware_collector_up", (("source", "late"),)): 1.0,
    }
    assert samples(result, "healthy")[("steady_value", ())] == 42.0


def test_a_window_that_gets_no_worker_before_the_deadline_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One worker, held by a stuck server until after the deadline: the window ends in
    time but its second step never gets the worker. It is dropped (the source says so
    itself), never run later, and the source stays up with its first step's series."""
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    events: list[str] = []
    windowed, stuck = Windowed("windowed", events, 0.0, []), StuckWithUp()
    targets = [Target("windowed", [windowed]), Target("stuck", [stuck])]
    try:
        result = run_pass(
            targets, deadline=time.monotonic() + 0.5, max_workers=1, collector_instance="c"
        )
        assert windowed.dropped == 1
        assert samples(result, "windowed") == {
            ("first_value", ()): 1.0,
            ("after_value", ()): 2.0,
            ("middleware_collector_up", (("source", "windowed"),)): 1.0,
        }
        assert (
            samples(result, "stuck")[
                ("middleware_collector_failure", (("reason", "deadline"), ("source", "stuck")))
            ]
            == 1.0
        )
        assert [(r.source, r.reason) for r in caplog.records] == [("stuck", "deadline")]  # type: ignore[attr-defined]
    finally:
        stuck.release.set()
    targets[1].in_flight["stuck"].result(timeout=5)
    # Its second step was cancelled, not left to run after the pass.
    assert targets[0].in_flight["windowed"].cancelled()
    assert events == ["first windowed"]


def test_a_second_step_stuck_at_the_deadline_is_given_up_like_any_source() -> None:
    class StuckSecond(Windowed):
        def __init__(self) -> None:
            super().__init__("stuck_second", [], 0.0, [])
            self.release = threading.Event()

        def down_families(self) -> Iterator[Metric]:
            yield GaugeMetricFamily("windowed_up", "1 if it answered.", value=0)

        def _second(self) -> Iterator[Metric]:
            self.release.wait(10)
            yield from super()._second()

    source = StuckSecond()
    target = Target("s", [source])
    try:
        result = run([target], budget=0.5)
    finally:
        source.release.set()
    target.in_flight[source.name].result(timeout=5)
    # As when a source hangs in one step: its always-series, down by deadline.
    assert samples(result, "s") == {
        ("windowed_up", ()): 0.0,
        ("middleware_collector_up", (("source", "stuck_second"),)): 0.0,
        (
            "middleware_collector_failure",
            (("reason", "deadline"), ("source", "stuck_second")),
        ): 1.0,
    }
    assert source.dropped == 0


def test_in_place_waits_where_the_window_is() -> None:
    events: list[str] = []
    slept: list[float] = []
    source = Windowed("w", events, 0.01, slept)
    names = [family.name for family in source.collect()]
    assert names == ["first_value", "second_value", "after_value"]
    assert slept == [0.01]


def test_a_sampling_window_never_waits_for_a_prefetch() -> None:
    """CloudWatch's batch still fetching (here: until a window's second step has run) must
    not keep a window from ending: the passive source waiting for it is read off the pass's
    thread, which submits the second step when due."""
    fetch, read = Fetching(), list[str]()
    events: list[str] = []
    windowed = Windowed("windowed", events, 0.0, [])
    second = windowed._second

    def second_then_fetched() -> Iterator[Metric]:
        yield from second()
        fetch.finish.set()

    windowed._second = second_then_fetched  # type: ignore[method-assign]
    target = Target("db", [windowed, WaitsForFetch(fetch, read, wait=10.0)])
    result = run_pass(
        [target],
        deadline=time.monotonic() + 30,
        max_workers=1,
        collector_instance="c",
        prefetches=[fetch],
    )
    assert events == ["first windowed", "second windowed"]
    assert read == ["waits"]
    assert samples(result, "db") == {
        ("first_value", ()): 1.0,
        ("after_value", ()): 2.0,
        ("second_value", ()): 3.0,
        ("waits_value", ()): 1.0,
        ("middleware_collector_up", (("source", "windowed"),)): 1.0,
        ("middleware_collector_up", (("source", "waits"),)): 1.0,
    }


def test_in_place_waits_for_a_later_step_of_a_later_step() -> None:
    slept: list[float] = []

    def third() -> Iterator[Metric]:
        yield GaugeMetricFamily("third_value", "After two waits.", value=3)

    def second() -> Iterator[Metric | Later]:
        yield GaugeMetricFamily("second_value", "After one wait.", value=2)
        yield Later(0.02, third)

    def steps() -> Iterator[Metric | Later]:
        yield GaugeMetricFamily("first_value", "At once.", value=1)
        yield Later(0.01, second)

    names = [family.name for family in in_place(steps(), slept.append)]
    assert names == ["first_value", "second_value", "third_value"]
    assert slept == [0.01, 0.02]
