"""MONGO_INFO: the older exporter's shape (strings everywhere, the port included), one object
or a list, every mistake named by its field, the password never echoed; and the URI built
from it (escaped login, every parameter passed through, tlsCAFile found in the layer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from middleware_monitoring.config import ConfigError, DocDBSettings, load_settings
from middleware_monitoring.docdb.client import client_options, connection_uri
from middleware_monitoring.model import SourceFailure

PASSWORD = "p@ss:w/rd%&+secret"

DOCDB_PARAMETERS = {
    "authSource": "admin",
    "tls": "true",
    "tlsCAFile": "global-bundle.pem",
    "replicaSet": "rs0",
    "readPreference": "secondaryPreferred",
    "retryWrites": "false",
}


def info(**connect: Any) -> dict[str, Any]:
    base = {"address": "docdb.cluster-x.eu-west-1.docdb.amazonaws.com", "port": "27017"}
    base.update(user="monitor", pwd=PASSWORD)
    base.update(connect)
    return {"connect": base, "parameter": dict(DOCDB_PARAMETERS)}


def settings_of(value: Any) -> tuple[DocDBSettings, ...]:
    return load_settings({"MONGO_INFO": json.dumps(value)}).docdb


def problems_of(raw: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings({"MONGO_INFO": raw})
    assert PASSWORD not in str(caught.value)
    return caught.value.problems


def test_absent_mongo_info_means_no_docdb_target() -> None:
    assert load_settings({}).docdb == ()


def test_the_older_exporters_shape_as_users_have_it() -> None:
    (target,) = settings_of(info())
    assert target == DocDBSettings(
        target_name="docdb.cluster-x.eu-west-1.docdb.amazonaws.com",
        variable="MONGO_INFO",
        address="docdb.cluster-x.eu-west-1.docdb.amazonaws.com",
        port=27017,
        user="monitor",
        password=PASSWORD,
        parameters=tuple(DOCDB_PARAMETERS.items()),
    )
    assert PASSWORD not in repr(target)


def test_secrets_include_the_password_raw_and_escaped() -> None:
    settings = load_settings({"MONGO_INFO": json.dumps(info())})
    assert settings.secrets() == [PASSWORD, "p%40ss%3Aw%2Frd%25%26%2Bsecret"]


def test_a_list_gives_one_target_each_named_by_address_or_name() -> None:
    first = info(address="10.0.0.5")
    second = {**info(address="10.0.0.5", port="27018"), "name": "orders-docdb"}
    third = {"connect": {"address": "docdb-b.internal", "port": 27019}}
    targets = settings_of([first, second, third])
    assert [(t.target_name, t.variable, t.address, t.port) for t in targets] == [
        ("10.0.0.5", "MONGO_INFO[0]", "10.0.0.5", 27017),
        ("orders-docdb", "MONGO_INFO[1]", "10.0.0.5", 27018),
        ("docdb-b.internal", "MONGO_INFO[2]", "docdb-b.internal", 27019),
    ]
    assert targets[2].user is None and targets[2].password is None
    assert targets[2].parameters == ()


def test_port_defaults_to_27017_and_non_string_parameters_become_strings() -> None:
    value = {
        "connect": {"address": "h"},
        "parameter": {"tls": True, "serverSelectionTimeoutMS": 1500, "retryWrites": False},
    }
    (target,) = settings_of(value)
    assert target.port == 27017
    assert target.parameters == (
        ("tls", "true"),
        ("serverSelectionTimeoutMS", "1500"),
        ("retryWrites", "false"),
    )


EXAMPLE = (
    '{"connect": {"address": "HOST", "port": "27017", "user": "USER", "pwd": "PASSWORD"}, '
    '"parameter": {"authSource": "admin", "tls": "true", "tlsCAFile": "global-bundle.pem", '
    '"replicaSet": "rs0", "readPreference": "secondaryPreferred", "retryWrites": "false"}}'
)
CONNECT_SHAPE = (
    'expected an object like {"address": "HOST", "port": "27017", "user": "USER", '
    '"pwd": "PASSWORD"}'
)

BAD = [
    pytest.param(
        '{"connect": {"address": "h", "pwd": "' + PASSWORD + '"',
        [
            "MONGO_INFO: is not valid JSON (Expecting ',' delimiter at line 1 column 57); "
            f"expected e.g. {EXAMPLE}"
        ],
        id="malformed-json",
    ),
    pytest.param(
        "42",
        [f"MONGO_INFO: expected a JSON object like {EXAMPLE} or a list of them, got a number"],
        id="not-an-object",
    ),
    pytest.param(
        "[]", [f"MONGO_INFO: is an empty list; expected objects like {EXAMPLE}"], id="empty-list"
    ),
    pytest.param(
        json.dumps({"parameter": {}}),
        [f"MONGO_INFO.connect: {CONNECT_SHAPE}; it is missing"],
        id="missing-connect",
    ),
    pytest.param(
        json.dumps({"connect": ["h", "27017"]}),
        [f"MONGO_INFO.connect: {CONNECT_SHAPE}; got a list"],
        id="connect-not-object",
    ),
    pytest.param(
        json.dumps(info(address=None) | {"connect": {"port": "27017"}}),
        ["MONGO_INFO.connect.address: is required (the cluster endpoint)"],
        id="missing-address",
    ),
    pytest.param(
        json.dumps(info(address="  ")),
        ["MONGO_INFO.connect.address: is empty; expected the cluster endpoint"],
        id="empty-address",
    ),
    pytest.param(
        json.dumps(info(address="docdb.example.com:27017")),
        [
            "MONGO_INFO.connect.address: expected the host without :port; put the port in "
            "connect.port"
        ],
        id="address-with-port",
    ),
    pytest.param(
        json.dumps(info(address="mongodb://u:hunter2@docdb.example.com")),
        [
            "MONGO_INFO.connect.address: expected the cluster endpoint's host name or IP, not a "
            "URI (options go in parameter, the login in connect.user/pwd)"
        ],
        id="address-is-a-uri",
    ),
    pytest.param(
        json.dumps(info(port="27O17")),
        [
            "MONGO_INFO.connect.port: expected a port number from 1 to 65535 "
            "(e.g. \"27017\"), got '27O17'"
        ],
        id="non-numeric-port",
    ),
    pytest.param(
        json.dumps(info(port=70000)),
        [
            "MONGO_INFO.connect.port: expected a port number from 1 to 65535 "
            '(e.g. "27017"), got a number'
        ],
        id="port-out-of-range",
    ),
    pytest.param(
        json.dumps([info(), info(address="b", port="x")]),
        [
            "MONGO_INFO[1].connect.port: expected a port number from 1 to 65535 "
            "(e.g. \"27017\"), got 'x'"
        ],
        id="list-item-named-by-index",
    ),
    pytest.param(
        json.dumps({"connect": {"address": "h", "pwd": PASSWORD}}),
        ["MONGO_INFO.connect.user: is required when connect.pwd is set"],
        id="password-without-user",
    ),
    pytest.param(
        json.dumps({"connect": {"address": "h", "user": "monitor"}}),
        ["MONGO_INFO.connect.pwd: is required when connect.user is set"],
        id="user-without-password",
    ),
    pytest.param(
        json.dumps(info(pwd=12345678)),
        ["MONGO_INFO.connect.pwd: expected a string (the password), got a number"],
        id="password-not-a-string",
    ),
    pytest.param(
        json.dumps(info(host="h")),
        ["MONGO_INFO.connect.host: unknown field; expected address, port, user, pwd"],
        id="unknown-connect-field",
    ),
    pytest.param(
        json.dumps(info() | {"parameters": {}}),
        ["MONGO_INFO.parameters: unknown field; expected connect, parameter, name"],
        id="unknown-top-field",
    ),
    pytest.param(
        json.dumps(info() | {"parameter": ["tls=true"]}),
        [
            'MONGO_INFO.parameter: expected an object of connection options like {"tls": '
            '"true", "replicaSet": "rs0"}, got a list'
        ],
        id="parameter-not-object",
    ),
    pytest.param(
        json.dumps(
            info()
            | {
                "parameter": {
                    "retryWrites": "no",
                    "readPreference": "secondaryPrefered",
                    "replicaset": None,
                    "tlsCaFiles": "x.pem",
                }
            }
        ),
        [
            "MONGO_INFO.parameter.retryWrites: The value of retryWrites must be 'true' or 'false'",
            "MONGO_INFO.parameter.readPreference: secondaryPrefered is not a valid read preference",
            "MONGO_INFO.parameter.replicaset: expected a string, number or true/false, got null",
            "MONGO_INFO.parameter.tlsCaFiles: is not a MongoDB connection-string option",
        ],
        id="bad-parameters",
    ),
    pytest.param(
        json.dumps([info(), info()]),
        [
            "MONGO_INFO[1]: target name 'docdb.cluster-x.eu-west-1.docdb.amazonaws.com' is "
            'already used by MONGO_INFO[0]; give each target a distinct "name"'
        ],
        id="duplicate-target-name",
    ),
    pytest.param(
        json.dumps([info(), "docdb.internal:27017"]),
        [f"MONGO_INFO[1]: expected a JSON object like {EXAMPLE}, got a string"],
        id="list-item-not-object",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), BAD)
def test_bad_mongo_info_is_one_error_naming_each_field(raw: str, expected: list[str]) -> None:
    assert problems_of(raw) == expected


def test_every_problem_of_every_item_is_reported_together() -> None:
    raw = json.dumps([{"connect": {"port": "x"}}, info(user=7)])
    assert problems_of(raw) == [
        "MONGO_INFO[0].connect.address: is required (the cluster endpoint)",
        "MONGO_INFO[0].connect.port: expected a port number from 1 to 65535 "
        "(e.g. \"27017\"), got 'x'",
        "MONGO_INFO[1].connect.user: expected a string (the login), got a number",
    ]


# --- the connection string -------------------------------------------------------------------


def target(**changes: Any) -> DocDBSettings:
    base = DocDBSettings(
        target_name="t",
        variable="MONGO_INFO",
        address="docdb.internal",
        port=27017,
        user="mon itor@corp",
        password=PASSWORD,
        parameters=tuple(DOCDB_PARAMETERS.items()),
    )
    return DocDBSettings(**{**base.__dict__, **changes})


def test_uri_escapes_login_passes_every_parameter_and_finds_the_ca_in_a_layer_dir(
    tmp_path: Path,
) -> None:
    function_dir, layer_dir = tmp_path / "task", tmp_path / "opt"
    function_dir.mkdir()
    layer_dir.mkdir()
    (layer_dir / "global-bundle.pem").write_text("CA")
    uri = connection_uri(target(), search_dirs=[function_dir, layer_dir])
    parts = urlsplit(uri)
    assert parts.netloc == "mon+itor%40corp:p%40ss%3Aw%2Frd%25%26%2Bsecret@docdb.internal:27017"
    assert parse_qsl(parts.query) == [
        ("authSource", "admin"),
        ("tls", "true"),
        ("tlsCAFile", str(layer_dir / "global-bundle.pem")),
        ("replicaSet", "rs0"),
        ("readPreference", "secondaryPreferred"),
        ("retryWrites", "false"),
    ]


def test_ca_next_to_the_function_wins_over_the_layer(tmp_path: Path) -> None:
    for directory in ("task", "opt"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "global-bundle.pem").write_text("CA")
    uri = connection_uri(target(), search_dirs=[tmp_path / "task", tmp_path / "opt"])
    assert dict(parse_qsl(urlsplit(uri).query))["tlsCAFile"] == str(
        tmp_path / "task" / "global-bundle.pem"
    )


def test_missing_ca_file_is_a_tls_failure_naming_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(SourceFailure) as caught:
        connection_uri(target(), search_dirs=[tmp_path / "task", tmp_path / "opt"])
    assert caught.value.reason == "tls"
    assert caught.value.detail == (
        f"CA file global-bundle.pem not found in {tmp_path / 'task'}, {tmp_path / 'opt'}"
    )


def test_no_login_and_no_parameters_and_ipv6() -> None:
    uri = connection_uri(target(user=None, password=None, parameters=(), address="::1"))
    assert uri == "mongodb://[::1]:27017/"


def test_short_timeouts_unless_the_user_set_their_own() -> None:
    assert client_options(target()) == {
        "serverSelectionTimeoutMS": 5000,
        "connectTimeoutMS": 5000,
        "socketTimeoutMS": 10000,
        "appname": "middleware-monitoring",
        "maxPoolSize": 1,
        "connect": False,
    }
    own = target(parameters=(("serverselectiontimeoutms", "900"), ("appName", "mine")))
    assert client_options(own) == {
        "connectTimeoutMS": 5000,
        "socketTimeoutMS": 10000,
        "maxPoolSize": 1,
        "connect": False,
    }
