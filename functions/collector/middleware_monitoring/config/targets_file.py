"""A targets document (SPEC 9): any number of PostgreSQL, DocumentDB and ElastiCache node
targets and CloudWatch-only ids, from a YAML or JSON file (TARGETS_FILE) or an SSM parameter
(TARGETS_PARAMETER). Lambda caps its environment at 4 KB in all: a fleet lives here.

Every entry becomes the same plain spec the environment variables give (PostgresSettings,
DocDBSettings, RedisSettings, CloudWatchTarget), with the options every target of its kind
shares (timeouts, top N, ...) taken from the environment. Every problem is reported, named by
the document, the entry (``postgres[3] (orders-db)``) and the key; no secret value is echoed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from ..paths import DEFAULT_SEARCH_DIRS
from .aws import AwsLocation
from .cloudwatch import CloudWatchTarget, cloudwatch_target_name
from .docdb import DocDBSettings, option_problem, option_text, with_tls_default
from .elasticache import DEFAULT_PORT as REDIS_PORT
from .elasticache import NODE_DEFAULTS, RedisSettings
from .env import FLAGS, port_number, value_kind
from .pg_queries import QueriesFile, read_queries_file
from .postgres import (
    CA_BUNDLE,
    PG_SSLMODES,
    RDS_TYPES,
    PostgresSettings,
    default_sslmode,
    parse_databases,
    tls_problem,
)

SECTIONS: Final = ("postgres", "docdb", "elasticache", "cloudwatch")
_LOCATION_KEYS: Final = ("region", "role_arn")
POSTGRES_KEYS: Final = (
    "name",
    "host",
    "port",
    "dbname",
    "user",
    "secret_arn",
    "iam_auth",
    "password",
    "sslmode",
    "sslrootcert",
    "rds_id",
    "rds_type",
    *_LOCATION_KEYS,
    "queries_file",
    "databases",
)
DOCDB_KEYS: Final = ("name", "host", "port", "user", "secret_arn", "password", "options")
ELASTICACHE_KEYS: Final = (
    "name",
    "host",
    "port",
    "tls",
    "tls_ca_file",
    "user",
    "secret_arn",
    "password",
    "cache_cluster_id",
    "cache_node_id",
    *_LOCATION_KEYS,
)
# The CloudWatch-only lists, and the kind of target each id becomes.
CLOUDWATCH_LISTS: Final = {
    "rds_instances": "rds_instance",
    "aurora_clusters": "aurora_cluster",
    "docdb_instances": "docdb_instance",
    "docdb_clusters": "docdb_cluster",
    "elasticache": "elasticache",
}
EXAMPLE: Final = (
    "postgres: [{name: orders-db, host: orders.abc.eu-west-1.rds.amazonaws.com, "
    "secret_arn: arn:aws:secretsmanager:...}]"
)


@dataclass(frozen=True)
class TargetsDocument:
    """The targets of one document, as specs."""

    postgres: tuple[PostgresSettings, ...] = ()
    docdb: tuple[DocDBSettings, ...] = ()
    elasticache: tuple[RedisSettings, ...] = ()
    cloudwatch: tuple[CloudWatchTarget, ...] = ()

    def specs(self) -> list[PostgresSettings | DocDBSettings | RedisSettings | CloudWatchTarget]:
        return [*self.postgres, *self.docdb, *self.elasticache, *self.cloudwatch]


def _type_name(value: Any) -> str:
    return value_kind(value, null="nothing", mapping="a mapping")


class Entry:
    """Reads one mapping of the document; each problem is recorded under ``where.key``."""

    def __init__(
        self,
        problems: list[str],
        where: str,
        value: Mapping[str, Any],
        keys: Collection[str],
        secret_keys: Collection[str] = (),
    ) -> None:
        self.problems = problems
        self.where = where
        self._value = value
        self._secret_keys = frozenset(secret_keys)
        for key in value:
            if key not in keys:
                self.problem(str(key), f"unknown key; expected {', '.join(keys)}")

    def raw(self, key: str) -> Any:
        return self._value.get(key)

    def has(self, key: str) -> bool:
        return self._value.get(key) not in (None, "")

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where}.{key}: {message}")

    def _shown(self, key: str, value: Any) -> str:
        if key in self._secret_keys:
            return "(hidden)"
        return repr(value) if isinstance(value, str) else _type_name(value)

    def text(self, key: str, *, required: str | None = None) -> str | None:
        """A string (a number is taken as its text); ``required`` says why it must be there."""
        value = self._value.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required is not None:
                self.problem(key, f"is required ({required})")
            return None
        if isinstance(value, bool):
            self.problem(key, f"expected a string, got {_type_name(value)} (YAML reads yes, no, "
                         "on and off unquoted as true/false: quote the value)")  # fmt: skip
            return None
        if not isinstance(value, (str, int, float)):
            self.problem(key, f"expected a string, got {_type_name(value)}")
            return None
        return str(value).strip()

    def secret(self, key: str) -> str | None:
        value = self._value.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.problem(key, f"expected a string, got {_type_name(value)}")
            return None
        return value

    def port(self, key: str, default: int) -> int:
        value = self._value.get(key)
        if value is None:
            return default
        port = port_number(value)
        if port is None:
            self.problem(
                key, f"expected a port number from 1 to 65535, got {self._shown(key, value)}"
            )
            return default
        return port

    def flag(self, key: str, default: bool) -> bool:
        value = self._value.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        parsed = FLAGS.get(value.lower()) if isinstance(value, str) else None
        if parsed is None:
            self.problem(key, f"expected true or false, got {self._shown(key, value)}")
            return default
        return parsed

    def choice(self, key: str, allowed: Sequence[str], default: str) -> str:
        value = self.text(key)
        if value is None:
            return default
        if value not in allowed:
            self.problem(key, f"expected one of {', '.join(allowed)}, got {value!r}")
            return default
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self._value.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a mapping of key: value, got {_type_name(value)}")
            return {}
        return value

    def location(self) -> AwsLocation:
        return AwsLocation(region=self.text("region"), role_arn=self.text("role_arn"))


def _entries(
    problems: list[str], document: str, section: str, value: Any
) -> list[tuple[str, Mapping[str, Any]]]:
    """``section``'s entries as (where, mapping): ``postgres[3] (orders-db)``."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(
            f"{document}: {section}: expected a list of entries, got {_type_name(value)}"
        )
        return []
    entries: list[tuple[str, Mapping[str, Any]]] = []
    for index, item in enumerate(value):
        where = f"{document}: {section}[{index}]"
        if not isinstance(item, Mapping):
            problems.append(
                f"{where}: expected a mapping (name: ..., host: ...), got {_type_name(item)}"
            )
            continue
        name = item.get("name")
        if isinstance(name, str) and name.strip():
            where += f" ({name.strip()})"
        entries.append((where, item))
    return entries


# Files read while parsing one document: a fleet's entries often name the same file.
QueriesCache = dict[str, tuple[QueriesFile | None, list[str]]]


def _queries_file(
    entry: Entry, defaults: PostgresSettings, search_dirs: Sequence[Path], cache: QueriesCache
) -> QueriesFile | None:
    name = entry.text("queries_file")
    if name is None:
        return defaults.custom_queries
    if name not in cache:
        cache[name] = read_queries_file(name, search_dirs)
    queries, problems = cache[name]
    for problem in problems:
        entry.problem("queries_file", problem)
    return queries


def _databases(entry: Entry, defaults: PostgresSettings) -> tuple[bool, tuple[str, ...]]:
    """``databases``: ``all``, a list of names, or a comma-separated string."""
    value = entry.raw("databases")
    if value is None:
        return defaults.all_databases, defaults.databases
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        value = ",".join(value)
    parsed = parse_databases(value) if isinstance(value, str) else None
    if parsed is None or (not parsed[0] and "all" in parsed[1]):
        entry.problem(
            "databases", f"expected all or a list of database names, got {_type_name(value)}"
        )
        return defaults.all_databases, defaults.databases
    return parsed


def _postgres(
    entry: Entry,
    defaults: PostgresSettings,
    search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS,
    cache: QueriesCache | None = None,
) -> PostgresSettings | None:
    before = len(entry.problems)
    custom_queries = _queries_file(entry, defaults, search_dirs, {} if cache is None else cache)
    name = entry.text("name", required="the target's instance name")
    host = entry.text("host", required="the endpoint's host name")
    secret_arn = entry.text("secret_arn")
    iam_auth = entry.flag("iam_auth", False)
    password = entry.secret("password")
    logins = [key for key, given in (("password", password), ("secret_arn", secret_arn)) if given]
    if iam_auth:
        logins.append("iam_auth")
    if len(logins) > 1:
        entry.problem(logins[0], f"is given together with {' and '.join(logins[1:])}; the "
                      "password comes from one of them")  # fmt: skip
    user = entry.text("user", required=None if secret_arn else "the login, unless secret_arn")
    sslmode = entry.choice("sslmode", PG_SSLMODES, default_sslmode(host or ""))
    sslrootcert = entry.text("sslrootcert")
    if sslrootcert is None and not entry.has("sslmode") and sslmode.startswith("verify-"):
        sslrootcert = CA_BUNDLE
    problem = tls_problem(sslmode, sslrootcert, iam_auth)
    if problem is not None:
        entry.problem("sslmode" if iam_auth else "sslrootcert", problem)
    port = entry.port("port", defaults.port)
    database = entry.text("dbname") or defaults.database
    rds_type = entry.choice("rds_type", RDS_TYPES, RDS_TYPES[0])
    location = entry.location()
    all_databases, databases = _databases(entry, defaults)
    if len(entry.problems) > before or name is None or host is None:
        return None
    from_secret = frozenset(
        key for key in ("port", "dbname") if secret_arn is not None and not entry.has(key)
    )
    return replace(
        defaults,
        target_name=name,
        host=host,
        port=port,
        user=user or "",
        password=password or "",
        database=database,
        sslmode=sslmode,
        sslrootcert=sslrootcert,
        rds_id=entry.text("rds_id"),
        rds_type=rds_type,
        secret_arn=secret_arn,
        from_secret=from_secret,
        iam_auth=iam_auth,
        aws=location,
        origin=entry.where.replace(": ", " ", 1),
        custom_queries=custom_queries,
        all_databases=all_databases,
        databases=databases,
    )


def _docdb(entry: Entry) -> DocDBSettings | None:
    before = len(entry.problems)
    name = entry.text("name", required="the target's instance name")
    host = entry.text("host", required="the cluster endpoint's host name")
    user = entry.text("user")
    password = entry.secret("password")
    secret_arn = entry.text("secret_arn")
    if password is not None and secret_arn is not None:
        entry.problem("password", "is given together with secret_arn; use one of them")
    if password is not None and user is None:
        entry.problem("user", "is required with password")
    parameters: list[tuple[str, str]] = []
    for key, value in entry.mapping("options").items():
        text = option_text(value)
        problem = (
            "expected a string, number or true/false" if text is None else option_problem(key, text)
        )
        if problem is not None:
            entry.problem(f"options.{key}", problem)
        elif text is not None:
            parameters.append((str(key), text))
    port = entry.port("port", 27017)
    if len(entry.problems) > before or name is None or host is None:
        return None
    return DocDBSettings(
        target_name=name,
        variable=entry.where.replace(": ", " ", 1),
        address=host,
        port=port,
        user=user if secret_arn is None else None,
        password=password,
        parameters=tuple(with_tls_default(host, parameters)),
        secret_arn=secret_arn,
    )


def _elasticache(entry: Entry, defaults: RedisSettings) -> RedisSettings | None:
    before = len(entry.problems)
    name = entry.text("name", required="the target's instance name")
    host = entry.text("host", required="the node's endpoint")
    password = entry.secret("password")
    secret_arn = entry.text("secret_arn")
    if password is not None and secret_arn is not None:
        entry.problem("password", "is given together with secret_arn; use one of them")
    user = entry.text("user")
    if user is not None and password is None and secret_arn is None:
        entry.problem("user", "needs its password (password or secret_arn)")
    tls = entry.flag("tls", False)
    tls_ca_file = entry.text("tls_ca_file")
    if tls_ca_file is not None and not tls:
        entry.problem("tls_ca_file", "is given without tls: true")
    port = entry.port("port", REDIS_PORT)
    cluster, node = entry.text("cache_cluster_id"), entry.text("cache_node_id")
    if node is not None and cluster is None:
        entry.problem("cache_node_id", "needs cache_cluster_id")
    location = entry.location()
    if len(entry.problems) > before or name is None or host is None:
        return None
    return replace(
        defaults,
        target_name=name,
        host=host,
        origin=entry.where.replace(": ", " ", 1),
        port=port,
        tls=tls,
        tls_ca_file=tls_ca_file,
        user=user,
        password=password,
        secret_arn=secret_arn,
        cache_cluster_id=cluster,
        cache_node_id=node,
        aws=location,
    )


def _cloudwatch(problems: list[str], document: str, value: Any) -> list[CloudWatchTarget]:
    if value is None:
        return []
    where = f"{document}: cloudwatch"
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected a mapping of id lists ({', '.join(CLOUDWATCH_LISTS)})")
        return []
    entry = Entry(problems, where, value, tuple(CLOUDWATCH_LISTS))
    made: list[CloudWatchTarget] = []
    for key, kind in CLOUDWATCH_LISTS.items():
        ids = value.get(key)
        if ids is None:
            continue
        if not isinstance(ids, list):
            entry.problem(key, f"expected a list of ids, got {_type_name(ids)}")
            continue
        for index, item in enumerate(ids):
            node = None
            if kind == "elasticache" and isinstance(item, Mapping):
                cluster, node = item.get("cluster"), item.get("node")
                if set(item) != {"cluster", "node"} or not all(
                    isinstance(v, str) and v.strip() for v in (cluster, node)
                ):
                    entry.problem(
                        f"{key}[{index}]", "expected a cluster id or {cluster: ..., node: ...}"
                    )
                    continue
                item, node = str(cluster).strip(), str(node).strip()
            if not isinstance(item, str) or not item.strip():
                entry.problem(f"{key}[{index}]", f"expected an id string, got {_type_name(item)}")
                continue
            identifier = item.strip()
            made.append(
                CloudWatchTarget(
                    cloudwatch_target_name(kind, identifier, node),
                    kind,
                    identifier,
                    node,
                    origin=f"{document} cloudwatch.{key}[{index}]",
                )
            )
    return made


def _python_yaml(text: str) -> Any:
    """The document by PyYAML's Python loader, or the error it raised."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return exc


def parse_document(
    text: str,
    document: str,
    postgres_defaults: PostgresSettings,
    redis_defaults: RedisSettings = NODE_DEFAULTS,
    *,
    json_only: bool = False,
    search_dirs: Sequence[Path] = DEFAULT_SEARCH_DIRS,
) -> tuple[TargetsDocument, list[str]]:
    """The targets of ``text``; ``document`` names it in every problem
    (``TARGETS_FILE (targets.yaml)``). Returns the targets of the good entries and the
    problems of the bad ones: the caller decides whether a problem stops everything."""
    problems: list[str] = []
    loaded: Any
    if json_only or text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            return TargetsDocument(), [
                f"{document}: is not valid JSON ({exc.msg} at line {exc.lineno} column "
                f'{exc.colno}); expected e.g. {{"postgres": [{{"name": ..., "host": ...}}]}}'
            ]
    else:
        import yaml  # deferred: only a targets document needs it

        # libyaml's safe loader when the wheel has it (PyYAML's manylinux wheels do): about
        # five times faster than the Python one on a fleet's document, the same values. A
        # document it refuses is read again by the Python loader, whose messages are the
        # ones documented.
        try:
            loaded = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            loaded = _python_yaml(text)
        if isinstance(loaded, yaml.YAMLError):
            # Only the problem and its place: the message's snippet of the line could hold a
            # password.
            mark = getattr(loaded, "problem_mark", None)
            at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(loaded, "problem", None) or type(loaded).__name__
            return TargetsDocument(), [f"{document}: YAML syntax error{at}: {problem}"]
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, Mapping):
        return TargetsDocument(), [
            f"{document}: expected a mapping with {', '.join(SECTIONS)}, got {_type_name(loaded)};"
            f" e.g. {EXAMPLE}"
        ]
    for key in loaded:
        if key not in SECTIONS:
            problems.append(f"{document}: {key}: unknown section; expected {', '.join(SECTIONS)}")
    cache: QueriesCache = {}
    postgres = [
        _postgres(
            Entry(problems, where, item, POSTGRES_KEYS, ("password",)),
            postgres_defaults,
            search_dirs,
            cache,
        )
        for where, item in _entries(problems, document, "postgres", loaded.get("postgres"))
    ]
    docdb = [
        _docdb(Entry(problems, where, item, DOCDB_KEYS, ("password",)))
        for where, item in _entries(problems, document, "docdb", loaded.get("docdb"))
    ]
    nodes = [
        _elasticache(
            Entry(problems, where, item, ELASTICACHE_KEYS, ("password",)),
            redis_defaults,
        )
        for where, item in _entries(problems, document, "elasticache", loaded.get("elasticache"))
    ]
    return (
        TargetsDocument(
            tuple(spec for spec in postgres if spec is not None),
            tuple(spec for spec in docdb if spec is not None),
            tuple(spec for spec in nodes if spec is not None),
            tuple(_cloudwatch(problems, document, loaded.get("cloudwatch"))),
        ),
        problems,
    )


def read_targets_file(
    name: str,
    search_dirs: Sequence[Path],
    postgres_defaults: PostgresSettings,
    redis_defaults: RedisSettings = NODE_DEFAULTS,
) -> tuple[TargetsDocument, list[str]]:
    """TARGETS_FILE: a relative name is looked up next to the function, then in /opt."""
    from ..paths import find_file

    document = f"TARGETS_FILE ({name})"
    try:
        path = find_file(name, search_dirs, "targets file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # find_file's own message says where it looked; the OS's errors say why.
        detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        return TargetsDocument(), [f"{document}: cannot be read: {detail}"]
    return parse_document(
        text,
        document,
        postgres_defaults,
        redis_defaults,
        json_only=path.suffix == ".json",
        search_dirs=search_dirs,
    )
