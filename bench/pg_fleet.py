"""Section 7 of `make bench` (issue 13): a fleet of PostgreSQL targets from a targets file,
10 / 50 / 100 of them on a few real servers (many databases and logins on each): warm pass,
cold start and peak RSS of a function instance, and the connections it holds at the servers
after its warm passes; at the largest size, the first pass of a cold function instance
against its floor (each server's server-wide statements once, and a bare connect per
target), and the collector's CPU per series of a warm invocation (a note: the goal on it is
bench/pg_cold.py's, where each target carries its own server's series). Goals reported
against: 100 targets warm in under 2 s with the default COLLECTOR_MAX_WORKERS, under 2 MB of
RSS per target and under 0.5 MB per added target, the first pass within 2x its floor."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping
from typing import Any

from bench.harness import (
    TIMER,
    Servers,
    Sizes,
    peak_rss,
    run_worker,
    shown,
    start_pg,
    template_default,
    worker_command,
)
from bench.report import Figure, Part, counted, goal, ms
from bench.section import Goal, Section, Table, number

GOAL_TARGETS = 100
GOAL_WARM_SECONDS = 2.0
GOAL_RSS_MB_PER_TARGET = 2.0
GOAL_RSS_MB_PER_ADDED_TARGET = 0.5
# A cold function instance's first pass over its floor: each server's server-wide
# statements once and a bare connect per target, in as many threads as the product uses.
GOAL_FIRST_PASS_OVER_FLOOR = 2.0
FLOOR_PASSES = 3
# The push and the rest of an invocation add at most 30% to the pass they carry.
GOAL_INVOCATION_OVER_PASS = 1.3
LOGIN_PASSWORD = "fleet-login-pw"


def prepare(s: Servers, sizes: Sizes) -> tuple[list[Any], int]:
    """The fleet's servers (the two the other sections use, and more started like them) with
    ceil(largest size / servers) databases and ``fleet_logins`` monitoring logins each;
    returns the servers and the databases per server."""
    fleet = [s.reference_pg, s.second_pg]
    while len(fleet) < sizes.fleet_servers:
        fleet.append(start_pg(s.stack, s.statements))
    fleet = fleet[: sizes.fleet_servers]
    per_server = math.ceil(max(sizes.fleet) / len(fleet))
    for server in fleet:
        # New databases are copies of template1: pg_stat_statements is there in each.
        server.execute_as_superuser(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database="template1"
        )
        for j in range(sizes.fleet_logins):
            server.create_role(f"fleet_login_{j}", LOGIN_PASSWORD)
        for k in range(per_server):
            server.create_database(f"fleet_db_{k}")
    return fleet, per_server


def targets_document(fleet: list[Any], n: int, logins: int) -> dict[str, Any]:
    """Target i: server i mod S, its database i div S, a login taken in turn."""
    entries = []
    for i in range(n):
        server = fleet[i % len(fleet)]
        db = i // len(fleet)
        entries.append(
            {
                "name": f"fleet-pg-{i}",
                "host": server.host,
                "port": server.port,
                "dbname": f"fleet_db_{db}",
                "user": f"fleet_login_{db % logins}",
                "password": LOGIN_PASSWORD,
            }
        )
    return {"postgres": entries}


def first_pass_floor(path: Any, quick: bool) -> dict[str, Any]:
    """The floor of the first pass (bench/worker.py ``first-pass-floor``), measured in a
    fresh process right after the fleet's instances, on the same servers and targets."""
    passes = 1 if quick else FLOOR_PASSES
    out = run_worker("first-pass-floor", path, passes)
    return {
        "first_pass_floor_s": statistics.median(out["floor"]),
        "first_pass_floor_workers": out["workers"],
        "first_pass_floor_connects": out["connects"],
        "first_pass_floor_statements": out["server_wide_statements"],
        "first_pass_floor_passes": passes,
        "first_pass_floor_qps_windows": len(out["qps_windows_s"]),
        "first_pass_floor_qps_window_s": max(out["qps_windows_s"], default=0.0),
        "warm_floor_cpu_s": statistics.median(out["warm_floor_cpu_s"]),
        "warm_floor_statements": out["warm_statements"],
        "first_pass_floor_command": shown(worker_command("first-pass-floor", path, passes)),
    }


def server_ref(server: Any) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "user": server.superuser,
        "password": server.password,
        "pid": server.pid,
    }


def pg_fleet(s: Servers, sizes: Sizes) -> tuple[Part, dict[int, dict[str, Any]]]:
    from middleware_monitoring.config import load_settings

    fleet, per_server = prepare(s, sizes)
    part = Part("7", "Fleet: PostgreSQL targets from a targets file (issue 13)")
    rows: list[tuple[Any, ...]] = []
    measured: dict[int, dict[str, Any]] = {}
    for n in sizes.fleet:
        document = targets_document(fleet, n, sizes.fleet_logins)
        targets_file = s.write(f"fleet-{n}.json", json.dumps(document))
        env = {
            **s.aws_env(),
            "TARGETS_FILE": str(targets_file),
            "PUSHGATEWAY_URL": s.gateway.url,
            "PUSHGATEWAY_JOB": "bench-fleet",
            "POWERTOOLS_SERVICE_NAME": "middleware-monitoring",
        }
        workers = load_settings(env).max_workers
        path = s.write(
            f"handler-fleet-{n}.json",
            json.dumps({"env": env, "count_at": [server_ref(x) for x in fleet]}),
        )
        runs = [
            run_worker("handler", path, sizes.fleet_passes, timed=True)
            for _ in range(sizes.fleet_runs)
        ]
        warm_pass = statistics.median(statistics.median(r["pass_durations"][1:]) for r in runs)
        warm_invocation = statistics.median(statistics.median(r["invocations"][1:]) for r in runs)
        # Recorded for the warm passes only.
        own_cpu = statistics.median(statistics.median(r["pass_cpu_s"]) for r in runs)
        servers_cpu = statistics.median(statistics.median(r["pass_servers_cpu_s"]) for r in runs)
        cold = statistics.median(r["import_s"] + r["invocations"][0] for r in runs)
        first_pass = statistics.median(r["pass_durations"][0] for r in runs)
        rss = peak_rss(runs)
        last = runs[-1]
        held = sum(c["product"] for c in last["connections"])
        up = last["summary"]["targets_up"]
        first_pass_cpu = statistics.median(r["first_pass_cpu_s"] for r in runs)
        # A warm invocation's whole CPU (pass, push body, push) over the series it sent.
        invocation_cpu = statistics.median(
            statistics.median(r["invocation_cpu_s"][1:]) for r in runs
        )
        series = last["series"][-1]
        measured[n] = {
            "warm_pass_s": warm_pass,
            "warm_invocation_s": warm_invocation,
            "cpu_s": own_cpu,
            "servers_cpu_s": servers_cpu,
            "rss_mb": rss,
            "workers": workers,
            "held": held,
            "up": up,
            # The report's section (section() below) reads these too.
            "cold_start_s": cold,
            "first_pass_s": first_pass,
            "connections_per_server": [c["product"] for c in last["connections"]],
            "first_pass_cpu_s": first_pass_cpu,
            "warm_invocation_cpu_s": invocation_cpu,
            "series": series,
            "cpu_us_per_series": invocation_cpu / series * 1e6 if series else None,
            "servers": len(fleet),
            "databases_per_server": per_server,
            "logins_per_server": sizes.fleet_logins,
            "statements_per_server": s.statements,
            "runs": sizes.fleet_runs,
            "passes": sizes.fleet_passes,
            "nproc": os.cpu_count() or 1,
            "memory_mb": int(template_default("MemorySize")),
            "command": " ".join(
                [*TIMER, shown(worker_command("handler", path, sizes.fleet_passes))]
            ),
        }
        if n == max(sizes.fleet):
            measured[n].update(first_pass_floor(path, sizes.quick))
        rows.append(
            (
                n,
                f"{up}/{n}",
                workers,
                ms(warm_pass),
                ms(warm_invocation),
                f"{ms(own_cpu)} / {ms(servers_cpu)}",
                ms(cold),
                ms(first_pass),
                f"{rss:.0f} MB",
                f"{rss / n:.2f} MB",
                " + ".join(str(c["product"]) for c in last["connections"]) + f" = {held}",
            )
        )
        part.figures.append(
            Figure(
                "7",
                f"Fleet: {n} PostgreSQL targets from a targets file, {workers} workers: warm "
                "pass / cold start / peak RSS / connections held",
                f"{ms(warm_pass)} / {ms(cold)} / {rss:.0f} MB / {held}",
                "",
                "",
                " ".join([*TIMER, shown(worker_command("handler", path, sizes.fleet_passes))]),
            )
        )
    part.add(
        f"{len(fleet)} PostgreSQL servers (each holding {s.statements:,} pg_stat_statements "
        f"entries), each with {per_server} databases and {sizes.fleet_logins} monitoring "
        "logins (pg_monitor); target i is database i div S of server i mod S, its login "
        "taken in turn; every target is an entry of a targets file (TARGETS_FILE, no PG_* "
        f"variables). For each size, {counted(sizes.fleet_runs, 'fresh function instance')} "
        f"(`bench/worker.py handler`: import, {sizes.fleet_passes} invocations with their push "
        "to the Pushgateway); figures are medians over the instances, peak RSS the largest. "
        "Warm pass = the pass's own duration (the invocation's summary) of the invocations "
        "after the first; warm invocation adds the push; cold start = handler import + first "
        "invocation. CPU per warm pass: the function's process CPU time, and the PostgreSQL "
        "servers' (every process of theirs, from /proc), while the pass ran (push excluded). "
        "Connections held: client backends with the product's application_name "
        "in each server's pg_stat_activity, counted after the last invocation while the "
        "instance is still alive.",
        "",
    )
    part.table(
        (
            "targets",
            "up",
            "workers",
            "warm pass",
            "warm invocation",
            "CPU per warm pass (function / servers)",
            "cold start",
            "first pass",
            "peak RSS",
            "RSS / target",
            "connections held (per server)",
        ),
        rows,
    )
    memory_mb = int(template_default("MemorySize"))
    part.add(
        f"Peak RSS within template.yaml's MemorySize default ({memory_mb} MB): "
        + ", ".join(
            f"{n} targets {'yes' if m['rss_mb'] < memory_mb else 'NO'}" for n, m in measured.items()
        )
        + ".",
        "",
    )
    largest, smallest = max(measured), min(measured)
    if largest == GOAL_TARGETS:
        big, small = measured[largest], measured[smallest]
        marginal = (big["rss_mb"] - small["rss_mb"]) / (largest - smallest)
        over_floor = big["first_pass_s"] / big["first_pass_floor_s"]
        part.add(
            "Goals (issue 13), as measured in this run:",
            "",
            f"- {GOAL_TARGETS} targets warm in under {GOAL_WARM_SECONDS:.0f} s with the default "
            f"workers ({big['workers']}): {ms(big['warm_pass_s'])}, "
            f"{goal(big['warm_pass_s'] < GOAL_WARM_SECONDS and big['up'] == largest)}. The "
            f"function and the servers share this machine's {os.cpu_count()} CPUs: a warm "
            f"pass used {big['cpu_s']:.2f} s of the function's CPU and "
            f"{big['servers_cpu_s']:.2f} s of the servers', so it could not take less than "
            f"{ms((big['cpu_s'] + big['servers_cpu_s']) / (os.cpu_count() or 1))} here.",
            f"- under {GOAL_RSS_MB_PER_TARGET:.0f} MB RSS per target: peak RSS / targets at "
            f"{largest}: {big['rss_mb'] / largest:.2f} MB, "
            f"{goal(big['rss_mb'] / largest < GOAL_RSS_MB_PER_TARGET)}; growth per added "
            f"target from {smallest} to {largest} (goal under "
            f"{GOAL_RSS_MB_PER_ADDED_TARGET} MB): {marginal:.2f} MB, "
            f"{goal(marginal < GOAL_RSS_MB_PER_ADDED_TARGET)}.",
            f"- first pass of a cold instance within {GOAL_FIRST_PASS_OVER_FLOOR:.0f}x its "
            f"floor: {ms(big['first_pass_s'])} against {ms(big['first_pass_floor_s'])}, "
            f"{over_floor:.2f}x, {goal(over_floor < GOAL_FIRST_PASS_OVER_FLOOR)}.",
        )
    else:
        part.add(
            f"Goals (issue 13) are judged at {GOAL_TARGETS} targets; this run's largest size "
            f"was {largest}: not judged."
        )
    return part, measured


def section(figures: Mapping[str, Any]) -> Section:
    """The report's section (bench/section.py), from the stored figures only: ``figures`` maps
    each fleet size (a string key in results.json) to its figures."""
    sizes = sorted((int(n), m) for n, m in figures.items())
    smallest, small = sizes[0]
    largest, big = sizes[-1]
    rows = [
        (
            f"{n:,} PostgreSQL targets",
            f"{m['up']}/{n}",
            m["workers"],
            m["warm_pass_s"] * 1000,
            m["warm_invocation_s"] * 1000,
            m["cpu_s"] * 1000,
            m["servers_cpu_s"] * 1000,
            m["cold_start_s"] * 1000,
            m["first_pass_s"] * 1000,
            round(m["first_pass_cpu_s"] * 1000, 1) if "first_pass_cpu_s" in m else None,
            m.get("cpu_us_per_series"),
            m["rss_mb"],
            round(m["rss_mb"] / n, 2),
            " + ".join(str(c) for c in m["connections_per_server"]) + f" = {m['held']}",
        )
        for n, m in sizes
    ]
    goals: list[Goal] = []
    notes: list[str] = []
    if largest == GOAL_TARGETS:
        goals.append(
            Goal(
                f"warm pass of {GOAL_TARGETS} PostgreSQL targets, default workers",
                round(big["warm_pass_s"], 3),
                GOAL_WARM_SECONDS,
                "s",
            )
        )
        goals.append(
            Goal(
                f"peak RSS per target at {GOAL_TARGETS} targets",
                round(big["rss_mb"] / largest, 2),
                GOAL_RSS_MB_PER_TARGET,
                "MB",
            )
        )
        goals.append(
            Goal(
                f"warm invocation (pass + push) of {GOAL_TARGETS} PostgreSQL targets over "
                "its warm pass",
                round(big["warm_invocation_s"] / big["warm_pass_s"], 2),
                GOAL_INVOCATION_OVER_PASS,
                "x",
            )
        )
        if largest > smallest:
            goals.append(
                Goal(
                    f"peak RSS growth per added target, {smallest} to {largest} targets",
                    round((big["rss_mb"] - small["rss_mb"]) / (largest - smallest), 2),
                    GOAL_RSS_MB_PER_ADDED_TARGET,
                    "MB",
                )
            )
        if big.get("first_pass_floor_s"):
            window = (
                f"{number(big['first_pass_floor_qps_window_s'] * 1000)} ms at most"
                if big.get("first_pass_floor_qps_windows")
                else "none was recorded"
            )
            goals.append(
                Goal(
                    f"first pass of {GOAL_TARGETS} PostgreSQL targets on {big['servers']} "
                    "servers (a cold function instance) over its floor",
                    round(big["first_pass_s"] / big["first_pass_floor_s"], 2),
                    GOAL_FIRST_PASS_OVER_FLOOR,
                    "x",
                )
            )
            notes.append(
                f"First pass: {number(big['first_pass_s'] * 1000)} ms against a floor of "
                f"{number(big['first_pass_floor_s'] * 1000)} ms: each server's server-wide "
                f"statements once ({big['first_pass_floor_statements']} in all, as a cold "
                "carrier target issues them: statements with their classification and texts, "
                "both QPS snapshots, activity, database sizes, health; recorded beforehand, "
                "replayed back to back but for the QPS window between the two snapshots "
                f"that a cold rate needs, {window}) and "
                f"{big['first_pass_floor_connects']} bare pg8000 connects (each target's "
                "login, database and TLS), in a pool of "
                f"{big['first_pass_floor_workers']} threads as the product runs its targets, "
                "each server's carrier on a thread of its own (its window holds no pool "
                "thread, as the product's does not); median of "
                f"{counted(big['first_pass_floor_passes'], 'floor')} "
                f"(`{big['first_pass_floor_command']}`)."
            )
        if big.get("cpu_us_per_series"):
            # Not a goal here: server-wide series go out once per server, so each target
            # sends few series and the figure is its round trips spread over them.
            notes.append(
                f"CPU per series of a warm invocation: {number(big['cpu_us_per_series'])} µs "
                f"({number(big['warm_invocation_cpu_s'] / largest * 1000)} ms per target). "
                "Not a goal in this section: its server-wide series go out once per server, "
                f"so each of its {largest} targets sends few series and the figure is mostly "
                "per-target round trips over them; the goal on CPU per series is the cold "
                "PostgreSQL section's (`bench/pg_cold.py`), where each target carries its own "
                "server's series."
            )
            if big.get("warm_floor_cpu_s"):
                notes.append(
                    f"CPU per series: a warm invocation used {number(big['cpu_s'] * 1000)} ms "
                    "in its pass and "
                    f"{number((big['warm_invocation_cpu_s'] - big['cpu_s']) * 1000)} ms in the "
                    f"rest (push body, push) for {big['series']:,} series. The statements of "
                    f"a warm pass alone ({big['warm_floor_statements']}: each target's, "
                    "recorded from its own source, liveness check included), run over open "
                    "pg8000 connections in the same pool, took "
                    f"{number(big['warm_floor_cpu_s'] * 1000)} ms of CPU: "
                    f"{number(big['warm_floor_cpu_s'] / big['series'] * 1e6)} µs per series "
                    "before anything is made of their rows."
                )
        if big["up"] != largest:
            notes.append(f"Only {big['up']} of {largest} targets were up at {largest}.")
        floor = (big["cpu_s"] + big["servers_cpu_s"]) / big["nproc"]
        notes.append(
            f"The function and the servers share this machine's {big['nproc']} CPUs: at "
            f"{largest} targets a warm pass used {number(big['cpu_s'])} s of the function's "
            f"CPU and {number(big['servers_cpu_s'])} s of the servers', so it could not take "
            f"less than {number(floor * 1000)} ms here."
        )
    notes.append(
        f"Peak RSS within template.yaml's MemorySize default ({big['memory_mb']} MB): "
        + ", ".join(
            f"{n} targets {'yes' if m['rss_mb'] < m['memory_mb'] else 'NO'}" for n, m in sizes
        )
        + "."
    )
    return Section(
        question="How long does a warm pass of a PostgreSQL fleet from a targets file take, and "
        "how much memory does it use?",
        method=(
            f"{big['servers']} PostgreSQL servers (each with {big['statements_per_server']:,} "
            f"pg_stat_statements entries, {big['databases_per_server']} databases and "
            f"{big['logins_per_server']} pg_monitor logins); every target an entry of a "
            "targets file (TARGETS_FILE). Per size, "
            f"{counted(big['runs'], 'fresh function instance')} "
            f"(import, {big['passes']} invocations with their push); medians over the "
            "instances, peak RSS the largest. Warm pass: the pass's own duration after the "
            "first invocation; warm invocation adds the push; cold start = import + first "
            "invocation; first pass: the first invocation's pass, its CPU the process's; CPU "
            "per series: a warm invocation's process CPU (the pass, encoding the push body, "
            "the push) over the series it sent; CPU per pass: the function's process and the "
            "PostgreSQL servers' while the pass ran; connections held: the product's client "
            "backends in pg_stat_activity after the last invocation."
        ),
        command=str(big["command"]),
        table=Table(
            (
                "fleet",
                "up",
                "workers",
                "warm pass (ms)",
                "warm invocation (ms)",
                "function CPU per pass (ms)",
                "servers' CPU per pass (ms)",
                "cold start (ms)",
                "first pass (ms)",
                "first pass CPU (ms)",
                "warm invocation CPU per series (µs)",
                "peak RSS (MB)",
                "RSS per target (MB)",
                "connections held (per server)",
            ),
            rows,
        ),
        goals=goals,
        no_goal=""
        if goals
        else f"The goals are judged at {GOAL_TARGETS} targets; this run's "
        f"largest size was {largest}.",
        notes=notes,
    )
