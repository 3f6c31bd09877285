"""The Debian `prometheus` binary scraping a Pushgateway, as Grafana would see the data."""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.standins._process import (
    StandinError,
    free_port,
    http_ok,
    http_request,
    log_tail,
    stop_process,
    wait_until,
)

BINARY = "prometheus"

_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pushgateway
    # Keep the job/instance the collector pushed instead of the gateway's own.
    honor_labels: true
    static_configs:
      - targets: ["{target}"]
"""


class Prometheus:
    def __init__(
        self, scrape_target: str, *, binary: str = BINARY, start_timeout: float = 30.0
    ) -> None:
        """`scrape_target` is host:port of the Pushgateway (Pushgateway.address)."""
        self.scrape_target = scrape_target
        self.binary = binary
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self.base_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> Self:
        if self.pid is not None:
            return self
        exe = shutil.which(self.binary)
        if exe is None:
            raise StandinError(f"{self.binary} not on PATH; apt-get install prometheus")
        self.base_dir = Path(tempfile.mkdtemp(prefix="standin-prometheus-"))
        config = self.base_dir / "prometheus.yml"
        config.write_text(_CONFIG.format(target=self.scrape_target))
        log_path = self.base_dir / "prometheus.log"
        for attempt in range(1, 4):
            self.port = free_port()
            with log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [
                        exe,
                        f"--config.file={config}",
                        f"--web.listen-address={self.host}:{self.port}",
                        f"--storage.tsdb.path={self.base_dir / 'tsdb'}",
                        "--log.level=warn",
                    ],
                    cwd=self.base_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_until(
                    lambda: http_ok(f"{self.url}/-/ready"),
                    what=f"Prometheus on {self.host}:{self.port}",
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
        stop_process(self._proc, timeout=15.0)
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
        return f"Prometheus(url={self.url!r}, scraping={self.scrape_target!r}, pid={self.pid})"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the `result` list of /api/v1/query (vector: metric + value)."""
        qs = urllib.parse.urlencode({"query": expr})
        body = json.loads(http_request(f"{self.url}/api/v1/query?{qs}"))
        if body.get("status") != "success":
            raise StandinError(f"Prometheus query {expr!r}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self,
        expr: str,
        timeout: float = 30.0,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
    ) -> list[dict[str, Any]]:
        """Poll `query(expr)` until `predicate(result)` (default: non-empty)."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.25)
        log = self.base_dir / "prometheus.log" if self.base_dir else None
        raise StandinError(
            f"Prometheus: {expr!r} did not match within {timeout:.0f} s; last result {result}\n"
            f"--- log tail ---\n{log_tail(log)}"
        )
