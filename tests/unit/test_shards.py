"""Shards (SPEC 9): rendezvous hashing of target names over n shards, from the event."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from middleware_monitoring.shards import ALL, Shard, ShardEventError, shard_from_event, shard_of

NAMES = [f"orders-db-{i:04d}" for i in range(1000)]


# How the 1,000 names spread over n shards. The hash is fixed (a deployed fleet's targets
# must stay where they are), so these sizes are too; each is within a few dozen of 1000/n.
SIZES = {
    1: [1000],
    2: [524, 476],
    3: [341, 307, 352],
    4: [253, 221, 274, 252],
    5: [200, 194, 213, 196, 197],
    6: [163, 162, 178, 168, 169, 160],
    7: [141, 133, 158, 147, 142, 134, 145],
    8: [130, 112, 137, 133, 126, 113, 128, 121],
}


@pytest.mark.parametrize("count", range(1, 9))
def test_every_target_is_collected_by_exactly_one_shard(count: int) -> None:
    shards = [Shard(index, count) for index in range(count)]
    for name in NAMES:
        assert [shard.index for shard in shards if shard.owns(name)] == [shard_of(name, count)]
    sizes = [sum(1 for name in NAMES if shard.owns(name)) for shard in shards]
    assert sizes == SIZES[count]
    assert sum(sizes) == len(NAMES)


def test_the_hash_gives_each_name_its_shard_for_good() -> None:
    """A change of hash would move most targets of every deployed sharded fleet to another
    shard: the shard of a few names is pinned. The weight is the big-endian 8-byte BLAKE2b
    of "shard NUL name", and the highest weight wins (computed here independently)."""

    def weight(shard: int, name: str) -> int:
        digest = hashlib.blake2b(f"{shard}\0{name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def highest(name: str, count: int) -> int:
        weights = [weight(shard, name) for shard in range(count)]
        return weights.index(max(weights))

    table = [shard_of(name, 7) for name in NAMES[:10]]
    assert table == [0, 6, 3, 0, 5, 2, 2, 5, 0, 0]
    assert table == [highest(name, 7) for name in NAMES[:10]]


def test_four_to_five_shards_moves_about_a_fifth_and_only_to_the_new_shard() -> None:
    before = {name: shard_of(name, 4) for name in NAMES}
    after = {name: shard_of(name, 5) for name in NAMES}
    moved = {name for name in NAMES if before[name] != after[name]}
    # Rendezvous hashing: a name moves only when the new shard wins it, so the moved names
    # are exactly shard 4's of 5 (SIZES[5][4]), about a fifth.
    assert moved == {name for name in NAMES if after[name] == 4}
    assert len(moved) == SIZES[5][4] == 197


def test_the_hash_is_stable_across_processes() -> None:
    """Every invocation (another process, another hash seed) must give a name the same
    shard: Python's own hash() is salted per process, so it must not be what decides."""
    code = (
        "from middleware_monitoring.shards import shard_of; "
        "print([shard_of(f'orders-db-{i:04d}', 7) for i in range(50)])"
    )
    here = [shard_of(name, 7) for name in NAMES[:50]]
    for seed in ("1", "2"):
        environ = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        assert out.strip() == str(here)


def test_shard_from_the_event() -> None:
    assert shard_from_event({"shard": 2, "shards": 5}) == Shard(2, 5)
    # The schedule of an unsharded deployment, a console test event, a bare invocation.
    assert shard_from_event({}) == ALL
    assert shard_from_event({"source": "aws.scheduler"}) == ALL
    assert shard_from_event(None) == ALL


@pytest.mark.parametrize(
    ("event", "got"),
    [
        ({"shard": 5, "shards": 5}, "shard=5, shards=5"),
        ({"shard": -1, "shards": 2}, "shard=-1, shards=2"),
        ({"shard": "1", "shards": 2}, "shard='1', shards=2"),
        ({"shard": True, "shards": 2}, "shard=True, shards=2"),
        ({"shards": 2}, "shard=None, shards=2"),
        ({"shard": 0, "shards": 65}, "shard=0, shards=65"),
    ],
)
def test_a_wrong_shard_event_is_named(event: dict[str, object], got: str) -> None:
    with pytest.raises(ShardEventError) as caught:
        shard_from_event(event)
    assert str(caught.value) == (
        'event: expected {"shard": i, "shards": n} with whole numbers 0 <= i < n <= 64, '
        f"got {got}"
    )
