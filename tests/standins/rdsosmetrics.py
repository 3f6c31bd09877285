"""Enhanced Monitoring events as RDS writes them to the ``RDSOSMetrics`` log group (one JSON
message per event, the log stream named after the instance's DbiResourceId), and a helper
that puts them into moto's CloudWatch Logs.

The shapes follow AWS's field tables, group by group and field by field (names, nesting,
units): "OS metrics in Enhanced Monitoring" of the RDS User Guide (RDS PostgreSQL) and of the
Aurora User Guide (Aurora, whose diskIO has the cluster storage entry with readLatency,
readThroughput, writeLatency, writeThroughput and diskQueueDepth, and no device):

- https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Monitoring-Available-OS-Metrics.html
- https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_Monitoring-Available-OS-Metrics.html

The Aurora storage entry's auroraStorageBytesRx / auroraStorageBytesTx are named as the
Performance Insights counters page lists them (os.diskIO.auroraStorage.*, "Detailed Database
Metrics" of the Aurora User Guide), which mirror Enhanced Monitoring's fields.

Those pages give the fields, not a whole event; the numbers here are chosen so that every
unit conversion shows in the tests (kB x 1024, ms / 1000).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final

LOG_GROUP: Final = "RDSOSMetrics"


def iso(timestamp: float) -> str:
    """The event's ``timestamp`` field: ISO 8601, UTC, whole seconds."""
    return dt.datetime.fromtimestamp(int(timestamp), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rds_postgres_event(resource_id: str, instance: str, timestamp: float) -> dict[str, Any]:
    """An RDS PostgreSQL instance (the RDS table's groups)."""
    return {
        "engine": "POSTGRES",
        "instanceID": instance,
        "instanceResourceID": resource_id,
        "timestamp": iso(timestamp),
        "version": 1.0,
        "uptime": "12 days, 3:04:05",
        "numVCPUs": 2,
        "cpuUtilization": {
            "guest": 0.0,
            "irq": 0.02,
            "system": 1.5,
            "wait": 0.25,
            "idle": 90.5,
            "user": 7.0,
            "total": 9.5,
            "steal": 0.1,
            "nice": 0.63,
        },
        "loadAverageMinute": {"one": 0.5, "five": 0.25, "fifteen": 0.125},
        "memory": {
            "writeback": 0,
            "hugePagesFree": 0,
            "hugePagesRsvd": 0,
            "hugePagesSurp": 0,
            "cached": 2048000,
            "hugePagesSize": 2048,
            "free": 512000,
            "hugePagesTotal": 0,
            "inactive": 1024000,
            "pageTables": 8192,
            "dirty": 256,
            "mapped": 128000,
            "active": 2560000,
            "total": 4000000,
            "slab": 64000,
            "buffers": 32000,
        },
        "tasks": {
            "sleeping": 120,
            "zombie": 0,
            "running": 2,
            "stopped": 0,
            "total": 122,
            "blocked": 1,
        },
        "swap": {"cached": 0, "total": 4096, "free": 3072, "in": 0.0, "out": 0.0},
        "network": [{"interface": "eth0", "rx": 2048.5, "tx": 4096.25}],
        "diskIO": [
            {
                "writeKbPS": 100.5,
                "readIOsPS": 3.5,
                "await": 2.5,
                "readKbPS": 64.0,
                "rrqmPS": 0,
                "util": 4.25,
                "avgQueueLen": 0.75,
                "tps": 11.0,
                "readKb": 3840,
                "device": "rdsdev",
                "writeKb": 6030,
                "avgReqSz": 15.0,
                "wrqmPS": 1.0,
                "writeIOsPS": 7.5,
            }
        ],
        "physicalDeviceIO": [
            {
                "writeKbPS": 50.0,
                "readIOsPS": 1.0,
                "await": 1.0,
                "readKbPS": 32.0,
                "rrqmPS": 0,
                "util": 2.0,
                "avgQueueLen": 0.5,
                "tps": 5.0,
                "readKb": 1920,
                "device": "nvme1n1",
                "writeKb": 3000,
                "avgReqSz": 16.0,
                "wrqmPS": 0.5,
                "writeIOsPS": 4.0,
            }
        ],
        "fileSys": [
            {
                "used": 1048576,
                "name": "rdsfilesys",
                "usedFiles": 2650,
                "usedFilePercent": 0.13,
                "maxFiles": 1966080,
                "mountPoint": "/rdsdbdata",
                "total": 20971520,
                "usedPercent": 5.0,
            }
        ],
        "processList": [
            # Two PostgreSQL backends (one series "postgres": CPU summed, memory summed over
            # the two processes), the summaries, and a quiet process.
            {
                "vss": 400000,
                "name": "postgres",
                "tgid": 101,
                "parentID": 1,
                "memoryUsedPc": 2.5,
                "cpuUsedPc": 4.0,
                "id": 101,
                "rss": 100000,
            },
            {
                "vss": 400000,
                "name": "postgres",
                "tgid": 102,
                "parentID": 1,
                "memoryUsedPc": 1.5,
                "cpuUsedPc": 2.5,
                "id": 102,
                "rss": 60000,
            },
            {
                "vss": 3244792,
                "name": "RDS processes",
                "tgid": 0,
                "parentID": 0,
                "memoryUsedPc": 2.75,
                "cpuUsedPc": 0.75,
                "id": 0,
                "rss": 441652,
            },
            {
                "vss": 647304,
                "name": "OS processes",
                "tgid": 0,
                "parentID": 0,
                "memoryUsedPc": 0.25,
                "cpuUsedPc": 0.5,
                "id": 0,
                "rss": 22600,
            },
            {
                "vss": 10000,
                "name": "postgres: logger",
                "tgid": 103,
                "parentID": 1,
                "memoryUsedPc": 0.125,
                "cpuUsedPc": 0.0,
                "id": 103,
                "rss": 5000,
            },
        ],
    }


def aurora_postgres_event(resource_id: str, instance: str, timestamp: float) -> dict[str, Any]:
    """An Aurora PostgreSQL instance (the Aurora table): its diskIO holds the cluster storage
    entry (no device) and the local temporary storage ``rdstemp``; threads of one process
    (same tgid) each report the process's memory."""
    event = rds_postgres_event(resource_id, instance, timestamp)
    event["engine"] = "AURORA_POSTGRES"
    event["numVCPUs"] = 4
    del event["physicalDeviceIO"]
    event["diskIO"] = [
        {
            "readLatency": 1.25,
            "writeLatency": 2.5,
            "writeThroughput": 8192.0,
            "readThroughput": 4096.0,
            "readIOsPS": 12.0,
            "diskQueueDepth": 3.0,
            "writeIOsPS": 24.0,
            "auroraStorageBytesRx": 65536.0,
            "auroraStorageBytesTx": 32768.0,
        },
        {
            "writeKbPS": 16.0,
            "readIOsPS": 0.5,
            "await": 0.75,
            "readKbPS": 8.0,
            "rrqmPS": 0,
            "util": 0.5,
            "avgQueueLen": 0.25,
            "tps": 2.0,
            "readKb": 480,
            "device": "rdstemp",
            "writeKb": 960,
            "avgReqSz": 8.0,
            "wrqmPS": 0,
            "writeIOsPS": 1.5,
        },
    ]
    event["fileSys"] = [
        {
            "used": 524288,
            "name": "rdstemp",
            "usedFiles": 12,
            "usedFilePercent": 0.01,
            "maxFiles": 983040,
            "mountPoint": "/rdstemp",
            "total": 8388608,
            "usedPercent": 6.25,
        }
    ]
    event["processList"] = [
        {
            "vss": 11170084,
            "name": "aurora",
            "tgid": 8455,
            "parentID": 1,
            "memoryUsedPc": 66.5,
            "cpuUsedPc": 0.5,
            "id": 8455,
            "rss": 10487696,
        },
        {
            "vss": 11170084,
            "name": "aurora",
            "tgid": 8455,
            "parentID": 1,
            "memoryUsedPc": 66.5,
            "cpuUsedPc": 1.25,
            "id": 8782,
            "rss": 10487696,
        },
        {
            "vss": 3244792,
            "name": "RDS processes",
            "tgid": 0,
            "parentID": 0,
            "memoryUsedPc": 2.75,
            "cpuUsedPc": 0.75,
            "id": 0,
            "rss": 441652,
        },
    ]
    return event


def put_event(logs: Any, resource_id: str, message: str | dict[str, Any], timestamp: float) -> None:
    """One event in ``resource_id``'s stream (made if missing), as RDS would write it."""
    if not logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]:
        logs.create_log_group(logGroupName=LOG_GROUP)
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=resource_id)
    if not any(s["logStreamName"] == resource_id for s in streams["logStreams"]):
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=resource_id)
    text = message if isinstance(message, str) else json.dumps(message)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=resource_id,
        logEvents=[{"timestamp": int(timestamp * 1000), "message": text}],
    )
