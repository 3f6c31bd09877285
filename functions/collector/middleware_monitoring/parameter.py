"""TARGETS_PARAMETER: a targets document kept in an SSM parameter (SPEC 9).

Read at a cold start (unreadable or wrong: a configuration error, the function refuses to
run), then again at most every TARGETS_MAX_AGE_SECONDS while warm (Powertools Parameters
keeps it that long, as it keeps secrets), so a fleet changes without a deploy. A re-read
that fails, or a new document that is wrong, keeps the last good targets (they go on being
collected and pushed) and makes the target list not complete.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .aws import aws_error_code
from .config import ConfigError, Settings, TargetsDocument, duplicate_names, parse_document

if TYPE_CHECKING:
    from .aws import AwsSessions

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS: Final = 3.0
READ_TIMEOUT_SECONDS: Final = 5.0


class TargetsParameter:
    def __init__(
        self,
        settings: Settings,
        sessions: AwsSessions,
        *,
        fetch: Callable[[str], str] | None = None,
    ) -> None:
        assert settings.targets_parameter is not None
        assert settings.postgres_defaults is not None
        self._name = settings.targets_parameter
        self._document_name = f"TARGETS_PARAMETER ({self._name})"
        self._postgres_defaults = settings.postgres_defaults
        self._redis_defaults = settings.redis_defaults
        # The parameter's names must not take a configured target's or a collector group's.
        self._configured = settings.targets
        self._collector_instance = settings.collector_instance
        self._max_age = settings.targets_max_age_seconds
        self._sessions = sessions
        self._fetch = fetch or self._get_parameter
        self._provider: Any = None
        self._lock = threading.Lock()
        self._text: str | None = None
        self._document = TargetsDocument()
        self._fresh = False

    def _get_parameter(self, name: str) -> str:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SSMProvider

            from .config import HERE

            config = self._sessions.client_config(
                self._sessions.region(HERE),
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
                max_attempts=2,
            )
            self._provider = SSMProvider(boto3_client=self._sessions.client("ssm", HERE, config))
        return str(self._provider.get(name, max_age=self._max_age, decrypt=True))

    def _read(self) -> list[str]:
        """Fetch (cached for the max age) and, when the text changed, parse; the problems of
        a text that cannot be used."""
        try:
            text = self._fetch(self._name)
        except Exception as exc:
            return [f"{self._document_name}: cannot be read: {_describe(exc)}"]
        if text == self._text:
            return []
        from .logs import scrubber

        document, problems = parse_document(
            text, self._document_name, self._postgres_defaults, self._redis_defaults
        )
        # Inline passwords (for local use) are secrets like any other.
        scrubber.add(
            password for spec in document.specs() if (password := getattr(spec, "password", None))
        )
        if not problems:
            problems = duplicate_names(
                [*self._configured, *document.specs()], self._collector_instance
            )
        if not problems:
            self._text, self._document = text, document
        return problems

    def load(self) -> TargetsDocument:
        """The first read: raises ``ConfigError`` naming every problem."""
        with self._lock:
            problems = self._read()
            if problems:
                raise ConfigError(problems)
            self._fresh = True
            return self._document

    def current(self) -> tuple[TargetsDocument, bool]:
        """The targets now and whether they are known current (the last read worked)."""
        with self._lock:
            problems = self._read()
            if problems and self._fresh:
                logger.error(
                    "targets parameter not used",
                    extra={
                        "detail": "; ".join(problems) + ": the last good targets are kept",
                    },
                )
            self._fresh = not problems
            return self._document, self._fresh


def _describe(exc: BaseException) -> str:
    """An SSM error by its code (Powertools wraps botocore's in GetParameterError)."""
    return aws_error_code(exc) or f"{type(exc).__name__}: {exc}"
