"""The Debian `prometheus-pushgateway` binary on 127.0.0.1, in-memory only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.standins._process import (
    ServerProcess,
    StandinError,
    http_ok,
    http_request,
    require_binary,
    wait_until,
)

BINARY = "prometheus-pushgateway"
# Added by the Pushgateway to every group; not something the collector pushed.
META_METRICS = frozenset({"push_time_seconds", "push_failure_time_seconds"})

SampleKey = tuple[str, frozenset[tuple[str, str]]]


class Pushgateway(ServerProcess):
    what = "Pushgateway"
    slug = "pushgateway"
    log_name = "pushgateway.log"

    def __init__(self, *, binary: str = BINARY, start_timeout: float = 15.0) -> None:
        super().__init__(start_timeout=start_timeout)
        self.binary = binary
        self._exe = binary

    @property
    def url(self) -> str:
        """Base URL, also the `gateway` argument of prometheus_client.push_to_gateway."""
        return f"http://{self.host}:{self.port}"

    def prepare(self, base_dir: Path) -> None:
        self._exe = require_binary(self.binary, "prometheus-pushgateway")

    def command(self, port: int) -> list[str]:
        return [
            self._exe,
            f"--web.listen-address={self.host}:{port}",
            "--persistence.file=",
            "--web.enable-admin-api",
            "--log.level=warn",
        ]

    def ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    def __repr__(self) -> str:
        return f"Pushgateway(url={self.url!r}, pid={self.pid})"

    # -- inspection ----------------------------------------------------------------------

    def wipe(self) -> None:
        """Delete every group (admin API), and wait until it is done: the Pushgateway answers
        202 and applies the wipe later, so a read right after it may still see the groups."""
        http_request(f"{self.url}/api/v1/admin/wipe", method="PUT")
        wait_until(lambda: not self.groups(), what="Pushgateway wipe", timeout=10)

    def delete_job(self, job: str) -> None:
        """Delete every group of ``job`` (a test's own), so the session's Pushgateway does not
        grow with every test: its /metrics, which the collector reads back, stays small."""
        from middleware_monitoring.config import PushgatewaySettings
        from middleware_monitoring.pushgateway_groups import delete_groups

        keys = [
            tuple(sorted((k, v) for k, v in group["labels"].items() if k != "job"))
            for group in self.groups()
            if group["labels"].get("job") == job
        ]
        settings = PushgatewaySettings(self.url, job, None, None, 5.0, 0)
        _, failed = delete_groups(settings, keys, time.monotonic() + 60.0)
        if failed:
            raise StandinError(f"Pushgateway: groups of {job} not deleted: {failed}")

    def groups(self) -> list[dict[str, Any]]:
        """The groups as the Pushgateway's JSON API reports them (`labels`, metrics...)."""
        body = json.loads(http_request(f"{self.url}/api/v1/metrics"))
        if body.get("status") != "success":
            raise StandinError(f"Pushgateway /api/v1/metrics: {body}")
        data: list[dict[str, Any]] = body.get("data") or []
        return data

    def metrics_text(self) -> str:
        return http_request(f"{self.url}/metrics").decode()

    def samples(
        self, job: str, instance: str | None = None, *, include_meta: bool = False
    ) -> dict[SampleKey, float]:
        """Samples pushed under grouping key job (+ instance).

        Keys are (sample name, frozenset of labels) where `job` and `instance` are left
        out, since they are the filter, and so are the grouping labels `collector` and
        `shard`:
        ``samples("mm", "db1")[("pg_up", frozenset())] == 1.0``. The Pushgateway's
        own push_time_seconds/push_failure_time_seconds are left out unless
        `include_meta`.
        """
        out: dict[SampleKey, float] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                labels = dict(sample.labels)
                if labels.get("job") != job:
                    continue
                if instance is not None and labels.get("instance", "") != instance:
                    continue
                if not include_meta and sample.name in META_METRICS:
                    continue
                for grouping in ("job", "instance", "collector", "shard"):
                    labels.pop(grouping, None)
                out[(sample.name, frozenset(labels.items()))] = float(sample.value)
        return out
