"""AWS Lambda entry point: one collection pass, one push, a short summary."""

from __future__ import annotations

import os
import time
from typing import Any, Final

from aws_lambda_powertools.utilities.typing import LambdaContext

from middleware_monitoring.bounds import log_projected_cost
from middleware_monitoring.config import ConfigError
from middleware_monitoring.config.extra import apply_extra
from middleware_monitoring.kafka_stream import (
    QueryStream,
    build_stream,
    push_and_stream,
    send_reserve_seconds,
)
from middleware_monitoring.logs import scrubber, setup_logging
from middleware_monitoring.runtime import Runtime, build_sink, collection_budget, summary
from middleware_monitoring.shards import shard_from_event
from middleware_monitoring.sinks import PushgatewaySink, Sink

# EXTRA_SETTINGS first: the variables it carries are read from here on like the others (by
# the log level, boto3 and the settings alike).
apply_extra(os.environ)
logger = setup_logging(level=os.environ.get("LOG_LEVEL", "INFO"))

# Kept at the very end of the invocation: the push has given up by then, so the function
# fails with the push's own error (naming the cause) instead of being killed by the platform.
FINISH_SECONDS: Final = 1.0

# Kept while the function instance is warm: connections, QPS snapshots, clients.
_runtime: Runtime | None = None
_sink: Sink | None = None
_stream: QueryStream | None = None
# Whether this function instance has logged its projected cost (after its first pass sent).
_projected = False


def _get_runtime() -> tuple[Runtime, Sink]:
    global _runtime, _sink, _stream
    if _runtime is None or _sink is None:
        try:
            runtime = Runtime.from_environ(os.environ)
            # Before any pass: a sink that cannot be built (no PUSHGATEWAY_URL) is a
            # configuration error, not something to find out after a whole pass.
            _sink = build_sink(runtime.settings, runtime.builder.secrets)
        except ConfigError as error:
            logger.error("configuration error", extra={"problems": error.problems})
            raise
        scrubber.add(runtime.settings.secrets())
        runtime.pushgateway = isinstance(_sink, PushgatewaySink)
        _stream = build_stream(runtime.settings.kafka)
        _runtime = runtime
    return _runtime, _sink


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    global _projected
    shard = shard_from_event(event)
    runtime, sink = _get_runtime()
    remaining = context.get_remaining_time_in_millis() / 1000 - FINISH_SECONDS
    # One deadline for the whole push: every group, request and retry of every sink.
    deadline = time.monotonic() + remaining
    reserve = send_reserve_seconds(_stream, sink.reserve_seconds())
    result = runtime.collect(collection_budget(remaining, reserve), shard)
    # A failed push raises, so the invocation fails and the platform's alarm sees it. Kafka
    # (when KAFKA_SERVER is set) streams first, within its own reserve, and never raises.
    settings = runtime.settings
    # SERIES_BUDGET: the sink gets the pass cut to it; the Kafka stream, every statement.
    sent, series = runtime.budget.apply(result, settings.sink)
    push_and_stream(sink, _stream, result, deadline, to_sink=sent)
    if not _projected:
        log_projected_cost(sink, settings.sink, series, settings.schedule_minutes)
        _projected = True
    runtime.remove_stale_groups(shard, deadline)
    outcome = summary(sent)
    logger.info("pass done", extra=outcome)
    return outcome
