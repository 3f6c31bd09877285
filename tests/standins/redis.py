"""A real redis-server 7.0 (Debian package ``redis-server``) on 127.0.0.1, as an ElastiCache
node would present itself: an AUTH token (the default user's password), RBAC users (ACL),
TLS with a test CA (alongside the plain port), a small maxmemory, a replica of another
server, a renamed command. Persistence is off; each start is an empty server.

``admin`` is a client of the default user for the tests' own setup (keys, ACL changes,
statistics); the collector under test never uses it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

import valkey

from middleware_monitoring.config.elasticache import RedisSettings
from tests.standins._process import (
    ServerProcess,
    free_port,
    http_ok,
    http_request,
    require_binary,
    wait_until,
)
from tests.standins.tls import TlsFiles

BINARY = "redis-server"


@dataclass(frozen=True)
class AclUser:
    """An RBAC user, as ``user NAME on >PASSWORD RULES`` (no ``client|setinfo``: Redis 7.0's
    ACL does not know it, and a configuration naming it aborts start-up)."""

    name: str
    password: str
    # What docs/elasticache.md tells operators to allow.
    rules: str = "-@all +info +ping +slowlog"

    def line(self) -> str:
        for char in ' "\\\n':
            assert char not in self.password, "the config file would split or unquote it"
        return f"user {self.name} on >{self.password} {self.rules}"


# The shared server's logins (tests/conftest.py): the AUTH token, and an RBAC user whose
# password has the characters a URL would need escaped.
TOKEN = "standin-AUTH-token-7f3a"
MONITOR = AclUser("monitor", "mon@:/%41-pw")


class RedisServer(ServerProcess):
    what = "redis-server"
    slug = "redis"
    log_name = "redis.log"
    # A node that comes back where the collector is configured to find it.
    keeps_port = True

    def __init__(
        self,
        *,
        password: str | None = None,
        users: Sequence[AclUser] = (),
        tls: TlsFiles | None = None,
        maxmemory: str | None = None,
        maxmemory_policy: str = "noeviction",
        replica_of: RedisServer | None = None,
        renamed: Mapping[str, str] | None = None,
        binary: str = BINARY,
        start_timeout: float = 15.0,
    ) -> None:
        """``password``: the default user's (the AUTH token); ``tls``: a TLS port besides the
        plain one, with this certificate; ``renamed``: command -> new name ("" disables)."""
        super().__init__(start_timeout=start_timeout)
        self.password = password
        self.users = tuple(users)
        self.tls = tls
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.replica_of = replica_of
        self.renamed = dict(renamed or {})
        self.binary = binary
        self.tls_port = 0
        self._exe = binary
        self._admin: valkey.Valkey | None = None

    # -- ServerProcess -----------------------------------------------------------------

    def prepare(self, base_dir: Path) -> None:
        self._exe = require_binary(self.binary, "redis-server")

    def command(self, port: int) -> list[str]:
        assert self.base_dir is not None
        lines = [
            f"bind {self.host}",
            f"port {port}",
            f"dir {self.base_dir}",
            'save ""',
            "appendonly no",
            "protected-mode no",
            "daemonize no",
            'logfile ""',
            f"maxmemory-policy {self.maxmemory_policy}",
        ]
        if self.maxmemory is not None:
            lines.append(f"maxmemory {self.maxmemory}")
        default = f">{self.password}" if self.password else "nopass"
        lines.append(f"user default on {default} ~* &* +@all")
        lines += [user.line() for user in self.users]
        if self.tls is not None:
            # Kept across restarts like the plain port: a node comes back where it was.
            self.tls_port = self.tls_port or free_port()
            lines += [
                f"tls-port {self.tls_port}",
                f"tls-cert-file {self.tls.server_cert}",
                f"tls-key-file {self.tls.server_key}",
                f"tls-ca-cert-file {self.tls.ca}",
                "tls-auth-clients no",
            ]
        if self.replica_of is not None:
            lines.append(f"replicaof {self.replica_of.host} {self.replica_of.port}")
            if self.replica_of.password:
                lines.append(f"masterauth {self.replica_of.password}")
        for name, new in self.renamed.items():
            lines.append(f'rename-command {name} "{new}"')
        config = self.base_dir / "redis.conf"
        config.write_text("\n".join(lines) + "\n")
        return [self._exe, str(config)]

    def ready(self) -> bool:
        # A client of its own: a start attempt that lost its port to a race tries another.
        client = self._client()
        try:
            return bool(client.ping())
        finally:
            client.close()

    def start(self, *, port: int | None = None) -> Self:
        self._close_admin()
        return super().start(port=port)

    def stop(self) -> None:
        self._close_admin()
        super().stop()

    # -- the tests' own access ---------------------------------------------------------

    def _client(self) -> valkey.Valkey:
        return valkey.Valkey(
            host=self.host,
            port=self.port,
            password=self.password,
            socket_timeout=5,
            socket_connect_timeout=2,
            decode_responses=True,
            # No CLIENT SETINFO: 7.0 answers it with an error, which would count among the
            # error replies the tests check.
            lib_name=None,
            lib_version=None,
        )

    @property
    def admin(self) -> valkey.Valkey:
        """The default user over the plain port (decoded replies)."""
        if self._admin is None:
            self._admin = self._client()
        return self._admin

    def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()

    def info(self, section: str = "default") -> dict[str, Any]:
        """INFO as valkey-py parses it (for the tests' expectations, not the collector's)."""
        parsed = self.admin.info(section)
        assert isinstance(parsed, dict)
        return parsed

    def config(self, name: str) -> str:
        """A setting's value (CONFIG GET: the tests' own access; the collector never sends it)."""
        answer = self.admin.config_get(name)
        assert isinstance(answer, dict)
        return str(answer[name])

    def reset(self) -> None:
        """An empty dataset and zeroed statistics (hits, misses, evictions, errors...)."""
        self.admin.flushall()
        self.admin.config_resetstat()
        self.admin.execute_command("ACL", "LOG", "RESET")

    def wait_link_up(self, timeout: float = 30.0) -> None:
        """A replica: until its link to the primary is up and the first sync is done."""
        wait_until(
            lambda: self.info("replication").get("master_link_status") == "up",
            what=f"replication link of {self.address}",
            timeout=timeout,
        )

    def settings(self, name: str = "redis-node", **changes: Any) -> RedisSettings:
        """The collector's spec of this node: the plain port, no login, short timeouts;
        ``tls=True`` switches to the TLS port and this server's test CA."""
        base = RedisSettings(
            target_name=name,
            host=self.host,
            port=self.port,
            origin=f"test {name}",
            connect_timeout_seconds=2.0,
            read_timeout_seconds=2.0,
        )
        if changes.get("tls"):
            assert self.tls is not None, "started without TLS"
            base = replace(base, tls=True, port=self.tls_port, tls_ca_file=str(self.tls.ca))
        return replace(base, **changes)

    def __repr__(self) -> str:
        return f"RedisServer({self.address}, tls_port={self.tls_port or None}, pid={self.pid})"


class RedisExporter(ServerProcess):
    """redis_exporter 1.45 (Debian ``prometheus-redis-exporter``) reading one node, for the
    side-by-side comparison (SPEC 18). Its own series only (no Go runtime's)."""

    what = "redis_exporter"
    slug = "redis-exporter"
    log_name = "redis_exporter.log"

    def __init__(
        self,
        node: RedisServer,
        *,
        binary: str = "prometheus-redis-exporter",
        start_timeout: float = 15.0,
    ) -> None:
        super().__init__(start_timeout=start_timeout)
        self.node = node
        self.binary = binary
        self._exe = binary

    def prepare(self, base_dir: Path) -> None:
        self._exe = require_binary(self.binary, "prometheus-redis-exporter")

    def command(self, port: int) -> list[str]:
        return [
            self._exe,
            f"-redis.addr=redis://{self.node.address}",
            f"-web.listen-address={self.host}:{port}",
            "-redis-only-metrics",
        ]

    def environment(self) -> dict[str, str]:
        # The password through its environment variable, not the command line.
        return {"REDIS_PASSWORD": self.node.password or ""}

    def ready(self) -> bool:
        return http_ok(f"http://{self.address}/health")

    def scrape(self) -> str:
        """One scrape: the exporter reads the node now."""
        return http_request(f"http://{self.address}/metrics", timeout=15.0).decode()
