"""PostgreSQL over TLS, verified with a CA made at test time: the way the template deploys
it (PG_SSLMODE=verify-full, PG_SSLROOTCERT=global-bundle.pem found in the CA layer)."""

from __future__ import annotations

import atexit
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Metric

from middleware_monitoring.config import PostgresSettings, load_settings
from middleware_monitoring.model import SourceFailure
from middleware_monitoring.postgres.connection import PgConnection
from middleware_monitoring.postgres.source import PostgresSource
from tests.helpers import closing
from tests.standins.postgres import PostgresServer
from tests.standins.tls import TlsFiles, make_tls_files, postgres_tls_settings


def start_tls_server(tls: TlsFiles) -> PostgresServer:
    # The server runs as the postgres user, which cannot enter pytest's private temp dirs.
    keys = Path(tempfile.mkdtemp(prefix="pg-tls-keys-"))
    keys.chmod(0o755)
    server = PostgresServer(15, settings=postgres_tls_settings(tls, keys / "server"))
    atexit.register(shutil.rmtree, keys, ignore_errors=True)
    return server.start()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("pg-tls"))


@pytest.fixture(scope="module")
def tls_server(tls_files: TlsFiles) -> Iterator[PostgresServer]:
    server = start_tls_server(tls_files)
    yield server
    server.cleanup()


def settings_for(
    server: PostgresServer, sslmode: str, sslrootcert: str, host: str = "127.0.0.1"
) -> PostgresSettings:
    settings = load_settings(server.collector_env()).postgres
    assert settings is not None
    return replace(
        settings, qps_sample_seconds=0.0, sslmode=sslmode, sslrootcert=sslrootcert, host=host
    )


def collect(source: PostgresSource) -> dict[str, Metric]:
    return {family.name: family for family in source.collect()}


def test_verify_full_with_the_bundle_from_the_layer(
    tls_server: PostgresServer, tls_files: TlsFiles, tmp_path: Path
) -> None:
    layer = tmp_path / "opt"
    layer.mkdir()
    shutil.copy(tls_files.ca, layer / "global-bundle.pem")
    settings = settings_for(
        tls_server, sslmode="verify-full", sslrootcert="global-bundle.pem", host="localhost"
    )
    connection = PgConnection(settings, ca_search_dirs=[tmp_path / "function", layer])
    with closing(PostgresSource(settings, connection)) as source:
        families = collect(source)
        # The session really is encrypted: the server says so for the collector's own backend.
        ssl = connection.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert families["pg_up"].samples[0].value == 1.0
    assert ssl == [[True]]


def test_wrong_ca_is_refused_with_reason_tls(
    tls_server: PostgresServer, tls_files: TlsFiles
) -> None:
    settings = settings_for(
        tls_server, sslmode="verify-full", sslrootcert=str(tls_files.other_ca), host="localhost"
    )
    families: list[Metric] = []
    with closing(PostgresSource(settings)) as source, pytest.raises(SourceFailure) as failure:
        families.extend(source.collect())
    assert failure.value.reason == "tls"
    assert "CERTIFICATE_VERIFY_FAILED" in failure.value.detail
    assert [(f.name, f.samples[0].value) for f in families] == [("pg_up", 0.0)]


def test_verify_full_checks_the_host_name(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A certificate for another name, from a CA the collector trusts: verify-full refuses it,
    # verify-ca (the chain only) accepts it.
    tls = make_tls_files(tmp_path_factory.mktemp("pg-tls-other"), names="DNS:db.example.internal")
    server = start_tls_server(tls)
    try:
        full = settings_for(server, sslmode="verify-full", sslrootcert=str(tls.ca))
        with closing(PostgresSource(full)) as source, pytest.raises(SourceFailure) as failure:
            list(source.collect())
        assert failure.value.reason == "tls"
        assert "IP address mismatch" in failure.value.detail

        chain_only = replace(full, sslmode="verify-ca")
        with closing(PostgresSource(chain_only)) as source:
            families = collect(source)
        assert families["pg_up"].samples[0].value == 1.0
    finally:
        server.cleanup()


def test_missing_bundle_names_where_it_looked(tls_server: PostgresServer, tmp_path: Path) -> None:
    settings = settings_for(tls_server, sslmode="verify-full", sslrootcert="global-bundle.pem")
    connection = PgConnection(settings, ca_search_dirs=[tmp_path])
    with (
        closing(PostgresSource(settings, connection)) as source,
        pytest.raises(SourceFailure) as failure,
    ):
        list(source.collect())
    assert (failure.value.reason, failure.value.detail) == (
        "tls",
        f"CA file global-bundle.pem not found in {tmp_path}",
    )


def test_prefer_and_require_are_encrypted_with_one_shared_context(
    tls_server: PostgresServer, tls_files: TlsFiles, pg15: PostgresServer
) -> None:
    """Every connect shares one context per CA file (and one unverified one): pg8000 made a
    new one per connect, loading CA certificates each time. ``prefer`` still takes TLS when
    the server offers it and plain when it does not."""
    from middleware_monitoring.postgres.connection import ssl_context_for

    for mode in ("prefer", "require"):
        settings = settings_for(tls_server, sslmode=mode, sslrootcert="")
        connection = PgConnection(settings)
        try:
            ssl = connection.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        finally:
            connection.close()
        assert ssl == [[True]], mode
    verified = [
        ssl_context_for(settings_for(tls_server, "verify-full", str(tls_files.ca)))
        for _ in range(3)
    ]
    assert verified[0] is verified[1] is verified[2]
    unverified = {
        id(ssl_context_for(settings_for(tls_server, mode, ""))) for mode in ("prefer", "require")
    }
    assert len(unverified) == 1

    # A server without TLS (the session's plain one): prefer connects plain, twice.
    plain = settings_for(pg15, sslmode="prefer", sslrootcert="")
    connection = PgConnection(plain)
    try:
        for _ in range(2):
            assert connection.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [
                [False]
            ]
            connection.close()
    finally:
        connection.close()
    # ... and require does not.
    with pytest.raises(SourceFailure) as refused:
        PgConnection(settings_for(pg15, sslmode="require", sslrootcert="")).run("SELECT 1")
    assert (refused.value.reason, refused.value.detail) == (
        "tls",
        "the server refuses TLS (PG_SSLMODE asks for it)",
    )


def test_connects_make_no_ssl_context_once_the_first_is_made(
    tls_server: PostgresServer, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted at the class: after the first connect of each kind, connects (verify-full
    against a CA file, require) make no SSLContext at all. pg8000 made a default one per
    connect, loading the system's CA certificates each time: 55 ms of CPU per cold target."""
    modes = (("verify-full", str(tls_files.ca)), ("require", ""))

    def connect_all() -> None:
        for mode, ca in modes:
            connection = PgConnection(settings_for(tls_server, mode, ca))
            try:
                ssl_in_use = connection.run(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                )
            finally:
                connection.close()
            assert ssl_in_use == [[True]], mode

    connect_all()
    made: list[type] = []
    original = ssl.SSLContext.__new__

    def counting(cls: type[ssl.SSLContext], *args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(cls)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "__new__", staticmethod(counting))
    # The counter counts: a context made here is seen.
    ssl.create_default_context()
    assert len(made) == 1
    made.clear()
    for _ in range(3):
        connect_all()
    assert made == []
