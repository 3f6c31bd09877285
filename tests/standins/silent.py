"""A TCP listener that accepts connections and never answers: a target that hangs (a
firewall that lets SYNs through, a wedged server). ``release`` closes every connection it
holds and from then on closes new ones at once."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self

from tests.standins._process import StartStop


class SilentServer(StartStop):
    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.host = "127.0.0.1"
        self.port = int(self._sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._released = False
        self.accepted = 0
        self._accepted_event = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._serve, name="silent", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed by stop()
            with self._lock:
                self.accepted += 1
                self._accepted_event.notify_all()
                if self._released:
                    conn.close()
                else:
                    self._held.append(conn)

    def wait_accepted(self, count: int, timeout: float = 30.0) -> bool:
        """True once ``count`` connections were accepted (False after ``timeout``)."""
        with self._lock:
            return self._accepted_event.wait_for(lambda: self.accepted >= count, timeout)

    def release(self) -> None:
        with self._lock:
            self._released = True
            held, self._held = self._held, []
        for conn in held:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def stop(self) -> None:
        self.release()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)
