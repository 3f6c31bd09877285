"""Discovery settings (SPEC 10): which kinds of resources to find, by which tags, in which
regions and accounts, and the plain spec of a discovered target.

Off unless DISCOVER is set. Every DISCOVER_* variable is checked here, once, with the rest
of the configuration: a typo in a tag filter or a role ARN is a configuration error at
start, not an empty fleet found later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .cloudwatch import CloudWatchTarget
from .docdb import DocDBSettings
from .elasticache import RedisSettings
from .env import EnvReader
from .postgres import CA_BUNDLE, PostgresSettings

# What DISCOVER may name, in the order units are refreshed and reported.
DISCOVER_KINDS: Final = ("rds", "aurora", "docdb", "elasticache", "docdb-elastic")
DEFAULT_SECRET_TAG: Final = "middleware-monitoring:secret-arn"
DEFAULT_MAX_AGE_SECONDS: Final = 300
DISCOVER_VARIABLES: Final = (
    "DISCOVER_TAGS",
    "DISCOVER_REGIONS",
    "DISCOVER_ROLE_ARNS",
    "DISCOVER_OWN_ACCOUNT",
    "DISCOVER_MAX_AGE_SECONDS",
    "DISCOVER_TAG_LABELS",
    "DISCOVER_PG_SECRET_TAG",
    "DISCOVER_PG_IAM_USER",
    "DISCOVER_CA_BUNDLE",
)
# us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-5...
_REGION: Final = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
_ROLE_ARN: Final = re.compile(r"arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}")
# AWS tag keys: letters, digits, spaces and _ . : / = + - @ (no comma: the list separator).
_TAG_KEY: Final = re.compile(r"[\w .:/=+\-@]{1,128}")
_TAG_VALUE: Final = re.compile(r"[\w .:/=+\-@]{0,256}")
_LABEL_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class DiscoverySettings:
    kinds: tuple[str, ...]
    # (key, value): the resource carries the tag with that value; value None: the tag is there.
    tags: tuple[tuple[str, str | None], ...]
    regions: tuple[str, ...]
    role_arns: tuple[str, ...]
    own_account: bool
    max_age_seconds: int
    # (tag key, label name): the tag_<key> labels of aws_resource_info.
    tag_labels: tuple[tuple[str, str], ...]
    pg_secret_tag: str
    pg_iam_user: str | None
    # The CA bundle discovered PostgreSQL and DocumentDB servers are verified against.
    ca_bundle: str = CA_BUNDLE

    def matches(self, tags: Mapping[str, str]) -> bool:
        """A resource carrying ``tags`` is one to monitor."""
        return all(
            key in tags and (value is None or tags[key] == value) for key, value in self.tags
        )


@dataclass(frozen=True)
class ResourceKey:
    """One discovered resource: where it is, what it is, its id (and an ElastiCache node's)."""

    account: str
    region: str
    kind: str  # rds_instance, aurora_cluster, aurora_instance, docdb_cluster, ...
    identifier: str
    node: str | None = None


@dataclass(frozen=True)
class DiscoveredSpec:
    """A discovered resource's target: the plain specs of what is collected from it (each
    named like the target: its CloudWatch metrics, plus SQL or serverStatus when a login is
    known) and the resource whose latest inventory the target reports.

    Nothing that changes between Describe answers (engine version, tags, inventory values)
    is in here: a spec that is equal keeps its target, with its connections and QPS state;
    those values are read from the discovery cache when the target is collected."""

    target_name: str
    resource: ResourceKey
    specs: tuple[PostgresSettings | DocDBSettings | RedisSettings | CloudWatchTarget, ...]
    origin: str


def tag_label(key: str) -> str:
    """``tag_<key>`` as a valid Prometheus label name: anything but letters, digits and _
    becomes _ (``cost-center`` -> ``tag_cost_center``)."""
    return "tag_" + _LABEL_UNSAFE.sub("_", key)


def _items(env: EnvReader, name: str) -> list[str]:
    raw = env.text(name)
    if raw is None:
        return []
    return [item.strip() for item in raw.split(",") if item.strip()]


def _kinds(env: EnvReader) -> tuple[str, ...]:
    items = _items(env, "DISCOVER")
    unknown = [item for item in items if item not in DISCOVER_KINDS]
    if unknown or not items:
        env.problem(
            "DISCOVER",
            f"expected a comma list of {', '.join(DISCOVER_KINDS)}, got {env.text('DISCOVER')!r}"
            + (f" ({', '.join(map(repr, unknown))} unknown)" if unknown else ""),
        )
    return tuple(kind for kind in DISCOVER_KINDS if kind in items)


def _tags(env: EnvReader) -> tuple[tuple[str, str | None], ...]:
    tags: dict[str, str | None] = {}
    for item in _items(env, "DISCOVER_TAGS"):
        key, equals, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not _TAG_KEY.fullmatch(key) or not _TAG_VALUE.fullmatch(value):
            env.problem(
                "DISCOVER_TAGS",
                f"expected key=value pairs or bare keys, comma separated (e.g. "
                f"team=payments,monitored), got {item!r}",
            )
        elif key in tags:
            env.problem(
                "DISCOVER_TAGS",
                f"names the tag {key!r} twice; a resource carries one value per tag, so both "
                "can never match",
            )
        else:
            tags[key] = value if equals else None
    return tuple(tags.items())


def _regions(env: EnvReader) -> tuple[str, ...]:
    regions = _items(env, "DISCOVER_REGIONS")
    if not regions:
        region = env.aws_region()
        if region is None:
            env.problem(
                "DISCOVER_REGIONS",
                "is required when AWS_REGION is not set (the regions to search, e.g. "
                "eu-west-1,eu-central-1)",
            )
        return (region,) if region else ()
    wrong = [region for region in regions if not _REGION.fullmatch(region)]
    if wrong:
        env.problem(
            "DISCOVER_REGIONS",
            f"expected a comma list of AWS regions like eu-west-1, got "
            f"{', '.join(map(repr, wrong))}",
        )
    return tuple(dict.fromkeys(regions))


def _role_arns(env: EnvReader) -> tuple[str, ...]:
    arns = _items(env, "DISCOVER_ROLE_ARNS")
    wrong = [arn for arn in arns if not _ROLE_ARN.fullmatch(arn)]
    if wrong:
        env.problem(
            "DISCOVER_ROLE_ARNS",
            "expected a comma list of IAM role ARNs like "
            f"arn:aws:iam::123456789012:role/monitoring-discovery, got "
            f"{', '.join(map(repr, wrong))}",
        )
    return tuple(dict.fromkeys(arns))


def _tag_labels(env: EnvReader) -> tuple[tuple[str, str], ...]:
    labels: dict[str, str] = {}
    for key in dict.fromkeys(_items(env, "DISCOVER_TAG_LABELS")):
        if not _TAG_KEY.fullmatch(key):
            env.problem("DISCOVER_TAG_LABELS", f"expected a comma list of tag keys, got {key!r}")
            continue
        label = tag_label(key)
        if label in labels.values():
            first = next(k for k, v in labels.items() if v == label)
            env.problem(
                "DISCOVER_TAG_LABELS",
                f"tag keys {first!r} and {key!r} both become the label {label}; keep one",
            )
            continue
        labels[key] = label
    return tuple(labels.items())


def load_discovery(env: EnvReader) -> DiscoverySettings | None:
    """DISCOVER and its DISCOVER_* options, or None when discovery is off."""
    if not env.has("DISCOVER"):
        stray = [name for name in DISCOVER_VARIABLES if env.has(name)]
        if stray:
            env.problem(
                "DISCOVER",
                f"is required when {', '.join(stray)} {'is' if len(stray) == 1 else 'are'} "
                f"set (the kinds to find: {', '.join(DISCOVER_KINDS)})",
            )
        return None
    kinds = _kinds(env)
    role_arns = _role_arns(env)
    own_account = env.flag("DISCOVER_OWN_ACCOUNT", True)
    if not own_account and not role_arns:
        env.problem(
            "DISCOVER_OWN_ACCOUNT",
            "is false and DISCOVER_ROLE_ARNS is empty: no account would be searched",
        )
    secret_tag = env.text("DISCOVER_PG_SECRET_TAG", DEFAULT_SECRET_TAG) or DEFAULT_SECRET_TAG
    if not _TAG_KEY.fullmatch(secret_tag):
        env.problem("DISCOVER_PG_SECRET_TAG", f"expected a tag key, got {secret_tag!r}")
    return DiscoverySettings(
        kinds=kinds,
        tags=_tags(env),
        regions=_regions(env),
        role_arns=role_arns,
        own_account=own_account,
        max_age_seconds=env.integer("DISCOVER_MAX_AGE_SECONDS", DEFAULT_MAX_AGE_SECONDS, 0, 86400),
        tag_labels=_tag_labels(env),
        pg_secret_tag=secret_tag,
        pg_iam_user=env.text("DISCOVER_PG_IAM_USER"),
        ca_bundle=env.text("DISCOVER_CA_BUNDLE", CA_BUNDLE) or CA_BUNDLE,
    )
