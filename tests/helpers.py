"""What every test package shares: closing what a test opened (a Runtime's connections, a
source, a connection) and the environment a child process of the product runs with."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol, TypeVar

from middleware_monitoring.runtime import Runtime

# The product's variables (SPEC section 2 and the newer ones): a test's own environment
# decides them, never the shell the tests were started from.
PRODUCT_PREFIXES = (
    "PG_",
    "PUSHGATEWAY_",
    "AWS_",
    "MONGO_",
    "KAFKA_",
    "METRICS_",
    "COLLECTOR_",
    "CLOUDWATCH_",
    "SECRETS_",
    "POWERTOOLS_",
    "SERVER_",
    "TARGETS_",
    "REDIS_",
    "DISCOVER",
    "REMOTE_WRITE_",
    "EMF_",
    "SERIES_",
    "SCHEDULE_",
)


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """os.environ without the product's variables, plus ``environ``: for a child process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(PRODUCT_PREFIXES)}
    return {**base, **environ}


class Closable(Protocol):
    def close(self) -> object: ...


T = TypeVar("T", bound="Runtime | Closable")


def close(thing: Runtime | Closable | None) -> None:
    """A Runtime: every source's connection (the shared servers must be left without the
    test's sessions); anything else: its close()."""
    if thing is not None:
        thing.close()


class Closer:
    """Collects what a test opens (``closer(Runtime.from_environ(...))``) and closes it all,
    newest first, when the test ends (the ``closer`` fixture), also when it failed."""

    def __init__(self) -> None:
        self._things: list[Runtime | Closable] = []

    def __call__(self, thing: T) -> T:
        self._things.append(thing)
        return thing

    def close_all(self) -> None:
        errors: list[Exception] = []
        while self._things:
            try:
                close(self._things.pop())
            except Exception as exc:  # close the rest first
                errors.append(exc)
        if errors:
            raise errors[0]


@contextmanager
def closing(thing: T) -> Iterator[T]:
    try:
        yield thing
    finally:
        close(thing)


@contextmanager
def log_records(level: int, *, root_level: int | None = None) -> Iterator[list[logging.LogRecord]]:
    """The records the product logs at ``level`` and above while the block runs, unscrubbed
    (a secret must not be there in the first place); with ``root_level``, the other
    libraries' records too (pymongo's, botocore's), at that level and above."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # Reached twice when the package logger propagates to the root logger.
            if not any(kept is record for kept in records):
                records.append(record)

    handler = Keep(min(level, root_level or level))
    levels = {logging.getLogger("middleware_monitoring"): level}
    if root_level is not None:
        levels[logging.getLogger()] = root_level
    saved = [(logger, logger.level) for logger in levels]
    for logger, wanted in levels.items():
        logger.addHandler(handler)
        logger.setLevel(wanted)
    try:
        yield records
    finally:
        for logger, was in saved:
            logger.removeHandler(handler)
            logger.setLevel(was)
