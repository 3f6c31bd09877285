"""The Debian `prometheus-pushgateway` binary on 127.0.0.1, in-memory only."""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from prometheus_client.parser import text_string_to_metric_families

from tests.standins._process import (
    StandinError,
    free_port,
    http_ok,
    http_request,
    stop_process,
    wait_until,
)

BINARY = "prometheus-pushgateway"
# Added by the Pushgateway to every group; not something the collector pushed.
META_METRICS = frozenset({"push_time_seconds", "push_failure_time_seconds"})

SampleKey = tuple[str, frozenset[tuple[str, str]]]


class Pushgateway:
    def __init__(self, *, binary: str = BINARY, start_timeout: float = 15.0) -> None:
        self.binary = binary
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self.base_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL, also the `gateway` argument of prometheus_client.push_to_gateway."""
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """host:port, as Prometheus scrape targets want it."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> Self:
        if self.pid is not None:
            return self
        exe = shutil.which(self.binary)
        if exe is None:
            raise StandinError(f"{self.binary} not on PATH; apt-get install prometheus-pushgateway")
        self.base_dir = Path(tempfile.mkdtemp(prefix="standin-pushgateway-"))
        log_path = self.base_dir / "pushgateway.log"
        for attempt in range(1, 4):
            self.port = free_port()
            with log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [
                        exe,
                        f"--web.listen-address={self.address}",
                        "--persistence.file=",
                        "--web.enable-admin-api",
                        "--log.level=warn",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_until(
                    lambda: http_ok(f"{self.url}/-/ready"),
                    what=f"Pushgateway on {self.address}",
                    timeout=self.start_timeout,
                    proc=self._proc,
                    log=log_path,
                )
                break
            except StandinError:
                stop_process(self._proc)
                self._proc = None
                if attempt == 3:
                    raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        atexit.unregister(self.stop)
        stop_process(self._proc)
        self._proc = None
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Pushgateway(url={self.url!r}, pid={self.pid})"

    # -- inspection ----------------------------------------------------------------------

    def wipe(self) -> None:
        """Delete every group (admin API)."""
        http_request(f"{self.url}/api/v1/admin/wipe", method="PUT")

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

        Keys are (sample name, frozenset of labels) where the grouping labels
        `job` and `instance` are left out, since they are the filter:
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
                labels.pop("job", None)
                labels.pop("instance", None)
                out[(sample.name, frozenset(labels.items()))] = float(sample.value)
        return out
