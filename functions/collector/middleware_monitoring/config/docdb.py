"""DocumentDB settings from MONGO_INFO (one object or a list) and MONGO_SECRET_ARN."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from .env import EnvReader, port_number, value_kind


@dataclass(frozen=True)
class DocDBSettings:
    """One DocumentDB target from MONGO_INFO (an object, or one element of a list)."""

    target_name: str
    # Where it came from, e.g. ``MONGO_INFO[1]``: names the target in messages.
    variable: str
    address: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    # The ``parameter`` object as the user wrote it (values as strings), in order.
    parameters: tuple[tuple[str, str], ...]
    # MONGO_SECRET_ARN, for a target without user/pwd of its own: the login is read from it.
    secret_arn: str | None = None

    @property
    def origin(self) -> str:
        return self.variable


@dataclass(frozen=True)
class MongoCollectionBounds:
    """How much of a DocumentDB server's collections a pass reads (SPEC 18).

    ``top_n`` (MONGO_COLLECTIONS_TOP_N): the largest collections across databases exported
    with their collStats and $indexStats; 0 turns collection and index series off.
    ``collstats_per_pass`` (MONGO_COLLSTATS_PER_PASS): collStats commands a pass may send,
    the top N included; the others' sizes are refreshed in turn, so a server with more
    collections is fully ranked after a few passes instead of one long pass."""

    top_n: int = 20
    collstats_per_pass: int = 100


def load_mongo_collection_bounds(env: EnvReader) -> MongoCollectionBounds:
    top_n = env.integer("MONGO_COLLECTIONS_TOP_N", 20, 0, 1000)
    per_pass = env.integer("MONGO_COLLSTATS_PER_PASS", 100, 1, 10_000)
    if per_pass < top_n:
        env.problem(
            "MONGO_COLLSTATS_PER_PASS",
            f"must be at least MONGO_COLLECTIONS_TOP_N ({top_n}): the top collections are "
            f"read every pass, got {per_pass}",
        )
    return MongoCollectionBounds(top_n, per_pass)


_MONGO_INFO_EXAMPLE: Final = (
    '{"connect": {"address": "HOST", "port": "27017", "user": "USER", "pwd": "PASSWORD"}, '
    '"parameter": {"authSource": "admin", "tls": "true", "tlsCAFile": "global-bundle.pem", '
    '"replicaSet": "rs0", "readPreference": "secondaryPreferred", "retryWrites": "false"}}'
)
_MONGO_CONNECT_FIELDS: Final = ("address", "port", "user", "pwd")
_MONGO_TOP_FIELDS: Final = ("connect", "parameter", "name")
# File options are checked when connecting (a relative tlsCAFile is looked up then, in the
# layer directory); pymongo's validators would try to open them relative to the cwd.
_MONGO_FILE_OPTIONS: Final = ("tlscafile", "tlscertificatekeyfile", "tlscrlfile")


def option_problem(key: str, value: str) -> str | None:
    """pymongo's own judgement of one URI option, so a typo fails at start, not at connect."""
    from pymongo import common
    from pymongo.errors import ConfigurationError

    lowered = key.lower()
    aliases = {alias.lower() for names in common.URI_OPTIONS_ALIAS_MAP.values() for alias in names}
    if lowered not in common.URI_OPTIONS_VALIDATOR_MAP and lowered not in aliases:
        return "is not a MongoDB connection-string option"
    if lowered in _MONGO_FILE_OPTIONS:
        return None
    try:
        common.validate(key, value)
    except (ConfigurationError, ValueError, TypeError) as exc:
        return str(exc)
    return None


DOCDB_HOST_SUFFIXES: Final = (".docdb.amazonaws.com", ".docdb.amazonaws.com.cn")
_TLS_OPTIONS: Final = frozenset({"tls", "ssl"})


def with_tls_default(address: str, parameters: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A DocumentDB endpoint (TLS on by default there) is verified against the AWS CA bundle
    when the settings say nothing about TLS; an explicit tls/ssl option always wins."""
    if not address.lower().rstrip(".").endswith(DOCDB_HOST_SUFFIXES) or any(
        key.lower() in _TLS_OPTIONS for key, _ in parameters
    ):
        return parameters
    defaults = [("tls", "true")]
    if not any(key.lower() == "tlscafile" for key, _ in parameters):
        defaults.append(("tlsCAFile", "global-bundle.pem"))
    return [*parameters, *defaults]


def option_text(value: Any) -> str | None:
    """A connection option as the URI wants it; None for a value that is no scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return None


def _mongo_string(env: EnvReader, name: str, value: Any, what: str, secret: bool = False) -> str:
    if not isinstance(value, str):
        env.problem(name, f"expected a string ({what}), got {value_kind(value)}")
        return ""
    if not value.strip() and not secret:
        env.problem(name, f"is empty; expected {what}")
    return value if secret else value.strip()


def _mongo_target(env: EnvReader, variable: str, item: Any) -> DocDBSettings | None:
    if not isinstance(item, dict):
        env.problem(variable, f"expected a JSON object like {_MONGO_INFO_EXAMPLE}, got "
                    f"{value_kind(item)}")  # fmt: skip
        return None
    before = len(env.problems)
    for key in item:
        if key not in _MONGO_TOP_FIELDS:
            env.problem(
                f"{variable}.{key}", f"unknown field; expected {', '.join(_MONGO_TOP_FIELDS)}"
            )
    connect = item.get("connect")
    if not isinstance(connect, dict):
        got = "it is missing" if connect is None else f"got {value_kind(connect)}"
        env.problem(
            f"{variable}.connect",
            'expected an object like {"address": "HOST", "port": "27017", "user": "USER", '
            f'"pwd": "PASSWORD"}}; {got}',
        )
        connect = {}
    for key in connect:
        if key not in _MONGO_CONNECT_FIELDS:
            env.problem(
                f"{variable}.connect.{key}",
                f"unknown field; expected {', '.join(_MONGO_CONNECT_FIELDS)}",
            )
    address = ""
    if "address" not in connect:
        if isinstance(item.get("connect"), dict):
            env.problem(f"{variable}.connect.address", "is required (the cluster endpoint)")
    else:
        address = _mongo_string(
            env, f"{variable}.connect.address", connect["address"], "the cluster endpoint"
        )
        # A URI or host:port here would become host:port:27017 in the connection string and
        # fail every pass as "unreachable"; say so now (without echoing it: a URI may hold a
        # password). An IPv6 address has two colons or more.
        if any(part in address for part in ("://", "/", "@")):
            env.problem(
                f"{variable}.connect.address",
                "expected the cluster endpoint's host name or IP, not a URI "
                "(options go in parameter, the login in connect.user/pwd)",
            )
        elif address.count(":") == 1:
            env.problem(
                f"{variable}.connect.address",
                "expected the host without :port; put the port in connect.port",
            )
    port = 27017
    raw_port = connect.get("port")
    if raw_port is not None:
        parsed = port_number(raw_port)
        if parsed is None:
            shown = repr(raw_port) if isinstance(raw_port, str) else value_kind(raw_port)
            env.problem(
                f"{variable}.connect.port",
                f'expected a port number from 1 to 65535 (e.g. "27017"), got {shown}',
            )
        else:
            port = parsed
    user = password = None
    if "user" in connect:
        user = _mongo_string(env, f"{variable}.connect.user", connect["user"], "the login")
    if "pwd" in connect:
        password = _mongo_string(
            env, f"{variable}.connect.pwd", connect["pwd"], "the password", secret=True
        )
    if user is not None and password is None:
        env.problem(f"{variable}.connect.pwd", "is required when connect.user is set")
    if password is not None and user is None:
        env.problem(f"{variable}.connect.user", "is required when connect.pwd is set")

    parameters: list[tuple[str, str]] = []
    raw_parameters = item.get("parameter", {})
    if not isinstance(raw_parameters, dict):
        env.problem(
            f"{variable}.parameter",
            'expected an object of connection options like {"tls": "true", '
            f'"replicaSet": "rs0"}}, got {value_kind(raw_parameters)}',
        )
        raw_parameters = {}
    for key, value in raw_parameters.items():
        name = f"{variable}.parameter.{key}"
        text = option_text(value)
        if text is None:
            env.problem(name, f"expected a string, number or true/false, got {value_kind(value)}")
            continue
        problem = option_problem(key, text)
        if problem is not None:
            env.problem(name, problem)
            continue
        parameters.append((key, text))

    target_name = address
    if "name" in item:
        target_name = _mongo_string(
            env, f"{variable}.name", item["name"], "the target's instance name"
        )
    if len(env.problems) > before:
        return None
    return DocDBSettings(
        target_name=target_name,
        variable=variable,
        address=address,
        port=port,
        user=user,
        password=password,
        parameters=tuple(with_tls_default(address, parameters)),
    )


def load_docdb(env: EnvReader) -> tuple[DocDBSettings, ...]:
    """MONGO_INFO: one object (the older exporter's form) or a list of them, one target each."""
    value = env.json_value("MONGO_INFO", _MONGO_INFO_EXAMPLE)
    secret_arn = env.text("MONGO_SECRET_ARN")
    if value is None:
        if secret_arn is not None and not env.has("MONGO_INFO"):
            env.problem(
                "MONGO_SECRET_ARN", "is set but MONGO_INFO (the cluster to log in to) is not"
            )
        return ()
    if isinstance(value, list):
        if not value:
            env.problem(
                "MONGO_INFO", f"is an empty list; expected objects like {_MONGO_INFO_EXAMPLE}"
            )
        items = [(f"MONGO_INFO[{index}]", item) for index, item in enumerate(value)]
    elif isinstance(value, dict):
        items = [("MONGO_INFO", value)]
    else:
        env.problem(
            "MONGO_INFO",
            f"expected a JSON object like {_MONGO_INFO_EXAMPLE} or a list of them, "
            f"got {value_kind(value)}",
        )
        return ()
    targets: list[DocDBSettings] = []
    used: dict[str, str] = {}
    for variable, item in items:
        target = _mongo_target(env, variable, item)
        if target is None:
            continue
        if target.target_name in used:
            first = used[target.target_name]
            env.problem(
                variable,
                f"target name {target.target_name!r} is already used by {first}; "
                'give each target a distinct "name"',
            )
            continue
        used[target.target_name] = variable
        targets.append(target)
    if secret_arn is not None:
        targets = [
            target if target.user is not None else replace(target, secret_arn=secret_arn)
            for target in targets
        ]
    return tuple(targets)
