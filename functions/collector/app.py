"""AWS Lambda entry point: one collection pass, one push, a short summary."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from middleware_monitoring.config import ConfigError
from middleware_monitoring.logs import scrubber, setup_logging
from middleware_monitoring.runtime import Runtime, build_sink, summary

logger = setup_logging(level=os.environ.get("LOG_LEVEL", "INFO"))

# Kept while the function instance is warm: connections, QPS snapshots, clients.
_runtime: Runtime | None = None


def _get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        try:
            _runtime = Runtime.from_environ(os.environ)
        except ConfigError as error:
            logger.error("configuration error", extra={"problems": error.problems})
            raise
        scrubber.add(_runtime.settings.secrets())
    return _runtime


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    runtime = _get_runtime()
    remaining = context.get_remaining_time_in_millis() / 1000
    result = runtime.collect(remaining - runtime.push_reserve_seconds())
    # A failed push raises, so the invocation fails and the platform's alarm sees it.
    build_sink(runtime.settings).send(result)
    outcome = summary(result)
    logger.info("pass done", extra=outcome)
    return outcome
