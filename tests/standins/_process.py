"""Process plumbing shared by the stand-ins: free ports, readiness polling, stopping, and
the start/stop lifecycle of a server run as a child process."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self


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


def accepts(host: str, port: int) -> bool:
    """Readiness of a server with no health endpoint: it takes TCP connections."""
    with socket.create_connection((host, port), timeout=0.5):
        return True


def require_binary(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise StandinError(f"{name} not on PATH; apt-get install {package}")
    return exe


class StartStop(ABC):
    """``with thing:`` starts it and stops it whatever happens, for every stand-in and fault
    injector that has ``start() -> Self`` and ``stop()``."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess(StartStop):
    """A server binary run as a child process on 127.0.0.1 and stopped by its PID.

    A subclass says how to run it (``command``) and how to tell it is up (``ready``); this
    class does the rest: a scratch directory, a free port, a log file taking stdout and
    stderr, waiting for readiness, and an atexit stop so an aborted test run leaves no
    server behind. ``stop`` then ``start`` gives a fresh server on a new free port unless
    ``keeps_port`` (or ``start(port=...)``).
    """

    host = "127.0.0.1"
    what: ClassVar[str]  # names the server in errors: "<what> on host:port was not ready"
    slug: ClassVar[str]  # names its temporary directory: standin-<slug>-XXXX
    log_name: ClassVar[str]  # file in the scratch directory taking stdout and stderr
    stop_timeout: ClassVar[float] = 10.0
    # Servers that come back where they were (a "restarted" target the collector is
    # configured for) keep their port on the next start.
    keeps_port: ClassVar[bool] = False
    # The free port may be taken between free_port() and the server's bind; a new port
    # is tried that many times in all.
    start_attempts: ClassVar[int] = 3

    def __init__(self, *, start_timeout: float, directory: Path | None = None) -> None:
        """Without ``directory``, each start gets a temporary directory, deleted by stop;
        a given ``directory`` belongs to the caller and is kept."""
        self.start_timeout = start_timeout
        self.port = 0
        self._directory = directory
        self.base_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def command(self, port: int) -> list[str]:
        """The server's argv, listening on 127.0.0.1:``port``."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the server answers; may raise while it is still starting."""

    def prepare(self, base_dir: Path) -> None:
        """Before the first launch: find the binary, write config files into ``base_dir``."""

    def environment(self) -> dict[str, str] | None:
        """The server's environment; None inherits ours."""
        return None

    @property
    def address(self) -> str:
        """host:port."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def log_path(self) -> Path | None:
        return self.base_dir / self.log_name if self.base_dir is not None else None

    def start(self, *, port: int | None = None) -> Self:
        """Start on a free port, or first try ``port`` (a server coming back where it was)."""
        if self.pid is not None:
            return self
        if port is None and self.keeps_port and self.port:
            port = self.port
        if self._directory is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix=f"standin-{self.slug}-"))
        else:
            self._directory.mkdir(parents=True, exist_ok=True)
            self.base_dir = self._directory
        try:
            self.prepare(self.base_dir)
        except BaseException:
            self._remove_base_dir()  # nothing ran yet: leave nothing behind
            raise
        log_path = self.base_dir / self.log_name
        for attempt in range(1, self.start_attempts + 1):
            self.port = port if port is not None and attempt == 1 else free_port()
            with log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    self.command(self.port),
                    cwd=self.base_dir,
                    env=self.environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_until(
                    self.ready,
                    what=f"{self.what} on {self.address}",
                    timeout=self.start_timeout,
                    proc=self._proc,
                    log=log_path,
                )
                break
            except StandinError:
                stop_process(self._proc)
                self._proc = None
                if attempt == self.start_attempts:
                    raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        atexit.unregister(self.stop)
        stop_process(self._proc, timeout=self.stop_timeout)
        self._proc = None
        self._remove_base_dir()

    def restart(self) -> Self:
        """Stop and start again on the same port."""
        self.stop()
        return self.start(port=self.port)

    def _remove_base_dir(self) -> None:
        if self._directory is None and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
