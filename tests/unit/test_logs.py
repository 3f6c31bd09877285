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
