"""JSON logs: a registered secret never reaches a line, wherever it hides (message, extras,
an exception's text)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from middleware_monitoring.logs import scrubber, setup_logging

SECRET = "hunter2-Sup3r-secret"


@pytest.fixture(autouse=True)
def own_scrubber_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # The scrubber is process-wide: leave no secret registered for the tests that follow.
    monkeypatch.setattr(scrubber, "_secrets", frozenset())
    monkeypatch.setattr(scrubber, "_short", None)


def log_lines(emit: object) -> list[dict[str, object]]:
    stream = io.StringIO()
    setup_logging(stream=stream)
    scrubber.add([SECRET])
    assert callable(emit)
    emit(logging.getLogger("middleware_monitoring.test"))
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_message_and_extras_are_scrubbed() -> None:
    (line,) = log_lines(
        lambda log: log.warning("login %s refused", SECRET, extra={"detail": f"pw={SECRET}"})
    )
    assert (line["message"], line["detail"]) == ("login *** refused", "pw=***")


def test_an_exception_carrying_the_secret_is_scrubbed_and_kept_readable() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError(f"could not parse {SECRET}")
        except ValueError:
            log.warning("source down", exc_info=True)

    (line,) = log_lines(emit)
    assert SECRET not in json.dumps(line)
    assert line["exception_name"] == "ValueError"
    assert str(line["exception"]).endswith("ValueError: could not parse ***")


def test_a_short_secret_is_scrubbed_where_it_stands_alone_only() -> None:
    """Issue 12.3: a password under 4 characters is scrubbed too, as a token of its own."""

    def emit(log: logging.Logger) -> None:
        scrubber.add(["pw1", "x"])
        log.warning("login refused", extra={"detail": "postgres://monitor:pw1@db/app x=x pw12"})

    (line,) = log_lines(emit)
    assert line["detail"] == "postgres://monitor:***@db/app ***=*** pw12"


def test_library_records_are_scrubbed_whatever_their_handler() -> None:
    """Issue 12.3: botocore, pymongo, urllib3, kafka... log through handlers this product does
    not own (the Lambda runtime's); their records are scrubbed when they are made, the
    traceback kept as scrubbed text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    setup_logging(stream=io.StringIO())
    scrubber.add([SECRET])
    library = logging.getLogger("pymongo.test-scrubbing")
    library.addHandler(handler)
    try:
        library.warning("auth with %s failed", SECRET)
        try:
            raise ConnectionError(f"mongodb://u:{SECRET}@h")
        except ConnectionError:
            library.error("lost", exc_info=True)
    finally:
        library.removeHandler(handler)
    text = stream.getvalue()
    assert SECRET not in text
    assert text.startswith("auth with *** failed\nlost\nTraceback (most recent call last):")
    assert text.endswith("ConnectionError: mongodb://u:***@h\n")


def test_libraries_that_log_bodies_stay_at_info_or_above() -> None:
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    setup_logging(stream=io.StringIO(), level="DEBUG")
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("urllib3").getEffectiveLevel() >= logging.INFO
