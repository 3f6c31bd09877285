"""The Debian `prometheus` binary scraping a Pushgateway, as Grafana would see the data, or
receiving remote write (``remote_write_receiver=True``: `--web.enable-remote-write-receiver`,
at ``remote_write_url``)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.standins._process import (
    ServerProcess,
    StandinError,
    http_ok,
    http_request,
    log_tail,
    require_binary,
)

BINARY = "prometheus"

_GLOBAL = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
"""
_SCRAPE = """\
scrape_configs:
  - job_name: pushgateway
    # Keep the job/instance the collector pushed instead of the gateway's own.
    honor_labels: true
    static_configs:
      - targets: ["{target}"]
"""


class Prometheus(ServerProcess):
    what = "Prometheus"
    slug = "prometheus"
    log_name = "prometheus.log"
    stop_timeout = 15.0  # flushing the TSDB head takes longer than a plain server's exit

    def __init__(
        self,
        scrape_target: str | None,
        *,
        remote_write_receiver: bool = False,
        binary: str = BINARY,
        start_timeout: float = 30.0,
    ) -> None:
        """`scrape_target` is host:port of the Pushgateway (Pushgateway.address), or None to
        scrape nothing."""
        super().__init__(start_timeout=start_timeout)
        self.scrape_target = scrape_target
        self.remote_write_receiver = remote_write_receiver
        self.binary = binary
        self._exe = binary

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def prepare(self, base_dir: Path) -> None:
        self._exe = require_binary(self.binary, "prometheus")
        scrape = _SCRAPE.format(target=self.scrape_target) if self.scrape_target else ""
        (base_dir / "prometheus.yml").write_text(_GLOBAL + scrape)

    def command(self, port: int) -> list[str]:
        assert self.base_dir is not None  # set by start() before command() is asked
        return [
            self._exe,
            f"--config.file={self.base_dir / 'prometheus.yml'}",
            f"--web.listen-address={self.host}:{port}",
            f"--storage.tsdb.path={self.base_dir / 'tsdb'}",
            "--log.level=warn",
            *(["--web.enable-remote-write-receiver"] if self.remote_write_receiver else []),
        ]

    def ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    def __repr__(self) -> str:
        return f"Prometheus(url={self.url!r}, scraping={self.scrape_target!r}, pid={self.pid})"

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query (at Unix time ``at``, default now); the `result` list of
        /api/v1/query (vector: metric + value)."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        qs = urllib.parse.urlencode(params)
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
        raise StandinError(
            f"Prometheus: {expr!r} did not match within {timeout:.0f} s; last result {result}\n"
            f"--- log tail ---\n{log_tail(self.log_path)}"
        )
