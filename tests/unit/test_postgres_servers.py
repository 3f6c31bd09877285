"""Targets sharing a server (SPEC 16): the target first by name carries what is server-wide;
PG_DATABASES and `databases:` read as `all` or names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from middleware_monitoring.config import ConfigError, PostgresSettings, load_settings
from middleware_monitoring.config.cloudwatch import CloudWatchTarget
from middleware_monitoring.config.env import EnvReader
from middleware_monitoring.config.postgres import mark_server_carriers, postgres_defaults

BASE = replace(postgres_defaults(EnvReader({})), user="u")


def spec(name: str, host: str, port: int = 5432, **extra: Any) -> PostgresSettings:
    return replace(BASE, target_name=name, host=host, port=port, **extra)


def test_first_by_name_carries_each_server() -> None:
    specs: list[PostgresSettings | CloudWatchTarget] = [
        spec("orders", "db1.local"),
        spec("billing", "DB1.local."),  # the same host, written differently
        spec("zeta", "db1.local", 5433),  # another port: another server
        spec("alpha", "db2.local"),
        CloudWatchTarget("rds:x", "rds_instance", "x"),
    ]
    marked = mark_server_carriers(specs)
    carries = {s.target_name: getattr(s, "server_wide", None) for s in marked}
    assert carries == {
        "orders": False,
        "billing": True,
        "zeta": True,
        "alpha": True,
        "rds:x": None,
    }
    # Unchanged specs are the same objects (the runtime keeps their targets).
    assert marked[1] is specs[1] and marked[4] is specs[4]


def test_a_host_from_the_secret_carries_its_own_server() -> None:
    secret = spec("a-secret", "", from_secret=frozenset({"host"}), secret_arn="arn:x")
    plain = spec("b-plain", "db1.local")
    assert [s.server_wide for s in mark_server_carriers([secret, plain])] == [True, True]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("all", (True, ())), ("orders, billing,orders", (False, ("orders", "billing")))],
)
def test_pg_databases(value: str, expected: tuple[bool, tuple[str, ...]]) -> None:
    settings = load_settings({"PG_DATABASE": "h", "PG_USER": "u", "PG_DATABASES": value})
    assert settings.postgres is not None
    assert (settings.postgres.all_databases, settings.postgres.databases) == expected


def test_pg_databases_refuses_all_among_names() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"PG_DATABASE": "h", "PG_USER": "u", "PG_DATABASES": "all,orders"})
    assert caught.value.problems == [
        "PG_DATABASES: expected 'all' or a comma list of database names, got 'all,orders'"
    ]


def test_databases_of_a_targets_file_entry(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "postgres:\n"
        "  - {name: a, host: h, user: u, password: p, databases: all}\n"
        "  - {name: b, host: h, user: u, password: p, databases: [x, y]}\n"
        "  - {name: c, host: h, user: u, password: p}\n"
    )
    settings = load_settings({"TARGETS_FILE": "t.yaml", "PG_DATABASES": "z"}, [tmp_path])
    got = {s.target_name: (s.all_databases, s.databases) for s in settings.targets}  # type: ignore[union-attr]
    assert got == {"a": (True, ()), "b": (False, ("x", "y")), "c": (False, ("z",))}
    (tmp_path / "t.yaml").write_text(
        "postgres:\n  - {name: a, host: h, user: u, password: p, databases: 3}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({"TARGETS_FILE": "t.yaml"}, [tmp_path])
    assert caught.value.problems == [
        "TARGETS_FILE (t.yaml): postgres[0] (a).databases: expected all or a list of database "
        "names, got a number"
    ]


def test_each_database_of_a_shared_server_is_read_by_one_target() -> None:
    """Own databases stay with their target; PG_DATABASES is read by the first target by name
    that asks for each database; an earlier `all` leaves the later targets their own only."""
    specs = [
        spec("c-list", "db1", database="c", databases=("a", "x", "y")),
        spec("a-all", "db1", database="a", all_databases=True),
        spec("b-list", "db1", database="b", databases=("x", "z")),
        spec("d-alone", "db2", database="a", all_databases=True),
    ]
    got = {
        s.target_name: (s.server_wide, sorted(s.databases_read_elsewhere), s.all_read_elsewhere)
        for s in mark_server_carriers(specs)
    }
    assert got == {
        "a-all": (True, ["b", "c"], False),
        "b-list": (False, ["a", "c"], True),
        "c-list": (False, ["a", "b", "x", "z"], True),
        "d-alone": (True, [], False),
    }


def test_lists_share_out_their_databases_without_all() -> None:
    specs = [
        spec("b", "db1", database="b", databases=("x", "a")),
        spec("a", "db1", databases=("x", "y")),
    ]
    got = {
        s.target_name: (sorted(s.databases_read_elsewhere), s.all_read_elsewhere)
        for s in mark_server_carriers(specs)
    }
    # Target "a" (first by name) reads x and y besides its own; "b" reads its own and the
    # database "a" of its list, not x.
    assert got == {"a": (["b"], False), "b": (["postgres", "x", "y"], False)}
