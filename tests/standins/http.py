"""A local HTTP server on its own thread, for the stand-ins and fakes that answer HTTP."""

from __future__ import annotations

import threading
from abc import abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import ClassVar, Self

from tests.standins._process import StartStop


class ThreadedHttpServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class HttpStandin(StartStop):
    """A stand-in that answers HTTP/1.1 on 127.0.0.1 and a free port: every request of the
    methods it serves goes to ``_serve``; nothing is logged per request."""

    http_methods: ClassVar[tuple[str, ...]] = ("GET", "POST")

    def __init__(self) -> None:
        standin = self

        def serve(handler: BaseHTTPRequestHandler) -> None:
            standin._serve(handler)

        handler_class = type(
            "Handler",
            (BaseHTTPRequestHandler,),
            {
                "protocol_version": "HTTP/1.1",
                "log_message": lambda self, format, *args: None,
                **{f"do_{method}": serve for method in self.http_methods},
            },
        )
        self._http = ThreadedHttpServer(handler_class)
        self.port = self._http.port

    @abstractmethod
    def _serve(self, handler: BaseHTTPRequestHandler) -> None: ...

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()
