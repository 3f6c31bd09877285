"""The pass's text writer against prometheus_client's own encoder and parser: the same
bytes as ``generate_latest`` of the merged, newest-only families (what the sinks sent before
the writer), for every family type and awkward value the collector can produce."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from middleware_monitoring.model import (
    FrozenFamilies,
    PassResult,
    TargetResult,
    with_instance_label,
)
from middleware_monitoring.text_format import write_groups


def _reference(groups: list[TargetResult]) -> bytes:
    """What the sinks sent before: the families merged with their instance label, each
    series once with its newest value, through prometheus_client's registry and encoder."""
    merged = with_instance_label(groups)
    newest_families: list[Metric] = []
    for family in merged:
        newest: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            kept = newest.get(key)
            when = math.inf if sample.timestamp is None else float(sample.timestamp)
            kept_when = (
                None
                if kept is None
                else math.inf
                if kept.timestamp is None
                else float(kept.timestamp)
            )
            if kept_when is None or when >= kept_when:
                newest[key] = sample
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [
            Sample(s.name, s.labels, s.value, None, s.exemplar) for s in newest.values()
        ]
        newest_families.append(copy)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrozenFamilies(newest_families))
    return generate_latest(registry)


def _pass() -> PassResult:
    def target(name: str, base: float) -> TargetResult:
        up = GaugeMetricFamily("pg_up", "1 if the server answered.", value=1)
        sizes = GaugeMetricFamily(
            "pg_database_size_bytes",
            'Size with "quotes", a \\ and a\nnewline.',
            labels=["database_name"],
        )
        sizes.add_metric(["app"], 8192 + base)
        sizes.add_metric(['we"ird\\name\nx'], 1.5e9)
        sizes.add_metric(["ünïcode"], -3.25)
        calls = CounterMetricFamily(
            "pg_query_calls", "Calls.", labels=["queryid", "query"], created=1.7e9
        )
        calls.add_metric(["1", "SELECT 1"], 12, created=1.7e9)
        calls.add_metric(["2", "SELECT $1 /* x */"], 1e20)
        # pg_stat_statements can list one statement twice (toplevel and nested): one series,
        # the last value.
        calls.add_metric(["2", "SELECT $1 /* x */"], 2e20)
        odd = GaugeMetricFamily("middleware_odd_values", "Odd.", labels=["kind", "instance"])
        for kind, value in (
            ("nan", math.nan),
            ("inf", math.inf),
            ("-inf", -math.inf),
            ("big", 123456789.0),
            ("small", 1e-7),
            ("zero", 0.0),
            ("negative-zero", -0.0),
            ("int", 7),
        ):
            odd.add_metric([kind, "its-own-instance"], value)
        cpu = GaugeMetricFamily("pg_cpu_utilization", "CPU.")
        for at, value in ((1_800_000_060.0, 12.0), (1_800_000_000.0, 11.0), (1_800_000_120.0, 9.0)):
            cpu.add_metric([], value + base, timestamp=at)
        info = InfoMetricFamily("redis_instance", "Instance.", value={"version": "7.0"})
        summary = SummaryMetricFamily("pg_wait", "Waits.", count_value=3, sum_value=1.5)
        unknown = UnknownMetricFamily("mongo_something", "Unknown.", value=4)
        return TargetResult(name, [up, sizes, calls, odd, cpu, info, summary, unknown], [])

    collector = TargetResult(
        "collector",
        [GaugeMetricFamily("middleware_pass_duration_seconds", "Pass.", value=0.25)],
        [],
    )
    return PassResult([target("db1", 0.0), target("db/2", 1.0)], 0.3, collector)


def test_the_same_bytes_as_prometheus_clients_encoder_on_the_same_pass() -> None:
    result = _pass()
    written = write_groups(result.groups())
    assert written == _reference(result.groups())


def test_prometheus_clients_parser_reads_every_series_back() -> None:
    result = _pass()
    parsed = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(write_groups(result.groups()).decode())
        for sample in family.samples
    }
    assert parsed[("pg_up", frozenset({("instance", "db/2")}))] == 1.0
    assert (
        parsed[
            (
                "pg_database_size_bytes",
                frozenset({("instance", "db1"), ("database_name", 'we"ird\\name\nx')}),
            )
        ]
        == 1.5e9
    )
    # The series' newest point, whatever the order the points came in.
    assert parsed[("pg_cpu_utilization", frozenset({("instance", "db1")}))] == 9.0
    repeated = (
        "pg_query_calls_total",
        frozenset({("instance", "db1"), ("queryid", "2"), ("query", "SELECT $1 /* x */")}),
    )
    assert parsed[repeated] == 2e20
    # A series' own instance label gives way to its target's.
    assert (
        parsed[("middleware_odd_values", frozenset({("instance", "db1"), ("kind", "big")}))]
        == 123456789.0
    )
    assert math.isnan(
        parsed[("middleware_odd_values", frozenset({("instance", "db1"), ("kind", "nan")}))]
    )
    # Per target: 1 + 3 + 3 (one _created, one repeated) + 8 + 1 + 1 + 2 + 1; the collector's.
    assert len(parsed) == 2 * 20 + 1


def test_a_label_set_given_in_another_order_is_the_same_series() -> None:
    """The writer remembers each label set's text by its labels as given: the same labels in
    another order are still one series (the last value, at its first place), in every target
    that repeats them, and without the instance label too."""
    sizes = Metric("pg_table_size_bytes", "Size.", "gauge")
    sizes.add_sample("pg_table_size_bytes", {"schema": "public", "table": "t"}, 1.0)
    sizes.add_sample("pg_table_size_bytes", {"table": "u", "schema": "public"}, 2.0)
    sizes.add_sample("pg_table_size_bytes", {"table": "t", "schema": "public"}, 3.0)
    groups = [TargetResult(name, [sizes], []) for name in ("db1", "db2")]
    written = write_groups(groups)
    assert written == _reference(groups)
    assert written.decode().splitlines()[2:] == [
        'pg_table_size_bytes{instance="db1",schema="public",table="t"} 3.0',
        'pg_table_size_bytes{instance="db1",schema="public",table="u"} 2.0',
        'pg_table_size_bytes{instance="db2",schema="public",table="t"} 3.0',
        'pg_table_size_bytes{instance="db2",schema="public",table="u"} 2.0',
    ]
    assert write_groups(groups, label_instance=False).decode().splitlines()[2:] == [
        'pg_table_size_bytes{schema="public",table="t"} 3.0',
        'pg_table_size_bytes{schema="public",table="u"} 2.0',
    ]
