"""`collect` ends with its budget even when a server accepts and never answers: the target
is reported down (pg_up 0, reason deadline) and the process does not wait for the stuck
worker's socket timeouts before exiting."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.helpers import child_env
from tests.standins.silent import SilentServer

# Far longer than the budget: a process that waited for them would hit the run's timeout.
SOCKET_TIMEOUTS = {"PG_CONNECT_TIMEOUT_SECONDS": "60", "PG_STATEMENT_TIMEOUT_MS": "60000"}


def test_collect_returns_with_its_budget_against_a_silent_server() -> None:
    with SilentServer() as silent:
        environ = {
            "PG_DATABASE": silent.host,
            "PG_PORT": str(silent.port),
            "PG_USER": "monitor",
            "PG_TARGET_NAME": "silent-db",
            **SOCKET_TIMEOUTS,
        }
        done = subprocess.run(
            [sys.executable, "-m", "middleware_monitoring", "collect", "--budget", "1"],
            env=child_env(environ),
            capture_output=True,
            text=True,
            timeout=30,  # the bound under test: 30 s, against 60 s socket timeouts
            check=False,
        )
    assert done.returncode == 0, done.stderr
    samples = [line for line in done.stdout.splitlines() if not line.startswith("#")]
    timed = [line for line in samples if "_duration_seconds{" in line or "_timestamp_" in line]
    assert [line for line in samples if line not in timed] == [
        'pg_up{instance="silent-db"} 0.0',
        'middleware_collector_up{instance="silent-db",source="postgres"} 0.0',
        'middleware_collector_failure{instance="silent-db",reason="deadline",source="postgres"}'
        " 1.0",
        'middleware_pass_targets{instance="collector",state="up"} 0.0',
        'middleware_pass_targets{instance="collector",state="down"} 1.0',
        # The pass's series, these two duration series and this one included.
        'middleware_series_sent{instance="collector",sink="stdout"} 9.0',
    ]
    # Durations are measured, so only their series and the budget that bounds them are known.
    durations = dict(line.split(" ") for line in timed)
    finished = durations.pop('middleware_pass_timestamp_seconds{instance="collector"}')
    assert list(durations) == [
        'middleware_collector_duration_seconds{instance="silent-db",source="postgres"}',
        'middleware_pass_duration_seconds{instance="collector"}',
    ]
    assert all(0 < float(seconds) < 1 for seconds in durations.values())
    assert time.time() - 30 < float(finished) <= time.time()


def test_collect_push_ends_within_its_budget_against_a_black_holed_pushgateway() -> None:
    """`collect --push --budget N` holds the push inside N too: 20 s
    timeouts and two retries would take a minute for the one group."""
    with SilentServer() as silent:
        environ = {
            "PUSHGATEWAY_URL": f"http://{silent.host}:{silent.port}",
            "PUSHGATEWAY_TIMEOUT_SECONDS": "20",
            "PUSHGATEWAY_RETRIES": "2",
        }
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "middleware_monitoring", "collect", "--push", "--budget", "3"],
            env=child_env(environ),
            capture_output=True,
            text=True,
            timeout=30,  # the bound under test: 30 s, against 61.5 s of push attempts
            check=False,
        )
        took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    (failed,) = [json.loads(line) for line in done.stderr.splitlines() if "push failed" in line]
    assert failed["detail"] == (
        f"Pushgateway http://{silent.host}:{silent.port}/metrics/job/aws-middleware-monitoring/"
        # The pass's own series: its duration, its time, targets up and down, and
        # middleware_series_sent{sink="pushgateway"}.
        "collector/collector/shard/0 did not accept the pass (5 series of 0 targets): "
        "TimeoutError: timed out"
    )
    # The budget counts from the command's start; Python's own start-up comes on top.
    assert took < 3 + 5


def test_emf_keeps_no_pushgateway_time_back() -> None:
    """With METRICS_SINK=emf the Pushgateway's worst case (here 61.5 s) is not kept back:
    a hung target is waited for until a second before the budget ends (printing's own
    reserve), not half of it as a 61.5 s reserve would leave."""
    with SilentServer() as silent:
        environ = {
            "METRICS_SINK": "emf",
            "PG_DATABASE": silent.host,
            "PG_PORT": str(silent.port),
            "PG_USER": "monitor",
            "PG_TARGET_NAME": "silent-db",
            "PUSHGATEWAY_TIMEOUT_SECONDS": "20",
            "PUSHGATEWAY_RETRIES": "2",
            **SOCKET_TIMEOUTS,
        }
        done = subprocess.run(
            [sys.executable, "-m", "middleware_monitoring", "collect", "--push", "--budget", "10"],
            env=child_env(environ),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    emf = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    # Powertools writes a metric's values as a list.
    ((duration,),) = [
        line["middleware_pass_duration_seconds"]
        for line in emf
        if "middleware_pass_duration_seconds" in line
    ]
    # 10 s less the 1 s reserve, less start-up (which varies with the machine's load); a
    # 61.5 s Pushgateway reserve would have left half the budget, 5 s.
    assert 5.0 < duration < 9.0
