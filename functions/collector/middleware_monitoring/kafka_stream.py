"""The optional query-statistics stream (SPEC 6): after each pass, one JSON message per top
statement to Kafka (topic ``pgsql_query_message``) for a Kafka -> Logstash -> Elasticsearch
pipeline.

The messages are built from the pass's own ``pg_query_*`` families, so they carry exactly
the values that were pushed and PostgreSQL is not queried twice. Sending is bounded by
KAFKA_TIMEOUT_SECONDS and runs alongside the metrics push (``push_and_stream``), so a broker
that is down neither delays nor loses the push; it is logged once per pass and reported as
``middleware_collector_up{source="kafka"} 0`` in a group of its own
(instance ``<COLLECTOR_INSTANCE_NAME>-kafka``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from .config import KafkaSettings
from .health import health_families
from .model import PassResult, SourceOutcome
from .postgres.source import STATEMENT_LABELS, STATEMENT_SERIES
from .sinks import Sink

logger = logging.getLogger(__name__)

SOURCE: Final = "kafka"
# The older exporter's Logstash pipelines route on `if "pgsql" in [tags]`.
TAGS: Final = ("pgsql",)
# A value the pass did not have (mean of 0 calls, hit percent of a statement that touched no
# block) is sent as null.
QUERY_VALUES: Final = tuple(name for name, _ in STATEMENT_SERIES)
# Counts are whole numbers; sending them as integers keeps Elasticsearch's dynamic mapping
# at `long` for them.
_COUNTS: Final = frozenset(
    {
        "pg_query_calls",
        "pg_query_rows",
        "pg_query_shared_blks_hit",
        "pg_query_shared_blks_read",
        "pg_query_temp_blks_written",
    }
)

MESSAGES_SENT: Final = "middleware_query_stream_messages_sent"


def _iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def statement_messages(result: PassResult, env_name: str, timestamp: float) -> list[dict[str, Any]]:
    """One message per top statement of every target, from the pass's pg_query_* families."""
    messages: list[dict[str, Any]] = []
    for target in result.targets:
        by_statement: dict[tuple[str, ...], dict[str, Any]] = {}
        for family in target.families:
            if not family.name.startswith("pg_query_"):
                continue
            for sample in family.samples:
                key = tuple(sample.labels.get(label, "") for label in STATEMENT_LABELS)
                message = by_statement.get(key)
                if message is None:
                    message = {
                        "timestamp": _iso(timestamp),
                        "env_name": env_name,
                        "target": target.target,
                        "tags": list(TAGS),
                        **dict(zip(STATEMENT_LABELS, key, strict=True)),
                        **dict.fromkeys(QUERY_VALUES),
                    }
                    by_statement[key] = message
                value: float | int = sample.value
                if sample.name in _COUNTS and float(value).is_integer():
                    value = int(value)
                message[sample.name] = value
        messages.extend(by_statement.values())
    return messages


def _reason(exc: BaseException) -> str:
    from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    if isinstance(exc, KafkaConnectionError):
        return "unreachable"
    if isinstance(exc, KafkaTimeoutError):
        # kafka-python ends a bootstrap that reached no broker at all in a timeout.
        return "unreachable" if "bootstrap" in str(exc).lower() else "timeout"
    if isinstance(exc, KafkaError):
        return "kafka_error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "error"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    # kafka-python's errors already start with their class name.
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


class QueryStream:
    """Sends a pass's statements to Kafka. Keeps its producer while the function instance is
    warm; a failed pass drops it (and whatever it still buffers, which would be stale by the
    next pass) and the next pass connects anew."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        producer_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._producer_factory = producer_factory
        self._clock = clock
        self._producer: Any = None
        self.last_success: dict[str, float] = {}
        self.last_sent = 0

    def _connect(self) -> Any:
        if self._producer is None:
            # Imported here: kafka-python costs ~240 ms of cold start, paid only when enabled.
            from kafka import KafkaProducer

            timeout_ms = int(self.settings.timeout_seconds * 1000)
            factory = self._producer_factory or KafkaProducer
            self._producer = factory(
                bootstrap_servers=list(self.settings.bootstrap_servers),
                client_id="middleware-monitoring",
                acks=1,
                bootstrap_timeout_ms=timeout_ms,
                max_block_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
                delivery_timeout_ms=2 * timeout_ms,
                reconnect_backoff_max_ms=1000,
            )
        return self._producer

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            # kafka-python 3.0 flushes inside close() and, when that flush times out, gives up
            # before stopping its I/O thread (which then blocks again in __del__). Failing the
            # buffered batches first lets close(timeout=0) finish at once.
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()
            accumulator = getattr(producer, "_accumulator", None)
            if accumulator is not None:
                accumulator.abort_incomplete_batches()
            producer.close(timeout=0)
        except Exception:  # already broken; it is being thrown away
            logger.debug("closing the Kafka producer failed", exc_info=True)

    def send(self, result: PassResult, deadline: float | None = None) -> SourceOutcome:
        """Send the pass's statements; never raises, returns how it went. ``deadline`` (a
        ``time.monotonic()`` value) bounds the wait for acknowledgements too."""
        started = time.monotonic()
        messages = statement_messages(result, self.settings.env_name, self._clock())
        futures: list[Any] = []
        try:
            producer = self._connect()
            for message in messages:
                futures.append(
                    producer.send(
                        self.settings.topic,
                        key=f"{message['target']}/{message['queryid']}".encode(),
                        value=json.dumps(message, ensure_ascii=False).encode(),
                    )
                )
            remaining = self.settings.timeout_seconds - (time.monotonic() - started)
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
            producer.flush(timeout=max(remaining, 0.0))
            failed = [future for future in futures if not future.succeeded()]
            if failed:
                error = failed[0].exception
                if isinstance(error, BaseException):
                    raise error
                raise TimeoutError(f"{len(failed)} messages not acknowledged in time")
        except Exception as exc:
            self._drop_producer()
            sent = sum(1 for future in futures if future.succeeded())
            self.last_sent = sent
            reason = _reason(exc)
            detail = (
                f"{len(messages) - sent} of {len(messages)} statement messages not delivered "
                f"to {','.join(self.settings.bootstrap_servers)} topic {self.settings.topic}: "
                f"{_describe(exc)}"
            )
            logger.warning(
                "query stream down",
                extra={"source": SOURCE, "reason": reason, "detail": detail},
            )
            return SourceOutcome(SOURCE, False, time.monotonic() - started, reason, detail)
        self.last_sent = len(futures)
        self.last_success[SOURCE] = time.time()
        logger.debug("query stream sent", extra={"source": SOURCE, "messages": len(futures)})
        return SourceOutcome(SOURCE, True, time.monotonic() - started)

    def health(self, outcome: SourceOutcome) -> list[Metric]:
        """The stream's own health series, sent among the collector's own."""
        families: list[Metric] = list(health_families([outcome], self.last_success))
        families.append(
            GaugeMetricFamily(
                MESSAGES_SENT,
                "Statement messages the Kafka broker acknowledged this pass.",
                value=self.last_sent,
            )
        )
        return families

    def reserve_seconds(self) -> float:
        """Worst case of ``send``: a bootstrap that just makes it, then a metadata wait."""
        return 2 * self.settings.timeout_seconds

    def close(self) -> None:
        self._drop_producer()


def build_stream(settings: KafkaSettings | None) -> QueryStream | None:
    if settings is None:
        return None
    if settings.env_name_defaulted:
        logger.warning(
            "PG_ENV_NAME is not set",
            extra={
                "detail": f"KAFKA_SERVER is set without PG_ENV_NAME: statement messages are "
                f"tagged env_name={settings.env_name!r}; set PG_ENV_NAME (e.g. production)",
            },
        )
    return QueryStream(settings)


def send_reserve_seconds(stream: QueryStream | None, push_seconds: float) -> float:
    """Time to keep back from collection for ``push_and_stream``: the stream, then the push
    (which carries the stream's health)."""
    if stream is None:
        return push_seconds
    return stream.reserve_seconds() + push_seconds


def push_and_stream(
    sink: Sink,
    stream: QueryStream | None,
    result: PassResult,
    deadline: float | None = None,
    *,
    to_sink: PassResult | None = None,
) -> SourceOutcome | None:
    """Stream the pass's statements, then push the pass with the stream's health among the
    collector's own series: a sink that replaces one group per pass (the Pushgateway) has no
    second group to put it in. The stream gets its own reserve at most, so the push keeps
    its time however Kafka answers (a stream failure is an outcome, not an exception).
    Raises what ``sink.send`` raises. ``deadline`` (a ``time.monotonic()`` value; None: the
    reserves of the sink and the stream from now) bounds all of it. ``to_sink``: what the
    sink sends when it is not ``result`` itself (the pass cut to SERIES_BUDGET; the stream
    still gets every statement)."""
    pushed = result if to_sink is None else to_sink
    if deadline is None:
        deadline = time.monotonic() + send_reserve_seconds(stream, sink.reserve_seconds())
    if stream is None:
        sink.send(pushed, deadline)
        return None
    stream_deadline = min(
        deadline - sink.reserve_seconds(), time.monotonic() + stream.reserve_seconds()
    )
    outcome = stream.send(result, stream_deadline)
    pushed.collector.families.extend(stream.health(outcome))
    sink.send(pushed, deadline)
    return outcome
