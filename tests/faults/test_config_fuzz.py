"""Configuration fuzzing: arbitrary values and JSON for every variable ``load_settings``
reads (SPEC section 2 and the newer ones) give either valid Settings or a ConfigError whose
every line names a variable, and never another exception nor a secret in the message.

No network: only ``load_settings`` runs. The default budget is 4 x 2,500 = 10,000 cases;
``CONFIG_FUZZ_EXAMPLES=N`` sets the cases per test for a long run (e.g. 50000).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middleware_monitoring.config import ConfigError, Settings, load_settings
from tests.faults.conftest import Row

EXAMPLES = int(os.environ.get("CONFIG_FUZZ_EXAMPLES", "2500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VARIABLES = (
    # SPEC 2
    "PG_DATABASE",
    "PG_PORT",
    "PG_USER",
    "PG_PWD",
    "PG_DBNAME",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_RDS_INSTANCE_ID",
    "AWS_RDS_TYPE",
    "SERVER_PORT",
    "MONGO_INFO",
    "AWS_MONGO_INSTANCE_INFO",
    "AWS_ELASTICACHE_INSTANCE_INFO",
    "KAFKA_SERVER",
    "PG_ENV_NAME",
    # the newer ones in the config package
    "PG_SECRET_ARN",
    "PG_TARGET_NAME",
    "PG_SSLMODE",
    "PG_SSLROOTCERT",
    "PG_CONNECT_TIMEOUT_SECONDS",
    "PG_STATEMENT_TIMEOUT_MS",
    "PG_STATEMENTS_TOP_N",
    "PG_QUERY_MAX_LENGTH",
    "PG_QPS_SAMPLE_SECONDS",
    "PUSHGATEWAY_URL",
    "PUSHGATEWAY_JOB",
    "PUSHGATEWAY_USERNAME",
    "PUSHGATEWAY_PASSWORD",
    "PUSHGATEWAY_TIMEOUT_SECONDS",
    "PUSHGATEWAY_RETRIES",
    "METRICS_SINK",
    "COLLECTOR_MAX_WORKERS",
    "COLLECTOR_INSTANCE_NAME",
    "SERVER_ADDRESS",
    "SERVER_SCRAPE_BUDGET_SECONDS",
    "KAFKA_TOPIC",
    "KAFKA_TIMEOUT_SECONDS",
    "MONGO_SECRET_ARN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_CLOUDWATCH",
    "CLOUDWATCH_LOOKBACK_SECONDS",
    "CLOUDWATCH_END_DELAY_SECONDS",
    "CLOUDWATCH_CONNECT_TIMEOUT_SECONDS",
    "CLOUDWATCH_READ_TIMEOUT_SECONDS",
    "CLOUDWATCH_MAX_ATTEMPTS",
    "CLOUDWATCH_RETRY_MODE",
    "POWERTOOLS_METRICS_NAMESPACE",
    "SECRETS_MAX_AGE_SECONDS",
)
# Problems name a variable, a path inside one (MONGO_INFO[0].connect.port) or a pair; PG_*
# is the PostgreSQL target of the PG_* variables (a target name used twice).
PROBLEM = re.compile(
    r"^(" + "|".join(sorted(VARIABLES, key=len, reverse=True)) + r"|PG_\*)([.\[/:]|$)"
)

# Secrets carry a marker no other strategy produces, so finding one in a message is a leak.
secret_values = st.from_regex(r"zZsecret[a-zA-Z0-9!@#%:/ ]{4,12}", fullmatch=True)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["27017", "true", "rs0", "admin", "secondaryPreferred", "0", "-1", ""]),
)
json_values = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(
                st.text(max_size=8),
                st.sampled_from(
                    [
                        "connect",
                        "parameter",
                        "name",
                        "address",
                        "port",
                        "user",
                        "pwd",
                        "tls",
                        "tlsCAFile",
                        "replicaSet",
                        "authSource",
                        "readPreference",
                        "retryWrites",
                        "serverSelectionTimeoutMS",
                        "DBInstanceIdentifier",
                        "DBClusterIdentifier",
                        "CacheClusterId",
                        "CacheNodeId",
                    ]
                ),
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


@st.composite
def mongo_info(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A MONGO_INFO close to the real shape, with fuzzed leaves and a marked password."""
    password = draw(secret_values)
    connect: dict[str, Any] = {
        "address": draw(st.one_of(st.text(max_size=20), json_leaf)),
        "port": draw(st.one_of(st.sampled_from(["27017", "0", "65536", "x"]), json_leaf)),
    }
    if draw(st.booleans()):
        connect["user"] = draw(st.one_of(st.text(max_size=10), json_leaf))
        connect["pwd"] = password
    parameter = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "authSource",
                    "tls",
                    "tlsCAFile",
                    "replicaSet",
                    "readPreference",
                    "retryWrites",
                    "serverSelectionTimeoutMS",
                    "connectTimeoutMS",
                    "maxPoolSize",
                    "w",
                    "bogusOption",
                ]
            ),
            st.one_of(json_leaf, st.sampled_from(["true", "false", "primary", "1000"])),
            max_size=6,
        )
    )
    item: dict[str, Any] = {"connect": connect, "parameter": parameter}
    if draw(st.booleans()):
        item["name"] = draw(st.one_of(st.text(max_size=10), json_leaf))
    if draw(st.booleans()):
        item[draw(st.text(max_size=6))] = draw(json_leaf)
    value: Any = [item, draw(json_values)] if draw(st.booleans()) else item
    return _dumps(value), [password]


any_text = st.text(max_size=40)
numbers = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "0", "1", "65535", "65536", "1e3", "0x10", "NaN", "-0", " 7 "]),
)
urls = st.one_of(
    any_text,
    st.sampled_from(
        [
            "http://gw:9091",
            "https://user:zZsecretInUrl1@gw:9091",
            "user:zZsecretInUrl2@gw:9091",
            "ftp://gw",
        ]
    ),
)


def _value_for(name: str) -> st.SearchStrategy[str]:
    if name in ("PG_PWD", "PUSHGATEWAY_PASSWORD", "AWS_SECRET_ACCESS_KEY"):
        return secret_values
    if name in ("MONGO_INFO", "AWS_MONGO_INSTANCE_INFO", "AWS_ELASTICACHE_INSTANCE_INFO"):
        return st.one_of(json_values.map(_dumps), any_text)
    if name.startswith(("PUSHGATEWAY_URL", "AWS_ENDPOINT_URL")):
        return urls
    return st.one_of(any_text, numbers, json_values.map(_dumps))


@st.composite
def environments(
    draw: st.DrawFn, structured_mongo: bool = False
) -> tuple[dict[str, str], list[str]]:
    names = draw(st.lists(st.sampled_from(VARIABLES), unique=True, max_size=len(VARIABLES)))
    environ = {name: draw(_value_for(name)) for name in names}
    secrets = [
        environ[n]
        for n in ("PG_PWD", "PUSHGATEWAY_PASSWORD", "AWS_SECRET_ACCESS_KEY")
        if n in environ
    ]
    if structured_mongo:
        environ["MONGO_INFO"], more = draw(mongo_info())
        secrets += more
    return environ, [*secrets, "zZsecretInUrl1", "zZsecretInUrl2"]


def check(environ: dict[str, str], secrets: list[str]) -> str:
    try:
        result = load_settings(environ)
    except ConfigError as error:
        return _config_error(error, secrets)
    assert isinstance(result, Settings)
    assert all(
        not s.strip() or s.strip() not in repr(result) for s in secrets if s != "zZsecretInUrl1"
    )
    return "valid"


def _config_error(error: ConfigError, secrets: list[str]) -> str:
    message = str(error)
    assert error.problems, message
    for problem in error.problems:
        assert PROBLEM.match(problem), problem
    for secret in secrets:
        # Blanks around a secret are part of it but not worth matching on their own.
        if secret.strip():
            assert secret.strip() not in message, (secret, message)
    return "error"


def fuzz(row: Row, what: str, strategy: st.SearchStrategy[Any], run: Callable[[Any], str]) -> None:
    """Runs ``run`` on EXAMPLES cases of ``strategy`` and records this test's own row of the
    matrix (also when a case raised: hypothesis re-raises the shrunk case afterwards)."""
    outcomes = {"valid": 0, "error": 0, "other": 0}

    @FUZZ
    @given(strategy)
    def cases(case: Any) -> None:
        try:
            outcomes[run(case)] += 1
        except (ConfigError, AssertionError):
            raise
        except Exception:
            outcomes["other"] += 1
            raise

    row.fault = f"configuration fuzzing, {what} (hypothesis)"
    row.expected = "Settings or ConfigError naming variables; no other exception; no secret"
    try:
        cases()
    finally:
        row.observed = (
            f"{sum(outcomes.values())} environments: {outcomes['valid']} valid, "
            f"{outcomes['error']} ConfigError, {outcomes['other']} other exception"
        )
    # Hypothesis re-raises a failing case (an unexpected exception included), so reaching
    # here means none failed; left to check: the whole budget ran (4 tests x EXAMPLES = the
    # 10,000 cases of the issue).
    assert sum(outcomes.values()) == EXAMPLES


def test_any_environment(row: Row) -> None:
    fuzz(row, "any variables", environments(), lambda case: check(*case))


def test_mongo_info_shapes(row: Row) -> None:
    fuzz(row, "MONGO_INFO shapes", environments(structured_mongo=True), lambda c: check(*c))


def test_free_text_everywhere(row: Row) -> None:
    fuzz(
        row,
        "free text",
        st.dictionaries(st.sampled_from(VARIABLES), any_text, max_size=12),
        lambda environ: check(environ, []),
    )


# Valid base environments with one variable fuzzed: reaches the checks behind the first ones.
BASE = {
    "PG_DATABASE": "db.internal",
    "PG_USER": "monitor",
    "PG_PWD": "zZsecretBasePw",
    "PUSHGATEWAY_URL": "http://gw:9091",
    "MONGO_INFO": _dumps(
        {"connect": {"address": "docdb", "port": "27017", "user": "u", "pwd": "zZsecretMongo"}}
    ),
    "AWS_MONGO_INSTANCE_INFO": _dumps({"DBInstanceIdentifier": ["a"]}),
    "AWS_ELASTICACHE_INSTANCE_INFO": _dumps({"CacheClusterId": ["r-001"]}),
    "AWS_REGION": "eu-west-1",
}


def _off_the_base(case: tuple[str, str]) -> str:
    name, value = case
    secrets = ["zZsecretBasePw", "zZsecretMongo", "zZsecretInUrl1", "zZsecretInUrl2"]
    if name in ("PG_PWD", "PUSHGATEWAY_PASSWORD", "AWS_SECRET_ACCESS_KEY"):
        secrets.append(value)
    return check({**BASE, name: value}, secrets)


def test_one_variable_off_a_valid_base(row: Row) -> None:
    fuzz(
        row,
        "one variable off a valid base",
        st.sampled_from(VARIABLES).flatmap(lambda n: st.tuples(st.just(n), _value_for(n))),
        _off_the_base,
    )
