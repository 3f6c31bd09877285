"""Section 8 of `make bench`: a month of each approach at list prices. The product is billed
as Lambda (GB-seconds from the measured warm invocation and the template's memory) plus the
CloudWatch metrics it requests per pass (counted); the older exporter as what it is, a
process that runs all month (the smallest Fargate task, or the smallest EC2 instance), plus
the GetMetricStatistics requests it makes per pass (counted). Prices and sizes are inputs,
stated in the report; a remote-write module's monthly figures join as rows when it ran."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.harness import ROOT, template_default
from bench.report import Figure, Part, flatten, ms, times, usd


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


def remote_write_rows(figures: Mapping[str, Any] | None) -> list[tuple[str, float, str]]:
    """(name, monthly USD, command) for every ``...monthly_usd`` figure of bench/remote_write.py's
    ``cost`` answer."""
    if not figures or "cost" not in figures:
        return []
    command = str(figures.get("command", "bench/remote_write.py measure()"))
    return [
        (f"cost{name}" if name.startswith("[") else f"cost.{name}", float(value), command)
        for name, value in flatten(figures["cost"])
        if name.endswith("monthly_usd") and isinstance(value, int | float)
    ]


def cost(
    reference: Mapping[str, Any],
    cold: Mapping[str, Any],
    fleet: Mapping[int, Mapping[str, Any]] | None,
    remote_write: Mapping[str, Any] | None,
) -> Part:
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
    part = Part("8", "Cost: a month at list prices")
    rows: list[tuple[Any, ...]] = [
        (
            f"product, reference fleet: Lambda {memory_mb} MB",
            f"{passes:,} invocations x {ms(cold['warm_invocation_s'])} = {gb_s:,.0f} GB-s",
            usd(ours_lambda),
            f"{metrics} metrics/pass: {usd(ours_cw)}",
            usd(ours_lambda + ours_cw),
        )
    ]
    for host in HOSTS:
        compute = HOURS_PER_MONTH * host.hourly_usd
        fits = "fits" if base_rss < host.memory_gb * 1024 else "does NOT fit"
        rows.append(
            (
                f"older approach, reference fleet: {host.name}",
                f"{HOURS_PER_MONTH} h; its peak RSS {base_rss:.0f} MB {fits}",
                usd(compute),
                f"{requests} requests/pass: {usd(base_cw)}",
                usd(compute + base_cw),
            )
        )
    cheapest_host = min(HOSTS, key=lambda h: h.hourly_usd)
    base_total = HOURS_PER_MONTH * cheapest_host.hourly_usd + base_cw
    if fleet:
        n = max(fleet)
        fleet_gb_s, fleet_lambda = lambda_month(fleet[n]["warm_invocation_s"])
        fits = "fits" if fleet[n]["rss_mb"] < memory_mb else "does NOT fit"
        rows.append(
            (
                f"product, {n} PostgreSQL targets (section 7): Lambda {memory_mb} MB",
                f"{passes:,} invocations x {ms(fleet[n]['warm_invocation_s'])} = "
                f"{fleet_gb_s:,.0f} GB-s; its peak RSS {fleet[n]['rss_mb']:.0f} MB {fits}",
                usd(fleet_lambda),
                "none (no CloudWatch ids)",
                usd(fleet_lambda),
            )
        )
    extra = remote_write_rows(remote_write)
    rows += [(f"bench/remote_write.py: {name}", "", "", "", usd(value)) for name, value, _ in extra]
    part.figures.append(
        Figure(
            "8",
            f"Monthly cost, reference fleet, a pass every {schedule_minutes} min",
            f"{usd(ours_lambda + ours_cw)} (Lambda {usd(ours_lambda)} + GetMetricData "
            f"{usd(ours_cw)})",
            f"older approach, cheapest host: {usd(base_total)}",
            times(base_total / (ours_lambda + ours_cw)),
            "computed from sections 1, 2 and 4 (bench/cost.py)",
        )
    )
    part.add(
        f"A pass every {schedule_minutes} min (template.yaml's ScheduleMinutes default): "
        f"{passes:,} passes in a 30-day month; the older exporter is taken to be scraped at the "
        "same cadence (an input). Product: every invocation billed at the measured warm "
        "invocation (pass + push, section 4), rounded up to the ms, x "
        f"{memory_mb} MB (template.yaml's MemorySize default), at ${LAMBDA_GB_SECOND} per "
        "GB-s plus $0.20 per million requests; "
        f"CloudWatch GetMetricData at ${GETMETRICDATA_PER_METRIC * 1000:.2f} per 1,000 metrics "
        "requested, counted per pass (section 2's run). Older approach: the host runs all "
        f"month ({HOURS_PER_MONTH} h), its peak RSS (section 1's runs) against the host's "
        f"memory; GetMetricStatistics at ${GETMETRICSTATISTICS_PER_REQUEST * 1000:.2f} per "
        "1,000 requests, counted per pass (section 2's run). Prices: list prices, "
        f"{PRICES['region']}, read {PRICES['read_on']}, on-demand, no free tier (inputs in "
        "bench/prices.json).",
        "",
    )
    part.table(("approach", "runs as", "compute / month", "CloudWatch API / month", "total"), rows)
    if extra:
        part.add(
            "Rows from bench/remote_write.py are its own figures (section Remote write), as it "
            "returned them."
        )
    return part
