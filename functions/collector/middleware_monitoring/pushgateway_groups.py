"""What the Pushgateway holds for this job: read back (last success times, which groups
exist) and stale groups deleted.

The Pushgateway keeps a group forever, so a target that left the configuration would show
its last values forever (SPEC 9), and a function instance that starts cold does not know
when a failing target last succeeded (SPEC 3.8). Both answers are in the Pushgateway's own
exposition. It is read as a stream and only two kinds of lines are kept (one per group and
one per source), so memory stays flat however many series the fleet pushed.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote
from urllib.request import Request, urlopen

from prometheus_client.parser import text_string_to_metric_families

from .config import PushgatewaySettings
from .health import LAST_SUCCESS, OWNER
from .http_answers import basic_authorization, describe_pushgateway_failure

logger = logging.getLogger(__name__)

# A request with less time than this left is not started.
MIN_REQUEST_SECONDS = 0.1

# The Pushgateway adds this to every group it holds: one line per group.
PUSH_TIME = "push_time_seconds"
_KEPT = (f"{PUSH_TIME}{{".encode(), f"{LAST_SUCCESS}{{".encode(), f"{OWNER}{{".encode())


@dataclass
class Groups:
    """The groups of one job: instance -> {source: last success time}, and which collector
    deployment pushed each (absent for groups pushed otherwise, or by an older version)."""

    last_success: dict[str, dict[str, float]] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)

    @property
    def instances(self) -> set[str]:
        return set(self.last_success)


def _auth_headers(settings: PushgatewaySettings) -> dict[str, str]:
    if not settings.username:
        return {}
    return {"Authorization": basic_authorization(settings.username, settings.password)}


def read_groups(settings: PushgatewaySettings, timeout: float) -> Groups:
    """The job's groups. Raises ``OSError`` (URLError, HTTPError, a timeout) when it cannot."""
    assert settings.url is not None
    request = Request(f"{settings.url.rstrip('/')}/metrics", headers=_auth_headers(settings))
    job = f'job="{_escape(settings.job)}"'.encode()
    kept: list[bytes] = []
    with urlopen(request, timeout=timeout) as response:
        for line in response:
            if line.startswith(_KEPT) and job in line:
                kept.append(line)
    groups = Groups()
    for family in text_string_to_metric_families(b"".join(kept).decode()):
        for sample in family.samples:
            instance = sample.labels.get("instance", "")
            sources = groups.last_success.setdefault(instance, {})
            if sample.name == LAST_SUCCESS and "source" in sample.labels:
                sources[sample.labels["source"]] = float(sample.value)
            elif sample.name == OWNER and "collector" in sample.labels:
                groups.owner[instance] = sample.labels["collector"]
    return groups


def _escape(value: str) -> str:
    """A label value as the exposition format writes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _group_path(job: str, instance: str) -> str:
    """The grouping-key path; a value with a '/' goes base64-encoded, as the Pushgateway's
    API (and prometheus_client) spells it."""
    parts = []
    for name, value in (("job", job), ("instance", instance)):
        if "/" in value or not value:
            encoded = base64.urlsafe_b64encode(value.encode()).decode() or "="
            parts.append(f"{name}@base64/{encoded}")
        else:
            parts.append(f"{name}/{quote(value, safe='')}")
    return "/".join(parts)


def delete_groups(
    settings: PushgatewaySettings,
    instances: Iterable[str],
    deadline: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[list[str], list[str]]:
    """Delete each group, one at a time, until ``deadline`` (monotonic): each request waits
    at most PUSHGATEWAY_TIMEOUT_SECONDS or what is left. Returns (deleted, failed with their
    cause); the groups the deadline left are failed too, for the next pass. Never raises."""
    assert settings.url is not None
    deleted: list[str] = []
    failed: list[str] = []
    left = sorted(instances)
    while left:
        remaining = deadline - monotonic()
        if remaining < MIN_REQUEST_SECONDS:
            failed += [f"{instance}: the invocation's deadline came first" for instance in left]
            break
        instance = left.pop(0)
        url = f"{settings.url.rstrip('/')}/metrics/{_group_path(settings.job, instance)}"
        request = Request(url, method="DELETE", headers=_auth_headers(settings))
        try:
            with urlopen(request, timeout=min(settings.timeout_seconds, remaining)) as response:
                response.read()
            deleted.append(instance)
        except Exception as exc:  # any failure is this group's, never the invocation's
            failed.append(f"{instance}: {describe_pushgateway_failure(exc)}")
    return deleted, failed
