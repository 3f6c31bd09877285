"""What the Pushgateway holds for this collector: read back (last success times, which groups
exist) and groups of an earlier layout or of retired shards deleted.

The collector pushes one group per shard, ``/metrics/job/<job>/collector/<name>/shard/<i>``,
replaced whole by every pass: a target that left disappears with the next PUT. Two kinds of
group are left over otherwise and are deleted here (SPEC 15): this collector's groups of the
earlier per-target layout (``/job/<job>/instance/<target>``, and its own series'
``instance/<name>``, ``<name>-shard-<i>``, ``<name>-kafka``), and its shard groups at or above
the shard count. A function instance that starts cold does not know when a failing target
last succeeded (SPEC 3.8): that is read back from the same exposition, in either layout. It
is read as a stream and only a few kinds of lines are kept (one per group, and the last
success lines), so memory stays flat however many series the Pushgateway holds.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote
from urllib.request import Request, urlopen

from prometheus_client import Metric
from prometheus_client.parser import text_string_to_metric_families

from .config import PushgatewaySettings, reserved_names
from .health import LAST_SUCCESS, OWNER, TARGET_LAST_SUCCESS
from .http_answers import basic_authorization, describe_pushgateway_failure

logger = logging.getLogger(__name__)

# A request with less time than this left is not started.
MIN_REQUEST_SECONDS = 0.1

# The Pushgateway adds this to every group it holds: one line per group.
PUSH_TIME = "push_time_seconds"
_KEPT = tuple(
    f"{name}{{".encode() for name in (PUSH_TIME, LAST_SUCCESS, TARGET_LAST_SUCCESS, OWNER)
)

# A group's grouping labels after ``job``, in the order of its path.
GroupKey = tuple[tuple[str, str], ...]


def shard_group(collector: str, shard: int) -> GroupKey:
    return (("collector", collector), ("shard", str(shard)))


def instance_group(instance: str) -> GroupKey:
    """A group of the earlier per-target layout."""
    return (("instance", instance),)


def describe(key: GroupKey) -> str:
    return ",".join(f"{name}={value}" for name, value in key)


@dataclass
class Groups:
    """This collector's groups of one job, as read back."""

    # target -> {source: last success time}, from either layout (the shard layout wins).
    last_success: dict[str, dict[str, float]] = field(default_factory=dict)
    # target -> its last pass with every source up.
    target_success: dict[str, float] = field(default_factory=dict)
    # Shard numbers of its groups in the shard layout.
    shards: set[int] = field(default_factory=set)
    # Instances of its groups in the per-target layout (targets and its own series).
    per_target: set[str] = field(default_factory=set)


def _auth_headers(settings: PushgatewaySettings) -> dict[str, str]:
    if not settings.username:
        return {}
    return {"Authorization": basic_authorization(settings.username, settings.password)}


def read_groups(settings: PushgatewaySettings, collector: str, timeout: float) -> Groups:
    """The collector's groups. Raises ``OSError`` (URLError, HTTPError, a timeout) when it
    cannot."""
    assert settings.url is not None
    request = Request(f"{settings.url.rstrip('/')}/metrics", headers=_auth_headers(settings))
    job = f'job="{_escape(settings.job)}"'.encode()
    kept: list[bytes] = []
    with urlopen(request, timeout=timeout) as response:
        for line in response:
            if line.startswith(_KEPT) and job in line:
                kept.append(line)
    return _groups(text_string_to_metric_families(b"".join(kept).decode()), settings, collector)


def _groups(families: Iterable[Metric], settings: PushgatewaySettings, collector: str) -> Groups:
    groups = Groups()
    # Per-target layout: who pushed each group, what it held, and every group's instance.
    owner: dict[str, str] = {}
    old_success: dict[str, dict[str, float]] = {}
    old_target_success: dict[str, float] = {}
    old_instances: set[str] = set()
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            if labels.get("job") != settings.job:
                continue
            instance = labels.get("instance", "")
            if "shard" in labels:  # the shard layout: the grouping key has collector and shard
                if labels.get("collector") != collector:
                    continue
                if sample.name == PUSH_TIME:
                    shard = labels["shard"]
                    if shard.isdigit():
                        groups.shards.add(int(shard))
                elif sample.name == LAST_SUCCESS and "source" in labels:
                    groups.last_success.setdefault(instance, {})[labels["source"]] = float(
                        sample.value
                    )
                elif sample.name == TARGET_LAST_SUCCESS:
                    groups.target_success[instance] = float(sample.value)
                continue
            if sample.name == PUSH_TIME:
                old_instances.add(instance)
            elif sample.name == OWNER and "collector" in labels:
                owner[instance] = labels["collector"]
            elif sample.name == LAST_SUCCESS and "source" in labels:
                old_success.setdefault(instance, {})[labels["source"]] = float(sample.value)
            elif sample.name == TARGET_LAST_SUCCESS:
                old_target_success[instance] = float(sample.value)
    own_names = reserved_names(collector)
    groups.per_target = {
        instance
        for instance in old_instances
        if owner.get(instance) == collector
        or (instance not in owner and own_names.fullmatch(instance) is not None)
    }
    # A cold start right after the upgrade finds last success times in the old groups only.
    for instance in groups.per_target:
        if instance in old_success:
            merged = groups.last_success.setdefault(instance, {})
            for source, when in old_success[instance].items():
                merged.setdefault(source, when)
        if instance in old_target_success:
            groups.target_success.setdefault(instance, old_target_success[instance])
    return groups


def _escape(value: str) -> str:
    """A label value as the exposition format writes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def group_path(job: str, key: GroupKey) -> str:
    """The grouping-key path; a value with a '/' (or an empty one) goes base64-encoded, as the
    Pushgateway's API (and prometheus_client) spells it."""
    parts = []
    for name, value in (("job", job), *key):
        if "/" in value or not value:
            encoded = base64.urlsafe_b64encode(value.encode()).decode() or "="
            parts.append(f"{name}@base64/{encoded}")
        else:
            parts.append(f"{name}/{quote(value, safe='')}")
    return "/".join(parts)


def delete_groups(
    settings: PushgatewaySettings,
    keys: Iterable[GroupKey],
    deadline: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[list[str], list[str]]:
    """Delete each group, one at a time, until ``deadline`` (monotonic): each request waits
    at most PUSHGATEWAY_TIMEOUT_SECONDS or what is left. Returns (deleted, failed with their
    cause), each group described as ``instance=db1`` / ``collector=c,shard=3``; the groups
    the deadline left are failed too, for the next pass. Never raises."""
    assert settings.url is not None
    deleted: list[str] = []
    failed: list[str] = []
    left = sorted(keys)
    while left:
        remaining = deadline - monotonic()
        if remaining < MIN_REQUEST_SECONDS:
            failed += [f"{describe(key)}: the invocation's deadline came first" for key in left]
            break
        key = left.pop(0)
        url = f"{settings.url.rstrip('/')}/metrics/{group_path(settings.job, key)}"
        request = Request(url, method="DELETE", headers=_auth_headers(settings))
        try:
            with urlopen(request, timeout=min(settings.timeout_seconds, remaining)) as response:
                response.read()
            deleted.append(describe(key))
        except Exception as exc:  # any failure is this group's, never the invocation's
            failed.append(f"{describe(key)}: {describe_pushgateway_failure(exc)}")
    return deleted, failed
