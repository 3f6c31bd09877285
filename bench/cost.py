"""Section 8 of `make bench`: a month of each approach at list prices. The product is billed
as Lambda (GB-seconds from the measured warm invocation and the template's memory) plus the
CloudWatch metrics it requests per pass (counted); the older exporter as what it is, a
process that runs all month (the smallest Fargate task, or the smallest EC2 instance), plus
the GetMetricStatistics requests it makes per pass (counted). Prices and sizes are inputs,
stated in the report. What remote write and each sink cost: their own sections."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.harness import ROOT, template_default
from bench.report import ms
from bench.section import Section, Table, quantity


def prices() -> dict[str, Any]:
    """bench/prices.json: every price the cost sections use, in one file."""
    loaded: dict[str, Any] = json.loads((ROOT / "bench" / "prices.json").read_text())
    return loaded


# Inputs: list prices from bench/prices.json (region and date stated there), a 30-day month.
PRICES = prices()
HOURS_PER_MONTH = 30 * 24
LAMBDA_GB_SECOND = float(PRICES["lambda_x86_per_gb_second"])
LAMBDA_PER_REQUEST = float(PRICES["lambda_per_million_requests"]) / 1_000_000
GETMETRICDATA_PER_METRIC = float(PRICES["getmetricdata_per_1000_metrics"]) / 1000
GETMETRICSTATISTICS_PER_REQUEST = float(PRICES["getmetricstatistics_per_1000_requests"]) / 1000


@dataclass(frozen=True)
class Host:
    name: str
    vcpu: float
    memory_gb: float
    hourly_usd: float


FARGATE_VCPU_HOUR = float(PRICES["fargate_linux_x86_per_vcpu_hour"])
FARGATE_GB_HOUR = float(PRICES["fargate_linux_x86_per_gb_hour"])
EC2_T4G_NANO_HOUR = float(PRICES["ec2_t4g_nano_per_hour"])
HOSTS = (
    Host(
        f"Fargate task, smallest size (0.25 vCPU, 0.5 GB; ${FARGATE_VCPU_HOUR} per vCPU-hour, "
        f"${FARGATE_GB_HOUR} per GB-hour)",
        0.25,
        0.5,
        0.25 * FARGATE_VCPU_HOUR + 0.5 * FARGATE_GB_HOUR,
    ),
    Host(
        f"EC2 t4g.nano (2 vCPU burstable, 0.5 GiB; ${EC2_T4G_NANO_HOUR} per hour)",
        2,
        0.5,
        EC2_T4G_NANO_HOUR,
    ),
)


def cost_figures(
    reference: Mapping[str, Any],
    cold: Mapping[str, Any],
    fleet: Mapping[int, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """A month at list prices, from sections 1, 2, 4 and 7's figures: results.json's
    ``cost`` figures, which ``section()`` renders."""
    schedule_minutes = int(template_default("ScheduleMinutes"))
    memory_mb = int(cold["memory_mb"])
    passes = HOURS_PER_MONTH * 60 // schedule_minutes
    gb = memory_mb / 1024

    def lambda_month(seconds: float) -> tuple[float, float]:
        billed = math.ceil(seconds * 1000) / 1000  # 1 ms billing granularity
        gb_seconds = passes * billed * gb
        return gb_seconds, gb_seconds * LAMBDA_GB_SECOND + passes * LAMBDA_PER_REQUEST

    metrics = int(reference["metrics_requested"])
    requests = int(reference["base_requests"])
    ours_cw = passes * metrics * GETMETRICDATA_PER_METRIC
    base_cw = passes * requests * GETMETRICSTATISTICS_PER_REQUEST
    gb_s, ours_lambda = lambda_month(cold["warm_invocation_s"])
    base_rss = float(reference["base_rss_mb"])
    rows: list[dict[str, Any]] = [
        {
            "scenario": f"product, reference fleet: Lambda {memory_mb} MB",
            "runs_as": f"{passes:,} invocations x {ms(cold['warm_invocation_s'])} = "
            f"{gb_s:,.0f} GB-s",
            "compute_usd": ours_lambda,
            "cloudwatch_usd": ours_cw,
            "cloudwatch_counted": f"{metrics} metrics a pass",
        }
    ]
    for host in HOSTS:
        fits = "fits" if base_rss < host.memory_gb * 1024 else "does NOT fit"
        rows.append(
            {
                "scenario": f"older approach, reference fleet: {host.name}",
                "runs_as": f"{HOURS_PER_MONTH} h; its peak RSS {base_rss:.0f} MB {fits}",
                "compute_usd": HOURS_PER_MONTH * host.hourly_usd,
                "cloudwatch_usd": base_cw,
                "cloudwatch_counted": f"{requests} requests a pass",
            }
        )
    if fleet:
        n = max(fleet)
        fleet_gb_s, fleet_lambda = lambda_month(fleet[n]["warm_invocation_s"])
        fits = "fits" if fleet[n]["rss_mb"] < memory_mb else "does NOT fit"
        rows.append(
            {
                "scenario": f"product, {n} PostgreSQL targets (section 7): Lambda {memory_mb} MB",
                "runs_as": f"{passes:,} invocations x {ms(fleet[n]['warm_invocation_s'])} = "
                f"{fleet_gb_s:,.0f} GB-s; its peak RSS {fleet[n]['rss_mb']:.0f} MB {fits}",
                "compute_usd": fleet_lambda,
                "cloudwatch_usd": 0.0,
                "cloudwatch_counted": "none (no CloudWatch ids)",
            }
        )
    for row in rows:
        row["total_usd"] = row["compute_usd"] + row["cloudwatch_usd"]
    cheapest_host = min(HOSTS, key=lambda h: h.hourly_usd)
    return {
        "schedule_minutes": schedule_minutes,
        "passes_per_month": passes,
        "memory_mb": memory_mb,
        "product_usd": ours_lambda + ours_cw,
        "older_cheapest_host_usd": HOURS_PER_MONTH * cheapest_host.hourly_usd + base_cw,
        "prices": {
            "lambda_per_gb_second": LAMBDA_GB_SECOND,
            "getmetricdata_per_1000_metrics": GETMETRICDATA_PER_METRIC * 1000,
            "getmetricstatistics_per_1000_requests": GETMETRICSTATISTICS_PER_REQUEST * 1000,
            "region": PRICES["region"],
            "read_on": PRICES["read_on"],
        },
        "rows": rows,
    }


def section(figures: Mapping[str, Any]) -> Section:
    """Section 8 of the report (bench/section.py), from the stored figures only."""
    price = figures["prices"]
    return Section(
        question="What does a month cost at list prices, against the older approach on a host "
        "of its own?",
        method=(
            f"A pass every {figures['schedule_minutes']} min (template.yaml's ScheduleMinutes "
            f"default): {figures['passes_per_month']:,} passes in a 30-day month; the older "
            "exporter is taken to be scraped at the same cadence (an input). Product: every "
            "invocation billed at the measured warm invocation (pass + push, section 4), "
            f"rounded up to the ms, x {figures['memory_mb']} MB (template.yaml's MemorySize "
            f"default), at ${price['lambda_per_gb_second']} per GB-s plus $0.20 per million "
            f"requests; GetMetricData at ${price['getmetricdata_per_1000_metrics']:.2f} per "
            "1,000 metrics requested (section 2's count). Older approach: its host runs all "
            f"month ({HOURS_PER_MONTH} h), its peak RSS (section 1) against the host's memory; "
            f"GetMetricStatistics at ${price['getmetricstatistics_per_1000_requests']:.2f} per "
            f"1,000 requests. List prices, {price['region']}, read {price['read_on']}, "
            "on-demand, no free tier (bench/prices.json)."
        ),
        command="computed from sections 1, 2, 4 and 7 (bench/cost.py)",
        table=Table(
            (
                "scenario",
                "runs as",
                "compute per month ($)",
                "CloudWatch API per month ($)",
                "counted",
                "total per month ($)",
            ),
            [
                (
                    r["scenario"],
                    r["runs_as"],
                    round(r["compute_usd"], 2),
                    round(r["cloudwatch_usd"], 2),
                    r["cloudwatch_counted"],
                    round(r["total_usd"], 2),
                )
                for r in figures["rows"]
            ],
        ),
        no_goal="A comparison with the older approach, which sets no limit.",
        notes=[
            "The reference fleet costs "
            f"{quantity(figures['product_usd'], '$')} a month with the product against "
            f"{quantity(figures['older_cheapest_host_usd'], '$')} for the older approach on "
            "its cheapest host ("
            f"{quantity(figures['older_cheapest_host_usd'] / figures['product_usd'], 'x')}).",
            "What remote write, EMF and each sink cost at fleet sizes: the remote write and "
            "cost per sink sections.",
        ],
    )
