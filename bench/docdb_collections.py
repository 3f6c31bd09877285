"""DocumentDB collections (SPEC 18): what a warm pass of the DocumentDB source costs on a
server with 1,000 collections across 10 databases, at the default bound (the top 20 exported,
at most 100 collStats a pass) and with every collection read each pass.

The server is the DocumentDB stand-in (tests/standins/docdb.py) on this machine: its
commands answer in well under a millisecond, so the figures are the collector's own work and
the number of round trips, not DocumentDB's. Run: ``python -m bench.docdb_collections``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Mapping
from typing import Any

from bench.section import Goal, Section, Table
from middleware_monitoring.config import load_settings
from middleware_monitoring.config.docdb import MongoCollectionBounds
from middleware_monitoring.docdb.source import DocumentDBSource
from tests.standins.docdb import Collection, DocDBServer

DATABASES = 10
# The product's bound at its defaults (MONGO_COLLECTIONS_TOP_N=20, MONGO_COLLSTATS_PER_PASS=100):
# however many collections a server has, a pass asks at most this many collStats.
DEFAULT_COLLSTATS_PER_PASS = 100
# Stored figures' keys (results.json) and the scenario each names in the report.
SCENARIOS = {
    "default_bound": "default bound (top 20 exported, at most 100 collStats a pass)",
    "every_collection": "every collection read every pass",
}


def _collections(count: int) -> dict[tuple[str, str], Collection]:
    return {
        (f"db{i % DATABASES}", f"coll{i:04d}"): Collection(
            count=i + 1,
            size=(i * 7919) % 100_000 + 1,
            total_index_size=4096,
            inserted=i,
            indexes={"_id_": i, "field_1": i // 2},
        )
        for i in range(count)
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _passes(server: DocDBServer, bounds: MongoCollectionBounds, runs: int) -> dict[str, Any]:
    (spec,) = load_settings({"MONGO_INFO": json.dumps(server.mongo_info())}).docdb
    source = DocumentDBSource(spec, bounds=bounds)
    try:
        started = time.perf_counter()
        list(source.collect())  # the first pass: connect, nothing ranked yet
        first = time.perf_counter() - started
        warm: list[float] = []
        asked: list[int] = []
        series = 0
        for _ in range(runs):
            before = len(server.commands)
            started = time.perf_counter()
            families = list(source.collect())
            warm.append(time.perf_counter() - started)
            asked.append(server.commands[before:].count("collStats"))
            series = sum(len(f.samples) for f in families)
    finally:
        source.close()
    return {
        "first_pass_ms": _ms(first),
        "warm_pass_ms_median": _ms(statistics.median(warm)),
        "warm_pass_ms_max": _ms(max(warm)),
        "collstats_per_pass": max(asked),
        "series_per_server": series,
    }


def measure(quick: bool) -> dict[str, Any]:
    count, runs = (50, 2) if quick else (1000, 10)
    with DocDBServer(collections=_collections(count)) as server:
        return {
            "setup": {"collections": count, "databases": DATABASES, "warm_passes": runs},
            "default_bound": _passes(server, MongoCollectionBounds(), runs),
            "every_collection": _passes(server, MongoCollectionBounds(20, count), runs),
        }


def section(figures: Mapping[str, Any]) -> Section:
    """The report's section (bench/section.py), from the stored figures only."""
    setup = figures["setup"]
    collections = setup["collections"]
    bounded = figures["default_bound"]
    return Section(
        question=(
            f"What does a warm DocumentDB pass cost on a server of {collections:,} collections?"
        ),
        method=(
            f"The DocumentDB source against the stand-in (tests/standins/docdb.py) holding "
            f"{collections:,} collections across {setup['databases']} databases, at the default "
            "bound and with every collection read each pass: the first pass (connect, nothing "
            f"ranked yet), then {setup['warm_passes']} warm passes (median and slowest). The "
            "stand-in answers in well under a millisecond, so the times are the collector's own "
            "work and its round trips, not DocumentDB's."
        ),
        command=".venv/bin/python -m bench.docdb_collections",
        table=Table(
            (
                "scenario",
                "first pass (ms)",
                "warm pass, median (ms)",
                "warm pass, slowest (ms)",
                "collStats per pass",
                "series",
            ),
            [
                (
                    label,
                    figures[key]["first_pass_ms"],
                    figures[key]["warm_pass_ms_median"],
                    figures[key]["warm_pass_ms_max"],
                    figures[key]["collstats_per_pass"],
                    figures[key]["series_per_server"],
                )
                for key, label in SCENARIOS.items()
            ],
        ),
        goals=[
            Goal(
                f"collStats a warm pass asks at the default bound, {collections:,} collections",
                bounded["collstats_per_pass"],
                DEFAULT_COLLSTATS_PER_PASS,
                "calls",
            )
        ],
        notes=[
            "No time goal is stated for DocumentDB collections: the time at "
            f"{collections:,} collections is reported against reading every collection "
            "each pass."
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny size (the smoke test's)")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick), indent=2))


if __name__ == "__main__":
    main()
