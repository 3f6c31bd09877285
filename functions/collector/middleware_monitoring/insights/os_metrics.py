"""One Enhanced Monitoring event (the JSON message of an RDSOSMetrics log event) as the
``rds_os_*`` series of SPEC 17. Plain parsing, no AWS call.

The fields and their units are those of AWS's "OS metrics in Enhanced Monitoring" pages (RDS
and Aurora): memory, swap and file systems in kB (sent as bytes, x 1024), diskIO in kB/s
(x 1024) and milliseconds (/ 1000), network in bytes per second.

Aurora's cluster storage is a diskIO entry without a ``device`` (readIOsPS, writeIOsPS,
readThroughput and writeThroughput in bytes per second, readLatency and writeLatency in ms,
diskQueueDepth): it is sent as ``device="aurora-storage"``. processList entries of one name
are one series (CPU summed over them; memory summed over distinct processes, since the
threads of one process, same ``tgid``, report its memory each), so that a PostgreSQL
backend's pid never becomes a label.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

KIB: Final = 1024.0
AURORA_STORAGE: Final = "aurora-storage"
CPU_MODES: Final = ("guest", "irq", "system", "wait", "idle", "user", "steal", "nice", "total")
LOAD_PERIODS: Final = (("one", "1m"), ("five", "5m"), ("fifteen", "15m"))
SWAP_KINDS: Final = ("total", "free", "cached")

VCPUS: Final = "rds_os_vcpus"
CPU: Final = "rds_os_cpu_utilization_percent"
LOAD: Final = "rds_os_load_average"
MEMORY: Final = "rds_os_memory_bytes"
SWAP: Final = "rds_os_swap_bytes"
TASKS: Final = "rds_os_tasks"
NETWORK: Final = "rds_os_network_bytes_per_second"
DISK_IOPS: Final = "rds_os_disk_iops"
DISK_THROUGHPUT: Final = "rds_os_disk_throughput_bytes_per_second"
DISK_UTILIZATION: Final = "rds_os_disk_utilization_percent"
DISK_QUEUE: Final = "rds_os_disk_queue_length"
DISK_AWAIT: Final = "rds_os_disk_await_seconds"
DISK_LATENCY: Final = "rds_os_disk_latency_seconds"
AURORA_STORAGE_BYTES: Final = "rds_os_aurora_storage_bytes_per_second"
FS_SIZE: Final = "rds_os_filesystem_size_bytes"
FS_USED: Final = "rds_os_filesystem_used_bytes"
PROCESS_CPU: Final = "rds_os_process_cpu_percent"
PROCESS_MEMORY: Final = "rds_os_process_memory_percent"
SAMPLE_AGE: Final = "rds_os_sample_age_seconds"

_FAMILIES: Final = (
    (VCPUS, "Virtual CPUs of the DB instance (Enhanced Monitoring numVCPUs).", ()),
    (CPU, "CPU in use by mode, percent (Enhanced Monitoring cpuUtilization).", ("mode",)),
    (LOAD, "Processes requesting CPU time, averaged over the period.", ("period",)),
    (MEMORY, "Memory by kind, bytes (Enhanced Monitoring memory, hugePages* left out).", ("kind",)),
    (SWAP, "Swap by kind, bytes (total, free, cached).", ("kind",)),
    (TASKS, "Tasks by state (Enhanced Monitoring tasks).", ("state",)),
    (
        NETWORK,
        "Network traffic per interface and direction, bytes per second.",
        ("interface", "direction"),
    ),
    (DISK_IOPS, "I/O operations per second per device and op.", ("device", "op")),
    (DISK_THROUGHPUT, "Bytes per second read or written per device.", ("device", "op")),
    (DISK_UTILIZATION, "Percent of CPU time the device was busy with requests.", ("device",)),
    (DISK_QUEUE, "Requests waiting in the device's queue.", ("device",)),
    (DISK_AWAIT, "Time to answer a request (queue and service), seconds.", ("device",)),
    (
        DISK_LATENCY,
        "Aurora storage: time from a request's submission to its completion, seconds.",
        ("device", "op"),
    ),
    (
        AURORA_STORAGE_BYTES,
        "Aurora storage: bytes received (rx) and sent (tx) per second.",
        ("direction",),
    ),
    (FS_SIZE, "File system size, bytes.", ("mount",)),
    (FS_USED, "File system space in use, bytes.", ("mount",)),
    (PROCESS_CPU, "CPU used by the busiest processes (by name), percent.", ("process",)),
    (
        PROCESS_MEMORY,
        "Memory used by the busiest processes (by name), percent of the total.",
        ("process",),
    ),
    (SAMPLE_AGE, "How old the newest Enhanced Monitoring event is, seconds.", ()),
)


class MalformedEvent(ValueError):
    """The message is not an Enhanced Monitoring event: not a JSON object, or without a
    readable ``timestamp``."""


@dataclass
class ParsedEvent:
    """The families of one event (each holding at least one sample), its time, and the
    fields whose value was not a number (left out)."""

    families: list[Metric]
    taken_at: float
    age_seconds: float
    skipped: list[str] = field(default_factory=list)


def event_time(message: Mapping[str, Any], fallback_ms: int | None) -> float:
    raw = message.get("timestamp")
    if isinstance(raw, str):
        try:
            when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            return when.timestamp()
    if fallback_ms is not None:
        return fallback_ms / 1000.0
    raise MalformedEvent(f"no readable timestamp (got {raw!r})")


class _Families:
    def __init__(self) -> None:
        self.by_name = {
            name: GaugeMetricFamily(name, doc, labels=list(labels))
            for name, doc, labels in _FAMILIES
        }
        self.skipped: list[str] = []

    def add(
        self,
        name: str,
        labels: list[str],
        value: Any,
        where: str,
        scale: float = 1.0,
        per: float = 1.0,
    ) -> None:
        if value is None:
            return  # a field this engine or version does not send
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.skipped.append(where)
            return
        self.by_name[name].add_metric(labels, float(value) * scale / per)


def _items(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _group(message: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = message.get(key)
    return value if isinstance(value, Mapping) else {}


def parse_event(
    text: str,
    *,
    now: float,
    processes: int,
    event_timestamp_ms: int | None = None,
    max_age_seconds: float | None = None,
) -> ParsedEvent:
    """``text``: the log event's message. An event older than ``max_age_seconds`` gives only
    its age: a stream that stopped must not show its last values as current."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedEvent(f"not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(message, Mapping):
        raise MalformedEvent(f"not a JSON object but {type(message).__name__}")
    taken_at = event_time(message, event_timestamp_ms)
    age = max(0.0, now - taken_at)
    out = _Families()
    out.add(SAMPLE_AGE, [], age, "timestamp")
    if max_age_seconds is None or age <= max_age_seconds:
        _fill(out, message, processes)
    families: list[Metric] = [f for f in out.by_name.values() if f.samples]
    return ParsedEvent(families, taken_at, age, out.skipped)


def _fill(out: _Families, message: Mapping[str, Any], processes: int) -> None:
    out.add(VCPUS, [], message.get("numVCPUs"), "numVCPUs")
    cpu = _group(message, "cpuUtilization")
    for mode in CPU_MODES:
        out.add(CPU, [mode], cpu.get(mode), f"cpuUtilization.{mode}")
    load = _group(message, "loadAverageMinute")
    for key, period in LOAD_PERIODS:
        out.add(LOAD, [period], load.get(key), f"loadAverageMinute.{key}")
    for kind, value in sorted(_group(message, "memory").items()):
        if not kind.startswith("hugePages"):
            out.add(MEMORY, [kind], value, f"memory.{kind}", KIB)
    swap = _group(message, "swap")
    for kind in SWAP_KINDS:
        out.add(SWAP, [kind], swap.get(kind), f"swap.{kind}", KIB)
    for state, value in sorted(_group(message, "tasks").items()):
        out.add(TASKS, [state], value, f"tasks.{state}")
    for item in _items(message.get("network")):
        interface = str(item.get("interface", ""))
        for direction in ("rx", "tx"):
            out.add(NETWORK, [interface, direction], item.get(direction), f"network.{direction}")
    for item in _items(message.get("diskIO")):
        _disk(out, item)
    for item in _items(message.get("fileSys")):
        mount = str(item.get("mountPoint") or item.get("name") or "")
        out.add(FS_SIZE, [mount], item.get("total"), "fileSys.total", KIB)
        out.add(FS_USED, [mount], item.get("used"), "fileSys.used", KIB)
    _processes(out, _items(message.get("processList")), processes)


def _disk(out: _Families, item: Mapping[str, Any]) -> None:
    device = item.get("device")
    add: Callable[..., None] = out.add
    if device is None:  # Aurora's cluster storage
        name = AURORA_STORAGE
        for op in ("read", "write"):
            add(DISK_IOPS, [name, op], item.get(f"{op}IOsPS"), f"diskIO.{op}IOsPS")
            add(DISK_THROUGHPUT, [name, op], item.get(f"{op}Throughput"), f"diskIO.{op}Throughput")
            add(DISK_LATENCY, [name, op], item.get(f"{op}Latency"), f"diskIO.{op}Latency", per=1000)
        add(DISK_QUEUE, [name], item.get("diskQueueDepth"), "diskIO.diskQueueDepth")
        for direction, key in (("rx", "auroraStorageBytesRx"), ("tx", "auroraStorageBytesTx")):
            add(AURORA_STORAGE_BYTES, [direction], item.get(key), f"diskIO.{key}")
        return
    name = str(device)
    for op in ("read", "write"):
        add(DISK_IOPS, [name, op], item.get(f"{op}IOsPS"), f"diskIO.{op}IOsPS")
        add(DISK_THROUGHPUT, [name, op], item.get(f"{op}KbPS"), f"diskIO.{op}KbPS", KIB)
    add(DISK_UTILIZATION, [name], item.get("util"), "diskIO.util")
    add(DISK_QUEUE, [name], item.get("avgQueueLen"), "diskIO.avgQueueLen")
    add(DISK_AWAIT, [name], item.get("await"), "diskIO.await", per=1000)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _processes(out: _Families, entries: list[Mapping[str, Any]], top: int) -> None:
    cpu: dict[str, float] = {}
    memory: dict[str, dict[object, float]] = {}
    for entry in entries:
        name = entry.get("name")
        used_cpu, used_memory = _number(entry.get("cpuUsedPc")), _number(entry.get("memoryUsedPc"))
        if not isinstance(name, str) or used_cpu is None or used_memory is None:
            out.skipped.append("processList")
            continue
        cpu[name] = cpu.get(name, 0.0) + used_cpu
        # Threads of one process (same tgid) each repeat its memory; tgid 0 marks the
        # "OS processes" / "RDS processes" summaries, one entry each.
        process = entry.get("tgid") or entry.get("id")
        memory.setdefault(name, {})[process] = used_memory
    busiest = sorted(cpu, key=lambda n: (-cpu[n], n))[:top]
    for name in busiest:
        out.add(PROCESS_CPU, [name], cpu[name], "processList.cpuUsedPc")
        out.add(PROCESS_MEMORY, [name], sum(memory[name].values()), "processList.memoryUsedPc")
