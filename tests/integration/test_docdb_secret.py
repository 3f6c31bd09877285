"""DocumentDB logins from MONGO_SECRET_ARN (moto Secrets Manager) against the TLS + SCRAM
DocumentDB stand-in: the secret's login is used, a refused one is re-read at once, an
unreadable secret takes down only that target, and the password is in no log record."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from middleware_monitoring.config import load_settings
from middleware_monitoring.runtime import Runtime
from tests.helpers import log_records
from tests.standins.aws import MotoServer
from tests.standins.docdb import DocDBServer
from tests.standins.tls import TlsFiles, make_tls_files

USER = "monitor"
OLD_PASSWORD = "Old:Secret/pw@docdb1"
NEW_PASSWORD = "New:Secret/pw@docdb2"
FAST = {"serverSelectionTimeoutMS": "1000", "connectTimeoutMS": "1000"}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("docdb-secret-tls"))


@pytest.fixture
def docdb(tls_files: TlsFiles) -> Iterator[DocDBServer]:
    with DocDBServer(tls=tls_files, users={USER: NEW_PASSWORD}) as server:
        yield server


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    moto_server.reset()
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    return moto_server


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    with log_records(logging.DEBUG, root_level=logging.WARNING) as records:
        yield records


def secret(aws: MotoServer, password: str) -> str:
    value = json.dumps({"username": USER, "password": password})
    arn: str = aws.client("secretsmanager").create_secret(Name="docdb", SecretString=value)["ARN"]
    return arn


def environ(docdb: DocDBServer, arn: str, **more: str) -> dict[str, str]:
    info = docdb.mongo_info(**FAST)
    info["parameter"]["authSource"] = "admin"
    return {"MONGO_INFO": json.dumps(info), "MONGO_SECRET_ARN": arn, **more}


def test_secret_applies_to_targets_without_their_own_login():
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docdb-AbCdEf"
    info = [
        {"name": "a", "connect": {"address": "h1"}},
        {"name": "b", "connect": {"address": "h2", "user": "u", "pwd": "own-password"}},
    ]
    a, b = load_settings({"MONGO_INFO": json.dumps(info), "MONGO_SECRET_ARN": arn}).docdb
    assert (a.secret_arn, b.secret_arn) == (arn, None)


def test_secret_login_then_rotation_refused_login_is_reread(aws, docdb, records, closer):
    arn = secret(aws, NEW_PASSWORD)
    runtime = closer(Runtime.from_environ(environ(docdb, arn)))
    (target,) = runtime.collect(20.0).targets
    assert target.up, target.outcomes

    # A secret holding a wrong password: refused, re-read once (same value), reported down.
    aws.client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": USER, "password": OLD_PASSWORD})
    )
    rotated = closer(Runtime.from_environ(environ(docdb, arn)))
    (stale,) = rotated.collect(20.0).targets
    assert [(o.reason, o.detail) for o in stale.outcomes] == [
        ("auth_failed", "authentication failed: Authentication failed. (code 18)")
    ]
    # Fixed in Secrets Manager: the next pass's cached copy is refused, the re-read works.
    aws.client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": USER, "password": NEW_PASSWORD})
    )
    (fixed,) = rotated.collect(20.0).targets
    assert fixed.up, fixed.outcomes
    text = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in records)
    assert OLD_PASSWORD not in text and NEW_PASSWORD not in text


def test_unreadable_secret_is_that_target_down(aws, docdb, closer):
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"
    (target,) = closer(Runtime.from_environ(environ(docdb, missing))).collect(20.0).targets
    assert [(o.reason, o.detail) for o in target.outcomes] == [
        (
            "secret_unavailable",
            f"cannot read MONGO_SECRET_ARN ({missing}): ResourceNotFoundException",
        )
    ]
