"""Shards (SPEC 9): an invocation whose event is ``{"shard": i, "shards": n}`` collects only
the targets that rendezvous hashing of their name gives to shard i of n.

Rendezvous (highest random weight) hashing: each name goes to the shard with the highest
hash of (shard, name). Going from n to n+1 shards moves only the names whose new shard wins,
about 1/(n+1) of them; no table is kept anywhere, every invocation computes the same answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_SHARDS: Final = 64


class ShardEventError(ValueError):
    """The invocation's event does not say a shard in the expected shape."""


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def owns(self, name: str) -> bool:
        return self.count == 1 or shard_of(name, self.count) == self.index


ALL: Final = Shard()


def _weight(shard: int, name: str) -> int:
    digest = hashlib.blake2b(f"{shard}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(name: str, count: int) -> int:
    """The shard of ``count`` that owns ``name``; stable across processes and Python runs
    (no ``hash()``, which is salted per process)."""
    return max(range(count), key=lambda shard: _weight(shard, name))


def shard_from_event(event: Mapping[str, Any] | None) -> Shard:
    """``{"shard": i, "shards": n}``; an event without either key (a test invocation, the
    single schedule of an unsharded deployment) is the one shard of one."""
    if not isinstance(event, Mapping) or ("shard" not in event and "shards" not in event):
        return ALL
    index, count = event.get("shard"), event.get("shards")
    if (
        isinstance(index, bool)
        or isinstance(count, bool)
        or not isinstance(index, int)
        or not isinstance(count, int)
        or not 1 <= count <= MAX_SHARDS
        or not 0 <= index < count
    ):
        raise ShardEventError(
            f'event: expected {{"shard": i, "shards": n}} with whole numbers 0 <= i < n <= '
            f"{MAX_SHARDS}, got shard={index!r}, shards={count!r}"
        )
    return Shard(index, count)
