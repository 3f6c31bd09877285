"""TARGETS_S3_URI: a targets document of any size in an S3 object (SPEC 14), YAML or JSON in
section 9's shape, read with the function's role.

Read at a cold start (unreadable or wrong: a configuration error, as TARGETS_PARAMETER). While
warm, asked again at most every TARGETS_MAX_AGE_SECONDS, with the ETag of the copy held
(``If-None-Match``): an unchanged object answers 304 with no body and is not parsed again. A
read that fails, or a new document that is wrong, keeps the last good targets, makes the
target list not complete (no stale group is deleted on its word) and is reported:
``middleware_targets_source_up`` 0 and ``middleware_targets_source_failure`` with its reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from prometheus_client.core import GaugeMetricFamily, Metric

from .aws import aws_error_code
from .config import ConfigError, Settings, TargetsDocument, duplicate_names, parse_document

if TYPE_CHECKING:
    from .aws import AwsSessions

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS: Final = 3.0
READ_TIMEOUT_SECONDS: Final = 10.0
SOURCE_UP: Final = "middleware_targets_source_up"
SOURCE_FAILURE: Final = "middleware_targets_source_failure"


@dataclass(frozen=True)
class S3Object:
    """What one GetObject answered: the body (None: not modified since ``etag``)."""

    body: bytes | None
    etag: str | None


class NotModified(Exception):
    pass


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """(bucket, key) of ``s3://bucket/key``, or None when it is not that shape."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key or any(c in bucket for c in " /"):
        return None
    return bucket, key


class TargetsS3Object:
    def __init__(
        self,
        settings: Settings,
        sessions: AwsSessions,
        *,
        fetch: Callable[[str, str, str | None], S3Object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert settings.targets_s3_uri is not None
        assert settings.postgres_defaults is not None
        self.uri = settings.targets_s3_uri
        parts = split_s3_uri(self.uri)
        assert parts is not None  # checked by load_settings
        self._bucket, self._key = parts
        self._document_name = f"TARGETS_S3_URI ({self.uri})"
        self._postgres_defaults = settings.postgres_defaults
        self._redis_defaults = settings.redis_defaults
        self._configured = settings.targets
        self._collector_instance = settings.collector_instance
        self._max_age = settings.targets_max_age_seconds
        self._sessions = sessions
        self._fetch = fetch or self._get_object
        self._clock = clock
        self._client: Any = None
        self._lock = threading.Lock()
        self._etag: str | None = None
        self._checked_at: float | None = None
        self._document = TargetsDocument()
        self._fresh = False
        self._reason: str | None = None
        # GetObject calls made and bodies parsed, for the tests and the log.
        self.reads = 0
        self.parses = 0

    def _get_object(self, bucket: str, key: str, etag: str | None) -> S3Object:
        if self._client is None:
            from .config import HERE

            config = self._sessions.client_config(
                self._sessions.region(HERE),
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
                max_attempts=2,
            )
            self._client = self._sessions.client("s3", HERE, config)
        params: dict[str, str] = {"Bucket": bucket, "Key": key}
        if etag is not None:
            params["IfNoneMatch"] = etag
        try:
            answer = self._client.get_object(**params)
        except Exception as exc:
            # botocore reports a 304 as a ClientError whose code is "304".
            if aws_error_code(exc) in ("304", "NotModified"):
                return S3Object(None, etag)
            raise
        with answer["Body"] as body:
            return S3Object(body.read(), answer.get("ETag"))

    def _read(self) -> tuple[list[str], str | None]:
        """Ask S3 (with the held ETag) and parse a changed body: the problems of a read that
        cannot be used, and the reason to report."""
        self.reads += 1
        try:
            got = self._fetch(self._bucket, self._key, self._etag)
        except Exception as exc:
            code = aws_error_code(exc) or type(exc).__name__
            return [f"{self._document_name}: cannot be read: {code}"], code
        if got.body is None:
            return [], None
        try:
            text = got.body.decode("utf-8")
        except UnicodeDecodeError:
            return [f"{self._document_name}: is not UTF-8 text"], "invalid_document"
        self.parses += 1
        document, problems = parse_document(
            text, self._document_name, self._postgres_defaults, self._redis_defaults
        )
        from .logs import scrubber

        scrubber.add(
            password for spec in document.specs() if (password := getattr(spec, "password", None))
        )
        if not problems:
            problems = duplicate_names(
                [*self._configured, *document.specs()], self._collector_instance
            )
        if problems:
            return problems, "invalid_document"
        self._etag, self._document = got.etag, document
        return [], None

    def load(self) -> TargetsDocument:
        """The first read: raises ``ConfigError`` naming every problem."""
        with self._lock:
            problems, _ = self._read()
            if problems:
                raise ConfigError(problems)
            self._checked_at = self._clock()
            self._fresh, self._reason = True, None
            return self._document

    def current(self) -> tuple[TargetsDocument, bool]:
        """The targets now and whether they are known current. S3 is asked when the max age
        has passed since the last good answer (every pass while reads fail)."""
        with self._lock:
            now = self._clock()
            if (
                self._fresh
                and self._checked_at is not None
                and now - self._checked_at < self._max_age
            ):
                return self._document, True
            problems, reason = self._read()
            if problems:
                logger.error(
                    "targets object not used",
                    extra={
                        "detail": "; ".join(problems)
                        + ": the last good targets are kept, stale groups are not deleted",
                    },
                )
            else:
                self._checked_at = now
            self._fresh, self._reason = not problems, reason
            return self._document, self._fresh

    def families(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            SOURCE_UP,
            "1 if the targets document was read (or found unchanged) and used at its latest "
            "check, 0 if the last good targets are kept instead.",
            labels=["source"],
        )
        up.add_metric([self.uri], 1.0 if self._fresh else 0.0)
        yield up
        failure = GaugeMetricFamily(
            SOURCE_FAILURE,
            "1 for the reason the targets document's latest check failed (absent while up): "
            "an AWS error code, or invalid_document.",
            labels=["source", "reason"],
        )
        if self._reason is not None:
            failure.add_metric([self.uri, self._reason], 1.0)
        yield failure
