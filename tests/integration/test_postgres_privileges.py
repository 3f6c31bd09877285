"""A login without pg_read_all_stats sees other users' pg_stat_statements entries without
queryid and text: the login's own statements still come, and one log line says what to
grant."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from middleware_monitoring.postgres.source import PostgresSource
from tests.integration.pg_helpers import APP_DB, ok_pass, prepare, settings_for
from tests.standins.postgres import PostgresServer

PLAIN_LOGIN, PLAIN_PASSWORD = "mm_plain_login", "plain-login-pw-31"


def test_hidden_statements_and_the_grant_named_once(
    pg15: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    pg = prepare(pg15)
    pg.create_role(PLAIN_LOGIN, PLAIN_PASSWORD, monitor=False)
    pg.execute_as_superuser(f"GRANT CONNECT ON DATABASE {APP_DB} TO {PLAIN_LOGIN}")
    # Another user's statement, new to pg_stat_statements: its text is hidden from the login.
    pg.execute_as_superuser("SELECT count(*) AS privilege_probe FROM items", database=APP_DB)
    own = pg.connect(user=PLAIN_LOGIN, password=PLAIN_PASSWORD, database=APP_DB)
    try:
        own.run("SELECT count(*) AS plain_probe FROM pg_class")
    finally:
        own.close()
    settings = replace(settings_for(pg), user=PLAIN_LOGIN, password=PLAIN_PASSWORD)
    source = PostgresSource(settings)
    caplog.set_level(logging.WARNING, logger="middleware_monitoring")
    try:
        first = ok_pass(source)
        ok_pass(source)
    finally:
        source.close()
    assert first[("pg_up", frozenset())] == 1.0
    hints = [r.getMessage() for r in caplog.records if "statements are hidden" in r.getMessage()]
    assert len(hints) == 1
    assert hints == [
        f"other users' statements are hidden from {PLAIN_LOGIN} (no text, no queryid): they "
        "stay out of pg_qps_* (their entries cannot be told apart) and of the pg_query_* top "
        f"N. GRANT pg_read_all_stats TO {PLAIN_LOGIN}; (pg_monitor includes it)"
    ]
    # Only what the login may see is in the top N, with its text and queryid.
    statements = [dict(labels) for (name, labels) in first if name == "pg_query_calls"]
    assert [(s["query"], s["user"]) for s in statements] == [
        ("SELECT count(*) AS plain_probe FROM pg_class", PLAIN_LOGIN)
    ]
    assert statements[0]["queryid"].lstrip("-").isdigit()
