"""Where a pass goes: a Prometheus Pushgateway, or text exposition for people and pull mode."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from prometheus_client import CollectorRegistry, generate_latest, push_to_gateway

from .config import ConfigError, PushgatewaySettings
from .model import FrozenFamilies, PassResult, TargetResult, with_instance_label

logger = logging.getLogger(__name__)

PUSH_WORKERS = 8
RETRY_BACKOFF_SECONDS = 0.5
_ERROR_BODY_LIMIT = 500


def push_worst_case_seconds(settings: PushgatewaySettings) -> float:
    """How long a push may take with every attempt timing out: what a pass keeps back."""
    attempts = settings.retries + 1
    backoff = RETRY_BACKOFF_SECONDS * ((1 << settings.retries) - 1)
    return attempts * settings.timeout_seconds + backoff


class PushError(Exception):
    """The sink did not accept (all of) the pass."""


class Sink(Protocol):
    def send(self, result: PassResult) -> None: ...


def exposition(result: PassResult) -> bytes:
    """The pass as Prometheus text, each series labelled with its target's ``instance``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrozenFamilies(with_instance_label(result.groups())))
    return generate_latest(registry)


class StdoutSink:
    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write

    def send(self, result: PassResult) -> None:
        self._write(exposition(result))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HTTPError):
        # The Pushgateway says in the body what it refused (e.g. a type clash with another
        # group); without it a 400 gives the user nothing to act on.
        try:
            body = " ".join(exc.read(_ERROR_BODY_LIMIT).decode(errors="replace").split())
        except Exception:
            body = ""
        return f"HTTP {exc.code} {exc.reason}" + (f": {body}" if body else "")
    if isinstance(exc, URLError):
        return f"cannot reach the Pushgateway: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _request(
    url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
) -> None:
    """One PUT; a status >= 400 raises HTTPError. prometheus_client's own handler builds a
    new urllib opener per push, and every new opener makes a TLS context that loads the
    system CA store (17 ms, GIL held, so parallel pushes queue behind it): most of a warm
    invocation's time (bench/RESULTS.md). ``urlopen`` reuses one opener per process."""
    request = Request(url, data=data, method=method)
    for name, value in headers:
        request.add_header(name, value)
    with urlopen(request, timeout=timeout) as response:
        response.read()


class PushgatewaySink:
    """PUTs each target as its own group {job, instance}, so a pass replaces that target's
    previous values and a series that disappeared does not linger. Connection errors and
    5xx answers are retried with backoff; a 4xx is the caller's mistake and is not."""

    def __init__(self, settings: PushgatewaySettings) -> None:
        if settings.url is None:
            raise ConfigError(
                ["PUSHGATEWAY_URL: is required to push (e.g. http://pushgateway:9091)"]
            )
        self._settings = settings
        self._url: str = settings.url

    def _handler(
        self,
        url: str,
        method: str,
        timeout: float | None,
        headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        settings = self._settings
        sent_headers = list(headers)
        if settings.username:
            token = base64.b64encode(f"{settings.username}:{settings.password or ''}".encode())
            sent_headers.append(("Authorization", "Basic " + token.decode()))

        def send() -> None:
            for attempt in range(settings.retries + 1):
                try:
                    _request(url, method, timeout, sent_headers, data)
                    return
                except HTTPError as exc:
                    if exc.code < 500 or attempt == settings.retries:
                        raise
                except (URLError, OSError):
                    if attempt == settings.retries:
                        raise
                time.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)

        return send

    def _push(self, result: TargetResult) -> str | None:
        try:
            push_to_gateway(
                self._url,
                job=self._settings.job,
                registry=result.registry(),
                grouping_key={"instance": result.target},
                timeout=self._settings.timeout_seconds,
                handler=self._handler,
            )
        except Exception as exc:
            return f"{result.target}: {_describe(exc)}"
        return None

    def send(self, result: PassResult) -> None:
        groups = result.groups()
        with ThreadPoolExecutor(max_workers=PUSH_WORKERS, thread_name_prefix="push") as pool:
            errors = [error for error in pool.map(self._push, groups) if error]
        if errors:
            raise PushError(
                f"Pushgateway {self._url} did not accept {len(errors)} of {len(groups)} "
                "groups: " + "; ".join(errors)
            )
