"""One ElastiCache (Redis OSS / Valkey) node to read INFO from (SPEC 13).

The plain spec a ``RedisSource`` is built from. The targets file (``elasticache:`` entries)
and discovery both produce it; nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from .aws import HERE, AwsLocation
from .env import EnvReader

DEFAULT_PORT: Final = 6379
# Short on purpose: one INFO answers in about a millisecond, and a node that is gone must cost
# a pass seconds, not the client library's defaults (no timeout at all).
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 3.0
DEFAULT_READ_TIMEOUT_SECONDS: Final = 5.0


@dataclass(frozen=True)
class RedisSettings:
    """One node: cluster-mode shards and replicas are each a target of their own."""

    target_name: str
    host: str
    # Where it came from, for messages, e.g. ``TARGETS_FILE elasticache[2] (orders-cache)``.
    origin: str = ""
    port: int = DEFAULT_PORT
    # In-transit encryption. ElastiCache presents an Amazon-issued certificate for the node's
    # DNS name: the system trust store verifies it, and the host name is always checked.
    tls: bool = False
    # A CA bundle instead of (in addition to) the system store; a relative name is looked up
    # next to the function, then in /opt (tls.resolve_ca_file), like the RDS bundle.
    tls_ca_file: str | None = None
    # An RBAC user; None logs in with the AUTH token alone (the ``default`` user).
    user: str | None = None
    # The AUTH token or the RBAC user's password; None with neither set means no AUTH at all.
    password: str | None = field(default=None, repr=False)
    # Secrets Manager secret holding ``password`` (and optionally ``username``); read at each
    # (re)connect instead of ``password``.
    secret_arn: str | None = None
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    # The node's CloudWatch dimensions (CacheClusterId, CacheNodeId), so that its AWS/ElastiCache
    # metrics can join the same target (cloudwatch.declarations.elasticache).
    cache_cluster_id: str | None = None
    cache_node_id: str | None = None
    # Where its CloudWatch metrics are asked (region, and role of another account).
    aws: AwsLocation = HERE

    @property
    def where(self) -> str:
        """How messages name this node: its origin, or its target name and address."""
        return self.origin or f"{self.target_name} ({self.host}:{self.port})"


# A node's options when no REDIS_* variable is read (documents parsed without the environment).
NODE_DEFAULTS: Final = RedisSettings(target_name="", host="")


def redis_defaults(env: EnvReader) -> RedisSettings:
    """What every ElastiCache node target shares, from the REDIS_* option variables; the
    identity fields are blank, to be filled per node with ``replace``."""
    return RedisSettings(
        target_name="",
        host="",
        connect_timeout_seconds=env.number(
            "REDIS_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT_SECONDS, 0.1, 60.0
        ),
        read_timeout_seconds=env.number(
            "REDIS_READ_TIMEOUT_SECONDS", DEFAULT_READ_TIMEOUT_SECONDS, 0.1, 60.0
        ),
    )
