"""TARGETS_FILE (SPEC 9): a fleet in a YAML or JSON document, each entry the same spec the
environment variables give; every mistake named by the file, the entry and the key, all in
one message, no secret echoed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from middleware_monitoring.config import (
    AwsLocation,
    CloudWatchTarget,
    ConfigError,
    DocDBSettings,
    PostgresSettings,
    Settings,
    load_settings,
)

SECRET = "local-only-Pw-1"
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-mon-AbCdEf"

DOCUMENT = f"""
postgres:
  - name: orders-db
    host: orders.abc.eu-west-1.rds.amazonaws.com
    secret_arn: {ARN}
    rds_id: orders-db
  - name: billing-db
    host: 10.0.0.5
    port: "5433"
    dbname: billing
    user: monitor
    password: {SECRET}
    sslmode: require
  - name: iam-db
    host: iam.abc.eu-central-1.rds.amazonaws.com
    user: iam_monitor
    iam_auth: true
    region: eu-central-1
    rds_id: iam-cluster
    rds_type: DBClusterIdentifier
docdb:
  - name: orders-docdb
    host: orders-docdb.cluster-abc.eu-west-1.docdb.amazonaws.com
    secret_arn: {ARN}
    options: {{replicaSet: rs0, readPreference: secondaryPreferred, retryWrites: false}}
cloudwatch:
  docdb_instances: [orders-docdb-1]
  docdb_clusters: [orders-docdb]
  elasticache: [orders-cache-001, {{cluster: orders-cache-002, node: "0001"}}]
  rds_instances: [legacy-db]
"""


def write(tmp_path: Path, text: str, name: str = "targets.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, name: str = "targets.yaml", **environ: str) -> Settings:
    write(tmp_path, text, name)
    return load_settings({"TARGETS_FILE": name, **environ}, search_dirs=[tmp_path])


def problems(tmp_path: Path, text: str, name: str = "targets.yaml", **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, name, **environ)
    assert SECRET not in str(caught.value)
    return caught.value.problems


def test_every_kind_of_entry_becomes_its_spec_with_the_shared_options(tmp_path: Path) -> None:
    settings = load(tmp_path, DOCUMENT, PG_STATEMENT_TIMEOUT_MS="2000", PG_STATEMENTS_TOP_N="5")
    defaults = settings.postgres_defaults
    assert defaults is not None and defaults.statement_timeout_ms == 2000
    where = "TARGETS_FILE (targets.yaml)"
    assert settings.targets == (
        replace(
            defaults,
            target_name="orders-db",
            host="orders.abc.eu-west-1.rds.amazonaws.com",
            # An RDS endpoint without sslmode is verified against the CA layer's bundle.
            sslmode="verify-full",
            sslrootcert="global-bundle.pem",
            rds_id="orders-db",
            secret_arn=ARN,
            from_secret=frozenset({"port", "dbname"}),
            origin=f"{where} postgres[0] (orders-db)",
        ),
        replace(
            defaults,
            target_name="billing-db",
            host="10.0.0.5",
            port=5433,
            user="monitor",
            password=SECRET,
            database="billing",
            sslmode="require",
            origin=f"{where} postgres[1] (billing-db)",
        ),
        replace(
            defaults,
            target_name="iam-db",
            host="iam.abc.eu-central-1.rds.amazonaws.com",
            user="iam_monitor",
            sslmode="verify-full",
            sslrootcert="global-bundle.pem",
            rds_id="iam-cluster",
            rds_type="DBClusterIdentifier",
            iam_auth=True,
            aws=AwsLocation(region="eu-central-1"),
            origin=f"{where} postgres[2] (iam-db)",
        ),
        DocDBSettings(
            target_name="orders-docdb",
            variable=f"{where} docdb[0] (orders-docdb)",
            address="orders-docdb.cluster-abc.eu-west-1.docdb.amazonaws.com",
            port=27017,
            user=None,
            password=None,
            # A DocumentDB endpoint without tls options is verified against the bundle.
            parameters=(
                ("replicaSet", "rs0"),
                ("readPreference", "secondaryPreferred"),
                ("retryWrites", "false"),
                ("tls", "true"),
                ("tlsCAFile", "global-bundle.pem"),
            ),
            secret_arn=ARN,
        ),
        CloudWatchTarget(
            "legacy-db", "rds_instance", "legacy-db", origin=f"{where} cloudwatch.rds_instances[0]"
        ),
        CloudWatchTarget(
            "docdb:orders-docdb-1",
            "docdb_instance",
            "orders-docdb-1",
            origin=f"{where} cloudwatch.docdb_instances[0]",
        ),
        CloudWatchTarget(
            "docdb-cluster:orders-docdb",
            "docdb_cluster",
            "orders-docdb",
            origin=f"{where} cloudwatch.docdb_clusters[0]",
        ),
        CloudWatchTarget(
            "elasticache:orders-cache-001",
            "elasticache",
            "orders-cache-001",
            origin=f"{where} cloudwatch.elasticache[0]",
        ),
        CloudWatchTarget(
            "elasticache:orders-cache-002:0001",
            "elasticache",
            "orders-cache-002",
            "0001",
            origin=f"{where} cloudwatch.elasticache[1]",
        ),
    )
    assert settings.secrets() == [SECRET]
    assert SECRET not in repr(settings)


def test_json_document_and_the_environments_targets_add_up(tmp_path: Path) -> None:
    document = {"postgres": [{"name": "b", "host": "db-b", "user": "u", "password": SECRET}]}
    settings = load(
        tmp_path,
        json.dumps(document),
        "targets.json",
        PG_DATABASE="db-a",
        PG_USER="u",
        MONGO_INFO='{"connect": {"address": "docdb-a"}}',
    )
    assert [(spec.target_name, spec.origin) for spec in settings.targets] == [
        ("db-a", "PG_*"),
        ("docdb-a", "MONGO_INFO"),
        ("b", "TARGETS_FILE (targets.json) postgres[0] (b)"),
    ]
    assert isinstance(settings.targets[2], PostgresSettings)


def test_a_name_used_twice_names_both_places(tmp_path: Path) -> None:
    text = "postgres:\n  - {name: orders, host: a, user: u}\n  - {name: orders, host: b, user: u}\n"
    assert problems(tmp_path, text, PG_DATABASE="x", PG_USER="u", PG_TARGET_NAME="orders") == [
        "TARGETS_FILE (targets.yaml) postgres[1] (orders): target name 'orders' is already "
        "used by PG_* and by TARGETS_FILE (targets.yaml) postgres[0] (orders); each target "
        "needs its own name (the instance label of its series)"
    ]


def test_a_missing_file_says_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TARGETS_FILE": "fleet.yaml"}, search_dirs=[tmp_path, Path("/nowhere")])
    assert caught.value.problems == [
        f"TARGETS_FILE (fleet.yaml): cannot be read: targets file fleet.yaml not found in "
        f"{tmp_path}, /nowhere"
    ]


def test_a_yaml_syntax_error_gives_its_line_and_never_the_lines_text(tmp_path: Path) -> None:
    text = f"postgres:\n  - name: a\n    host: b\n    password: {SECRET}\n   user: [x\n"
    assert problems(tmp_path, text) == [
        "TARGETS_FILE (targets.yaml): YAML syntax error at line 5 column 4: "
        "expected <block end>, but found '<block mapping start>'"
    ]


def test_a_json_syntax_error_gives_its_line(tmp_path: Path) -> None:
    assert problems(tmp_path, '{"postgres": [\n  {"name": "a",}\n]}', "t.json") == [
        "TARGETS_FILE (t.json): is not valid JSON (Expecting property name enclosed in double "
        'quotes at line 2 column 16); expected e.g. {"postgres": [{"name": ..., "host": ...}]}'
    ]


def test_every_wrong_type_and_key_in_one_message(tmp_path: Path) -> None:
    text = f"""
postgres:
  - name: orders-db
    host: orders
    port: abc
    user: u
    password: {SECRET}
    iam_auth: maybe
    sslmode: on
    colour: blue
  - host: nameless
    user: u
  - just a string
docdb:
  - name: d
    host: d.example
    port: [27017]
    options: {{tls: true, readPreference: sideways}}
  - {{name: e, host: e.example, user: u, password: {SECRET}, secret_arn: {ARN}}}
cloudwatch:
  elasticache: [{{cluster: c}}, 7]
  docdb_instances: one
kafka: []
"""
    where = "TARGETS_FILE (targets.yaml)"
    assert problems(tmp_path, text) == [
        f"{where}: kafka: unknown section; expected postgres, docdb, elasticache, cloudwatch",
        f"{where}: postgres[2]: expected a mapping (name: ..., host: ...), got a string",
        f"{where}: postgres[0] (orders-db).colour: unknown key; expected name, host, port, "
        "dbname, user, secret_arn, iam_auth, password, sslmode, sslrootcert, rds_id, rds_type, "
        "region, role_arn, queries_file, databases",
        f"{where}: postgres[0] (orders-db).iam_auth: expected true or false, got 'maybe'",
        f"{where}: postgres[0] (orders-db).sslmode: expected a string, got true/false (YAML "
        "reads yes, no, on and off unquoted as true/false: quote the value)",
        f"{where}: postgres[0] (orders-db).port: expected a port number from 1 to 65535, got 'abc'",
        f"{where}: postgres[1].name: is required (the target's instance name)",
        f"{where}: docdb[0] (d).options.readPreference: sideways is not a valid read preference",
        f"{where}: docdb[0] (d).port: expected a port number from 1 to 65535, got a list",
        f"{where}: docdb[1] (e).password: is given together with secret_arn; use one of them",
        f"{where}: cloudwatch.docdb_instances: expected a list of ids, got a string",
        f"{where}: cloudwatch.elasticache[0]: expected a cluster id or {{cluster: ..., node: ...}}",
        f"{where}: cloudwatch.elasticache[1]: expected an id string, got a number",
    ]


def test_iam_auth_needs_tls_that_verifies_the_server(tmp_path: Path) -> None:
    # sslmode require encrypts but verifies nobody: a man in the middle would receive a
    # token that works as the password for 15 minutes.
    for sslmode, given in (("prefer", ""), ("require", ", sslmode: require")):
        text = f"postgres:\n  - {{name: a, host: 10.0.0.1, user: u, iam_auth: true{given}}}\n"
        assert problems(tmp_path, text) == [
            "TARGETS_FILE (targets.yaml): postgres[0] (a).sslmode: IAM authentication sends a "
            "token as the password, which needs TLS that verifies the server: sslmode "
            f"{sslmode} is not allowed (use one of verify-ca, verify-full, with sslrootcert)"
        ]
    environ = {"PG_DATABASE": "10.0.0.1", "PG_USER": "u", "PG_IAM_AUTH": "true"}
    for sslmode in ("disable", "require"):
        with pytest.raises(ConfigError) as caught:
            load_settings({**environ, "PG_SSLMODE": sslmode})
        assert caught.value.problems == [
            "PG_SSLMODE: IAM authentication sends a token as the password, which needs TLS "
            f"that verifies the server: sslmode {sslmode} is not allowed (use one of "
            "verify-ca, verify-full, with sslrootcert)"
        ]
    for sslmode in ("verify-ca", "verify-full"):
        iam = load_settings(
            {**environ, "PG_SSLMODE": sslmode, "PG_SSLROOTCERT": "global-bundle.pem"}
        ).postgres
        assert iam is not None and (iam.iam_auth, iam.password, iam.sslmode) == (
            True,
            "",
            sslmode,
        )
    # An RDS endpoint without sslmode defaults to verify-full with the layer's bundle.
    rds = {**environ, "PG_DATABASE": "iam.abc.eu-central-1.rds.amazonaws.com"}
    default = load_settings(rds).postgres
    assert default is not None and (default.sslmode, default.sslrootcert) == (
        "verify-full",
        "global-bundle.pem",
    )


def test_an_empty_document_is_no_targets_and_a_list_is_refused(tmp_path: Path) -> None:
    assert load(tmp_path, "# nothing yet\n").targets == ()
    assert problems(tmp_path, "- name: a\n") == [
        "TARGETS_FILE (targets.yaml): expected a mapping with postgres, docdb, elasticache, "
        "cloudwatch, got "
        "a list; e.g. postgres: [{name: orders-db, host: orders.abc.eu-west-1.rds.amazonaws.com,"
        " secret_arn: arn:aws:secretsmanager:...}]"
    ]


def test_elasticache_nodes_with_their_login_tls_and_cloudwatch_ids(tmp_path: Path) -> None:
    from middleware_monitoring.config import RedisSettings

    text = f"""
elasticache:
  - name: orders-cache-0001-001
    host: master.orders-cache.abc.euw1.cache.amazonaws.com
    tls: true
    user: monitor
    password: {SECRET}
    cache_cluster_id: orders-cache-0001-001
    cache_node_id: "0001"
  - name: sessions-cache
    host: 10.0.0.9
    port: 6380
    secret_arn: {ARN}
    tls_ca_file: bundle.pem
  - {{name: bad, host: h, user: u, cache_node_id: "0001"}}
"""
    assert problems(tmp_path, text) == [
        "TARGETS_FILE (targets.yaml): elasticache[1] (sessions-cache).tls_ca_file: is given "
        "without tls: true",
        "TARGETS_FILE (targets.yaml): elasticache[2] (bad).user: needs its password (password or "
        "secret_arn)",
        "TARGETS_FILE (targets.yaml): elasticache[2] (bad).cache_node_id: needs cache_cluster_id",
    ]
    good = text.replace("    tls_ca_file: bundle.pem\n", "").split("  - {name: bad")[0]
    settings = load(tmp_path, good, REDIS_READ_TIMEOUT_SECONDS="1.5")
    where = "TARGETS_FILE (targets.yaml)"
    assert settings.targets == (
        RedisSettings(
            target_name="orders-cache-0001-001",
            host="master.orders-cache.abc.euw1.cache.amazonaws.com",
            origin=f"{where} elasticache[0] (orders-cache-0001-001)",
            tls=True,
            user="monitor",
            password=SECRET,
            read_timeout_seconds=1.5,
            cache_cluster_id="orders-cache-0001-001",
            cache_node_id="0001",
        ),
        RedisSettings(
            target_name="sessions-cache",
            host="10.0.0.9",
            origin=f"{where} elasticache[1] (sessions-cache)",
            port=6380,
            secret_arn=ARN,
            read_timeout_seconds=1.5,
        ),
    )
    assert settings.secrets() == [SECRET]
