"""Process plumbing shared by the stand-ins: free ports, readiness polling, stopping."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


class StandinError(RuntimeError):
    """A stand-in server could not be started or used."""


def free_port() -> int:
    """A port that was free a moment ago.

    There is a window between closing this socket and the server binding it;
    callers that can detect a bind failure retry with a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(log is empty)"


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `ready` until it returns True; fail early if `proc` dies.

    Polling starts fast (servers here come up in 15-600 ms) and backs off so a
    slow CI machine does not get hammered.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    last_error: BaseException | None = None
    while True:
        if proc is not None and proc.poll() is not None:
            raise StandinError(
                f"{what} exited with status {proc.returncode} before becoming ready.\n"
                f"--- log tail ({log}) ---\n{log_tail(log)}"
            )
        try:
            if ready():
                return
        except Exception as exc:  # readiness probes fail in many ways while starting
            last_error = exc
        if time.monotonic() >= deadline:
            raise StandinError(
                f"{what} was not ready after {timeout:.0f} s"
                f" (last probe error: {last_error!r}).\n"
                f"--- log tail ({log}) ---\n{log_tail(log)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def stop_process(
    proc: subprocess.Popen[bytes] | None,
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 10.0,
) -> None:
    """Signal by PID, wait, then SIGKILL if it would not go. Idempotent."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=timeout)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def http_request(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    timeout: float = 5.0,
) -> bytes:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise StandinError(f"{method} {url} -> HTTP {exc.code}: {detail}") from exc
