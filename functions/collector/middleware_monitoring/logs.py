"""JSON logs through Powertools Logger, with every known secret scrubbed from every line."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import IO, Any, Final

from aws_lambda_powertools import Logger

from .config.env import LOG_LEVELS

SERVICE = "middleware-monitoring"
PACKAGE_LOGGER = "middleware_monitoring"
REDACTED = "***"


# Below this length a secret is replaced only where it stands alone (between characters that
# are not letters or digits, as in user:pw@host or "pw"): replaced everywhere, a password
# like "ab" would blank out half of every line.
SHORT_SECRET: Final = 4
# Libraries that log request and response bodies at DEBUG, where a secret can appear before
# the collector has read it (and so before the scrubber knows it): never below INFO.
CHATTY_LIBRARIES: Final = ("botocore", "boto3", "urllib3", "s3transfer")


class SecretScrubber(logging.Filter):
    """Replaces secret values wherever they would appear: message, arguments and extras.
    A safety net under the rule that code never logs secrets in the first place."""

    def __init__(self) -> None:
        super().__init__()
        # Replaced whole, never changed in place: secrets read in worker threads are added
        # while other threads log, and a set changing under iteration would raise out of a
        # log call.
        self._secrets: frozenset[str] = frozenset()
        self._short: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str], *, forget: Iterable[str] = ()) -> None:
        """Scrub ``secrets`` from now on, and no longer ``forget`` (expired tokens: a warm
        instance would otherwise scrub every token it ever made, each line slower)."""
        with self._lock:
            known = (self._secrets - set(forget)) | {secret for secret in secrets if secret}
            short = sorted((s for s in known if len(s) < SHORT_SECRET), key=len, reverse=True)
            self._short = (
                re.compile(
                    r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, short)) + r")(?![A-Za-z0-9])"
                )
                if short
                else None
            )
            self._secrets = known

    def scrub(self, value: str) -> str:
        secrets, short = self._secrets, self._short
        for secret in secrets:
            if len(secret) >= SHORT_SECRET:
                value = value.replace(secret, REDACTED)
        return short.sub(REDACTED, value) if short is not None else value

    def filter(self, record: logging.LogRecord) -> bool:
        self.scrub_record(record)
        return True

    def scrub_record(self, record: logging.LogRecord, *, traceback_text: bool = False) -> None:
        """Scrub message, arguments, string extras and the exception. The exception becomes
        text: Powertools serialises the exception object itself, so it gets the scrubbed text
        as its ``exception``/``exception_name`` extras; ``traceback_text`` also keeps it as
        ``exc_text``, which the standard formatters print (library records, whose handlers
        are the runtime's)."""
        if not self._secrets:
            return
        record.msg = self.scrub(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if isinstance(value, str) and key not in ("msg", "name", "levelname"):
                record.__dict__[key] = self.scrub(value)
        if record.exc_info and record.exc_info[1] is not None:
            text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exception = text
            record.exception_name = type(record.exc_info[1]).__name__
            record.exc_info = None
            record.exc_text = text if traceback_text else None


scrubber = SecretScrubber()


def _install_record_factory() -> None:
    """Every log record of a library (botocore, pymongo, urllib3, kafka, redis...) is scrubbed
    when it is made: those records reach handlers this module never sees (the Lambda
    runtime's own). The collector's own records go through the scrubbing handler instead
    (their extras are set after the factory runs)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "scrubs", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not record.name.startswith(PACKAGE_LOGGER):  # those go through the handler's filter
            # A record whose message does not format is the handler's to report, not a
            # reason for the library's log call to raise.
            with contextlib.suppress(Exception):
                scrubber.scrub_record(record, traceback_text=True)
        return record

    factory.scrubs = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


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
    _install_record_factory()
    for name in CHATTY_LIBRARIES:
        library = logging.getLogger(name)
        if library.getEffectiveLevel() < logging.INFO:
            library.setLevel(logging.INFO)
    return logger
