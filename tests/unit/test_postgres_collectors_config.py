"""PG_COLLECTORS and PG_TABLES_TOP_N: which SPEC 11 health groups run, and bad values named
with the shape expected, in the one configuration message."""

from __future__ import annotations

import pytest

from middleware_monitoring.config import ConfigError, load_settings
from middleware_monitoring.config.postgres import PG_COLLECTOR_GROUPS, PG_DEFAULT_COLLECTORS

PG = {"PG_DATABASE": "db.example.internal", "PG_USER": "monitor"}
GROUPS = (
    "server, wraparound, transactions, locks, wait_events, replication, replication_slots, "
    "database_stats, tables, statement_details, indexes, vacuum, bloat"
)


def collectors(**environ: str) -> tuple[frozenset[str], int]:
    settings = load_settings({**PG, **environ}).postgres
    assert settings is not None
    return settings.collectors, settings.tables_top_n


def problems(**environ: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings({**PG, **environ})
    return caught.value.problems


def test_default_is_every_group_but_bloat_and_twenty_tables() -> None:
    assert frozenset(PG_COLLECTOR_GROUPS) - {"bloat"} == PG_DEFAULT_COLLECTORS
    assert ", ".join(PG_COLLECTOR_GROUPS) == GROUPS
    assert collectors() == (PG_DEFAULT_COLLECTORS, 20)


def test_a_list_replaces_the_default_set() -> None:
    assert collectors(PG_COLLECTORS=" locks,wraparound ,locks", PG_TABLES_TOP_N="5") == (
        frozenset({"locks", "wraparound"}),
        5,
    )


def test_minus_names_leave_groups_out_of_the_default_set() -> None:
    assert collectors(PG_COLLECTORS="-tables, -statement_details")[0] == (
        PG_DEFAULT_COLLECTORS - {"tables", "statement_details"}
    )


def test_plus_names_add_groups_to_the_default_set() -> None:
    assert collectors(PG_COLLECTORS="+bloat, -statement_details")[0] == (
        PG_DEFAULT_COLLECTORS - {"statement_details"} | {"bloat"}
    )


def test_none_turns_every_group_off() -> None:
    assert collectors(PG_COLLECTORS="none", PG_TABLES_TOP_N="0") == (frozenset(), 0)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("locks,vacuums", "'locks,vacuums'"),
        ("-tables,locks", "'-tables,locks'"),
        (",", "','"),
        ("none,locks", "'none,locks'"),
    ],
)
def test_bad_lists_are_named_with_the_groups_expected(value: str, shown: str) -> None:
    assert problems(PG_COLLECTORS=value) == [
        f"PG_COLLECTORS: expected 'none' or a comma list of groups from {GROUPS} (all of them "
        f"'-name' or '+name' to take those out of the default set or add them to it), got "
        f"{shown}"
    ]


def test_every_problem_in_one_message() -> None:
    assert problems(PG_COLLECTORS="vacuums", PG_TABLES_TOP_N="1001", PG_PORT="x") == [
        "PG_TABLES_TOP_N: expected a whole number from 0 to 1000, got '1001'",
        f"PG_COLLECTORS: expected 'none' or a comma list of groups from {GROUPS} (all of them "
        "'-name' or '+name' to take those out of the default set or add them to it), got "
        "'vacuums'",
        "PG_PORT: expected a port number from 1 to 65535, got 'x'",
    ]
