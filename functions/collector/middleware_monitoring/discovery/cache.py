"""What discovery knows, per unit (one kind in one region of one account), kept as long as the
function instance: refreshed at most every DISCOVER_MAX_AGE_SECONDS, in the background of
the pass that finds it stale.

- A pass starts a refresh of the units that are due (never succeeded, failed last time, or
  older than the max age) unless one is running, and waits for it at most a share of its
  budget: COLD_START_SHARE while some unit has not finished its first refresh (nothing to
  collect from yet), WARM_SHARE otherwise. A refresh that takes longer goes on in the background and
  serves a later pass; it stops asking at the deadline of the latest pass (a unit whose
  calls were not all made by then fails with reason ``deadline``).
- A unit whose refresh fails keeps its last known resources, and the target list is not
  complete until every unit has succeeded on its latest refresh: nothing is deleted from
  the Pushgateway on a failed discovery's word.
- Accounts and regions are refreshed concurrently (at most MAX_CONCURRENT at a time), the
  kinds of one account and region one after another (they share one pending-maintenance
  call).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..aws import AwsFailure
from ..config import (
    AwsLocation,
    DiscoveredSpec,
    DiscoverySettings,
    PostgresSettings,
    RedisSettings,
    ResourceKey,
)
from ..config.elasticache import NODE_DEFAULTS
from .describe import DESCRIBE, PAGE_SIZE, Location, classify
from .resources import Resource
from .specs import kind_prefixed, make_spec, target_name

if TYPE_CHECKING:
    from ..aws import AwsSessions

logger = logging.getLogger(__name__)

COLD_START_SHARE: Final = 0.4
WARM_SHARE: Final = 0.1
MAX_CONCURRENT: Final = 8
# Describe calls answer in well under a second; these bound one that cannot.
CONNECT_TIMEOUT_SECONDS: Final = 3.0
READ_TIMEOUT_SECONDS: Final = 10.0
MAX_ATTEMPTS: Final = 3

UP = "middleware_discovery_up"
FAILURE = "middleware_discovery_failure"
DURATION = "middleware_discovery_duration_seconds"
LAST_SUCCESS = "middleware_discovery_last_success_timestamp_seconds"
RESOURCES = "middleware_discovery_resources"
ENRICHMENT_UP = "middleware_discovery_enrichment_up"
ENRICHMENT_FAILURE = "middleware_discovery_enrichment_failure"


@dataclass
class Unit:
    role_arn: str | None  # None: the function's own credentials
    region: str
    kind: str
    # Last known (kept when a refresh fails); None until the first success.
    resources: tuple[Resource, ...] | None = None
    failure: AwsFailure | None = None
    duration_seconds: float = 0.0
    # Wall clock (Lambda may freeze monotonic clocks between invocations): for the series,
    # and for the max age of what was found.
    succeeded_at: float | None = None


class Discovery:
    """Thread-safe: the refresh runs in threads of its own while passes read."""

    def __init__(
        self,
        settings: DiscoverySettings,
        sessions: AwsSessions,
        *,
        here_region: str | None,
        postgres_defaults: PostgresSettings,
        redis_defaults: RedisSettings = NODE_DEFAULTS,
        page_size: int = PAGE_SIZE,
        client: Callable[[str, AwsLocation], Any] | None = None,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._here_region = here_region
        self._defaults = postgres_defaults
        self._redis_defaults = redis_defaults
        self._page_size = page_size
        self._make_client = client or self._new_client
        places: list[str | None] = [None] if settings.own_account else []
        places += list(settings.role_arns)
        self._units = [
            Unit(place, region, kind)
            for place in places
            for region in settings.regions
            for kind in settings.kinds
        ]
        self._lock = threading.Lock()
        self._clients: dict[tuple[str | None, str, str], Any] = {}
        self._client_lock = threading.Lock()
        self._own_account: str | None = None
        self._identity_lock = threading.Lock()
        self._running: threading.Event | None = None
        self._deadline = 0.0  # the latest pass's
        self._slots = threading.Semaphore(MAX_CONCURRENT)
        self._dirty = True
        self._specs: list[DiscoveredSpec] = []
        self._resources: dict[ResourceKey, Resource] = {}
        self._told: set[ResourceKey] = set()  # resources whose missing login was logged
        self._shadowed: set[str] = set()  # names a configured target took, logged
        # (role ARN, region, call) -> why the enrichment call failed on its latest try, or
        # None when it answered; only calls that were made.
        self._enrichment: dict[tuple[str | None, str, str], AwsFailure | None] = {}

    # --- a pass -----------------------------------------------------------------------------

    def refresh(self, budget_seconds: float, deadline: float) -> None:
        """Start a refresh of the units that are due (unless one runs) and wait for it at
        most a share of the pass's budget; never raises."""
        with self._lock:
            self._deadline = max(self._deadline, deadline)
            if self._running is None:
                due = [unit for unit in self._units if self._due(unit)]
                if due:
                    self._running = self._start(due)
            running = self._running
            # Cold: a unit has not finished a refresh yet (a unit that keeps failing, say a
            # region that cannot be reached, must not cost every pass the cold share).
            cold = any(unit.resources is None and unit.failure is None for unit in self._units)
        if running is not None:
            running.wait(timeout=(COLD_START_SHARE if cold else WARM_SHARE) * budget_seconds)

    def specs(self, taken: set[str]) -> tuple[list[DiscoveredSpec], bool]:
        """The discovered targets whose name no configured target has (``taken``: the
        configured one wins, said once per name), and whether the list is complete."""
        with self._lock:
            if self._dirty:
                self._rebuild()
            specs = self._specs
            complete = all(u.resources is not None and u.failure is None for u in self._units)
            kept: list[DiscoveredSpec] = []
            for spec in specs:
                if spec.target_name not in taken:
                    kept.append(spec)
                elif spec.target_name not in self._shadowed:
                    self._shadowed.add(spec.target_name)
                    logger.warning(
                        "discovered target not used",
                        extra={
                            "target": spec.target_name,
                            "detail": f"a configured target has the name of {spec.origin}; "
                            "the configured one is collected",
                        },
                    )
        return kept, complete

    def resource(self, key: ResourceKey) -> Resource | None:
        with self._lock:
            return self._resources.get(key)

    def families(self) -> Iterator[Metric]:
        """Per unit: up, the reason it is down, how long its latest refresh took, when it
        last succeeded, and how many resources it knows."""
        labels = ["account", "region", "kind"]
        up = GaugeMetricFamily(
            UP, "1 if the unit's latest discovery refresh succeeded.", labels=labels
        )
        failure = GaugeMetricFamily(
            FAILURE,
            "1 for the reason a discovery unit's latest refresh failed (absent while up).",
            labels=[*labels, "reason"],
        )
        duration = GaugeMetricFamily(
            DURATION, "Time the unit's latest refresh took.", labels=labels
        )
        success = GaugeMetricFamily(
            LAST_SUCCESS, "Unix time of the unit's last successful refresh.", labels=labels
        )
        count = GaugeMetricFamily(
            RESOURCES,
            "Resources the unit knows (the last known ones while it fails).",
            labels=labels,
        )
        with self._lock:
            for unit in self._units:
                values = [self._account(unit) or "", unit.region, unit.kind]
                ok = unit.resources is not None and unit.failure is None
                up.add_metric(values, 1.0 if ok else 0.0)
                if not ok:
                    reason = unit.failure.reason if unit.failure else "pending"
                    failure.add_metric([*values, reason], 1.0)
                duration.add_metric(values, unit.duration_seconds)
                if unit.succeeded_at is not None:
                    success.add_metric(values, unit.succeeded_at)
                count.add_metric(values, float(len(unit.resources or ())))
        enrichment_up = GaugeMetricFamily(
            ENRICHMENT_UP,
            "1 if the enrichment call (e.g. DescribePendingMaintenanceActions) answered on its "
            "latest try; 0: the resources are still found, the series it feeds are absent.",
            labels=["account", "region", "call"],
        )
        enrichment_failure = GaugeMetricFamily(
            ENRICHMENT_FAILURE,
            "1 for the reason an enrichment call failed on its latest try (absent while up).",
            labels=["account", "region", "call", "reason"],
        )
        with self._lock:
            for (role_arn, region, call), why in sorted(
                self._enrichment.items(), key=lambda item: (item[0][0] or "", *item[0][1:])
            ):
                values = [self._account_of_place(role_arn) or "", region, call]
                enrichment_up.add_metric(values, 0.0 if why else 1.0)
                if why is not None:
                    enrichment_failure.add_metric([*values, why.reason], 1.0)
        yield from (
            f
            for f in (up, failure, duration, success, count, enrichment_up, enrichment_failure)
            if f.samples
        )

    # --- refreshing ---------------------------------------------------------------------------

    def _due(self, unit: Unit) -> bool:
        return (
            unit.resources is None
            or unit.failure is not None
            or unit.succeeded_at is None
            or time.time() - unit.succeeded_at >= self.settings.max_age_seconds
        )

    def _start(self, due: list[Unit]) -> threading.Event:
        done = threading.Event()
        groups: dict[tuple[str | None, str], list[Unit]] = {}
        for unit in due:
            groups.setdefault((unit.role_arn, unit.region), []).append(unit)

        def run() -> None:
            threads = [
                threading.Thread(
                    target=self._refresh_group,
                    args=(role, region, units),
                    name="discovery",
                    daemon=True,
                )
                for (role, region), units in groups.items()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with self._lock:
                self._running = None
            done.set()

        # Daemons: a call stuck past its timeouts never holds up the process's exit.
        threading.Thread(target=run, name="discovery", daemon=True).start()
        return done

    def _refresh_group(self, role_arn: str | None, region: str, units: list[Unit]) -> None:
        with self._slots:
            started = time.monotonic()
            try:
                account = self._account_of(role_arn, region)
            except Exception as exc:  # every kind of this account and region fails with it
                for unit in units:
                    self._finish(unit, None, classify(exc), time.monotonic() - started)
                return
            where = Location(
                account,
                region,
                lambda service: self._client(service, AwsLocation(region, role_arn, account)),
                self.settings,
                self._pass_deadline,
                self._page_size,
                time.monotonic,
            )
            for unit in units:
                started = time.monotonic()
                try:
                    found = DESCRIBE[unit.kind](where)
                except Exception as exc:
                    self._finish(unit, None, classify(exc), time.monotonic() - started)
                else:
                    self._finish(unit, found, None, time.monotonic() - started)
            self._enriched(role_arn, account, region, where.enrichment)

    def _enriched(
        self,
        role_arn: str | None,
        account: str,
        region: str,
        calls: dict[str, AwsFailure | None],
    ) -> None:
        with self._lock:
            for call, why in calls.items():
                self._enrichment[(role_arn, region, call)] = why
        for call, why in calls.items():
            if why is not None:
                logger.warning(
                    "discovery enrichment failed",
                    extra={
                        "account": account,
                        "region": region,
                        "call": call,
                        "reason": why.reason,
                        "detail": f"{why.detail}; the resources are still found, without "
                        "the series this call feeds",
                    },
                )

    def _finish(
        self,
        unit: Unit,
        found: list[Resource] | None,
        failure: AwsFailure | None,
        duration: float,
    ) -> None:
        with self._lock:
            unit.duration_seconds = duration
            unit.failure = failure
            if found is not None:
                unit.resources = tuple(found)
                unit.succeeded_at = time.time()
                self._dirty = True
        if failure is not None:
            logger.warning(
                "discovery failed",
                extra={
                    "account": self._account(unit) or "",
                    "region": unit.region,
                    "kind": unit.kind,
                    "reason": failure.reason,
                    "detail": f"{failure.detail}; its last known "
                    f"{len(unit.resources or ())} resources are kept",
                },
            )

    def _pass_deadline(self) -> float:
        with self._lock:
            return self._deadline

    def _account(self, unit: Unit) -> str | None:
        return self._account_of_place(unit.role_arn)

    def _account_of_place(self, role_arn: str | None) -> str | None:
        if role_arn is None:
            return self._own_account
        return role_arn.split(":")[4]

    def _account_of(self, role_arn: str | None, region: str) -> str:
        """A role's account is in its ARN; the function's own is asked once (STS
        GetCallerIdentity needs no permission)."""
        if role_arn is not None:
            return role_arn.split(":")[4]
        # One at a time: the own account's regions are refreshed concurrently.
        with self._identity_lock:
            if self._own_account is None:
                identity = self._client("sts", AwsLocation(region)).get_caller_identity()
                with self._lock:
                    self._own_account = str(identity["Account"])
            return self._own_account

    def _client(self, service: str, location: AwsLocation) -> Any:
        # Created one at a time: botocore sessions are not safe to create clients from
        # concurrently; the clients themselves are.
        with self._client_lock:
            key = (location.role_arn, location.region or "", service)
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._make_client(service, location)
            return client

    def _new_client(self, service: str, location: AwsLocation) -> Any:
        config = self._sessions.client_config(
            location.region,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            max_attempts=MAX_ATTEMPTS,
        )
        return self._sessions.client(service, location, config)

    # --- from resources to specs -------------------------------------------------------------

    def _rebuild(self) -> None:
        """Specs of every known resource (under the lock). A resource found twice (the own
        account and a role in it) is kept once; a name two resources of one place would
        share goes to the first, the other is prefixed with its kind."""
        specs: list[DiscoveredSpec] = []
        resources: dict[ResourceKey, Resource] = {}
        names: set[str] = set()
        for unit in self._units:
            account = self._account(unit) or ""
            elsewhere = unit.role_arn is not None or unit.region != self._here_region
            location = AwsLocation(unit.region, unit.role_arn, account)
            for resource in unit.resources or ():
                if resource.key in resources:
                    continue
                resources[resource.key] = resource
                name = target_name(resource.key, elsewhere)
                if name in names:
                    name = kind_prefixed(resource.key, name)
                names.add(name)
                spec, note = make_spec(
                    resource, name, location, self.settings, self._defaults, self._redis_defaults
                )
                specs.append(spec)
                if note is not None and resource.key not in self._told:
                    self._told.add(resource.key)
                    logger.info(
                        "discovered without a login", extra={"target": name, "detail": note}
                    )
        self._specs, self._resources, self._dirty = specs, resources, False
        # What was said once is said again if a resource that left comes back.
        self._told &= resources.keys()
        self._shadowed &= names
