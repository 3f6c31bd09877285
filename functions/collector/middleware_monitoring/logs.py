"""JSON logs through Powertools Logger, with every known secret scrubbed from every line."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from typing import IO, Any

from aws_lambda_powertools import Logger

from .config.env import LOG_LEVELS

SERVICE = "middleware-monitoring"
PACKAGE_LOGGER = "middleware_monitoring"
REDACTED = "***"


class SecretScrubber(logging.Filter):
    """Replaces secret values wherever they would appear: message, arguments and extras.
    A safety net under the rule that code never logs secrets in the first place."""

    def __init__(self) -> None:
        super().__init__()
        # Replaced whole, never changed in place: secrets read in worker threads are added
        # while other threads log, and a set changing under iteration would raise out of a
        # log call.
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        # Very short values would scrub ordinary words; they are not worth guarding this way.
        with self._lock:
            self._secrets = self._secrets | {secret for secret in secrets if len(secret) >= 4}

    def _scrub(self, value: Any, secrets: frozenset[str]) -> Any:
        if isinstance(value, str):
            for secret in secrets:
                value = value.replace(secret, REDACTED)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if secrets:
            record.msg = self._scrub(record.getMessage(), secrets)
            record.args = None
            for key, value in list(record.__dict__.items()):
                if isinstance(value, str) and key not in ("msg", "name", "levelname"):
                    record.__dict__[key] = self._scrub(value, secrets)
            if record.exc_info and record.exc_info[1] is not None:
                # A traceback renders str(exception), and Powertools also serialises the
                # exception object itself: hand it the scrubbed text instead (its formatter
                # takes `exception`/`exception_name` extras first) and drop the object.
                record.exception = self._scrub(
                    logging.Formatter().formatException(record.exc_info), secrets
                )
                record.exception_name = type(record.exc_info[1]).__name__
                record.exc_info = None
                record.exc_text = None
        return True


scrubber = SecretScrubber()


def setup_logging(stream: IO[str] | None = None, level: str = "INFO") -> Logger:
    """One Powertools Logger for the service; the package's module loggers (plain
    ``logging.getLogger(__name__)``) write through its JSON handler. ``stream`` is stderr
    for the command line, whose stdout carries metrics."""
    # An unknown LOG_LEVEL is a configuration error that load_settings reports, through
    # this logger: it must not fail here first.
    level = level.upper() if level.upper() in LOG_LEVELS else "INFO"
    logger = Logger(service=SERVICE, level=level, stream=stream or sys.stdout)
    handler = logger.registered_handler
    # Powertools keeps the handler of the first Logger made for a service and ignores a later
    # stream argument: point it at this call's stream.
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(stream or sys.stdout)
    if scrubber not in handler.filters:
        handler.addFilter(scrubber)
    package = logging.getLogger(PACKAGE_LOGGER)
    package.handlers = [handler]
    package.setLevel(level)
    package.propagate = False
    return logger
