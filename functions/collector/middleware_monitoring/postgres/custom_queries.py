"""Custom SQL metrics (SPEC 16): the queries of a postgres_exporter queries.yaml, each in a
read-only transaction under the session's statement timeout, turned into the series
postgres_exporter would send for them (config/pg_queries.py says which rules are kept).

Values as postgres_exporter converts them: numbers as they are, numeric text parsed, true 1
and false 0, a timestamp its Unix seconds, NULL NaN; a value that is none of these (an
interval, JSON) leaves that one series out. Labels: NULL is the empty string.

One query failing sets ``pg_custom_query_up{query}`` 0 (its reason in the log when it
starts failing or the reason changes) and the others still run. A query may send at most
PG_QUERIES_MAX_SERIES series; the rest of its rows are left out and
``pg_custom_query_series_dropped{query}`` says how many series were.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.samples import Sample

from ..config.pg_queries import Column, CustomQuery, QueriesFile, server_semver
from ..model import SourceFailure
from .connection import PgConnection

logger = logging.getLogger(__name__)

BEGIN_SQL: Final = "START TRANSACTION READ ONLY"
END_SQL: Final = "ROLLBACK"
_TYPES: Final = {
    "GAUGE": "gauge",
    "MAPPEDMETRIC": "gauge",
    "DURATION": "gauge",
    "COUNTER": "counter",
}
UNKNOWN_HELP: Final = "Unknown metric from {namespace}"


def _go_float(text: str) -> float | None:
    """Go's strconv.ParseFloat: no surrounding space, no digit separators, hex floats."""
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        if text.lower().lstrip("+-").startswith("0x"):
            return float.fromhex(text)
        return float(text)
    except ValueError:
        return None


def _unix_seconds(value: datetime.date) -> int:
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return math.floor(value.timestamp())


def value_of(value: Any) -> float | None:
    """A column's value as postgres_exporter's dbToFloat64 gives it; None: not a number."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, datetime.date):
        return float(_unix_seconds(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return _go_float(value)
    return None


def go_float_text(value: float) -> str:
    """A float as Go's fmt %v writes it (%g, shortest): 0.5, 123456, 1e+06, 1.5e-05."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    point = len(text) + exponent  # where the decimal point falls in the digits
    power = point - 1
    minus = "-" if sign else ""
    if power < -4 or power >= 6:  # Go's shortest %g switches to an exponent here
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}"
    return f"{minus}{text[:point]}.{text[point:]}"


def label_of(value: Any) -> str:
    """A label column's value as postgres_exporter's dbToString gives it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float_text(value)
    if isinstance(value, datetime.date):
        return str(_unix_seconds(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


@dataclass
class _Result:
    families: list[Metric]
    up: bool
    dropped: int
    at: float  # time.monotonic() it was read


@dataclass
class _Family:
    """One series name of a query's result, built as rows come."""

    metric: Metric
    name: str


@dataclass
class CustomQueries:
    """The queries of one target (or one of its databases), with their cached results and
    which ones are failing, kept across passes."""

    queries: QueriesFile
    max_series: int
    target_name: str
    clock: Callable[[], float] = time.monotonic
    _results: dict[str, _Result] = field(default_factory=dict)
    _failing: dict[str, str] = field(default_factory=dict)

    def collect(
        self,
        db: PgConnection,
        server_version: int,
        *,
        master: bool = True,
        database_name: str | None = None,
    ) -> Iterator[Metric]:
        """Run the queries that apply (``master``: the target's own database, where queries
        with ``master: true`` run too); ``database_name`` labels every series when set."""
        version = server_semver(server_version)
        up = GaugeMetricFamily(
            "pg_custom_query_up",
            "1 if the custom query (PG_QUERIES_FILE) ran this pass, 0 if it failed.",
            labels=self._labels(["query"], database_name),
        )
        dropped = GaugeMetricFamily(
            "pg_custom_query_series_dropped",
            "Series of the custom query left out this pass: more than PG_QUERIES_MAX_SERIES.",
            labels=self._labels(["query"], database_name),
        )
        for query in self.queries.queries:
            if query.master and not master:
                continue
            if query.runonserver is not None and not query.runonserver.admits(version):
                continue
            result = self._results.get(query.namespace)
            now = self.clock()
            if result is None or not result.up or now - result.at > query.cache_seconds:
                result = self._run(db, query, database_name)
                if query.cache_seconds > 0:
                    self._results[query.namespace] = result
                if not db.is_open:
                    # The connection is gone: the next queries would each wait for a timeout.
                    yield from result.families
                    self._add(up, query, database_name, 0)
                    break
            yield from result.families
            self._add(up, query, database_name, 1 if result.up else 0)
            self._add(dropped, query, database_name, result.dropped)
        yield up
        yield dropped

    @staticmethod
    def _labels(labels: list[str], database_name: str | None) -> list[str]:
        return [*labels, "database_name"] if database_name is not None else labels

    @staticmethod
    def _add(family: GaugeMetricFamily, query: CustomQuery, database: str | None, v: int) -> None:
        family.add_metric([query.namespace] + ([database] if database is not None else []), v)

    def _run(self, db: PgConnection, query: CustomQuery, database_name: str | None) -> _Result:
        key = f"{query.namespace}@{database_name}" if database_name else query.namespace
        try:
            db.run(BEGIN_SQL)
            try:
                names, rows = db.run_described(query.sql)
            finally:
                if db.is_open:
                    db.run(END_SQL)
        except SourceFailure as failure:
            if self._failing.get(key) != failure.detail:
                self._failing[key] = failure.detail
                where = f" in database {database_name}" if database_name else ""
                logger.warning(
                    f"custom query {query.namespace} failed{where}: {failure.detail}",
                    extra={
                        "target": self.target_name,
                        "source": "postgres",
                        "query": query.namespace,
                        **({"database_name": database_name} if database_name else {}),
                    },
                )
            return _Result([], False, 0, self.clock())
        if self._failing.pop(key, None) is not None:
            logger.info(
                f"custom query {query.namespace} runs again",
                extra={"target": self.target_name, "source": "postgres"},
            )
        families, dropped = self._families(query, names, rows, database_name)
        if dropped:
            logger.warning(
                f"custom query {query.namespace}: {dropped} series left out (more than "
                f"PG_QUERIES_MAX_SERIES={self.max_series})",
                extra={"target": self.target_name, "source": "postgres"},
            )
        return _Result(families, True, dropped, self.clock())

    def _families(
        self,
        query: CustomQuery,
        names: list[str],
        rows: list[list[Any]],
        database_name: str | None,
    ) -> tuple[list[Metric], int]:
        columns: dict[str, Column] = {column.name: column for column in query.columns}
        index = {name: i for i, name in enumerate(names)}
        # A label column the result lacks is the empty string.
        label_indexes = [index.get(name) for name in query.labels]
        # The value columns in the result's order: (index, series name, type, help).
        value_columns: list[tuple[int, str, str, str]] = []
        for i, name in enumerate(names):
            column = columns.get(name)
            if column is None:
                value_columns.append(
                    (i, f"{query.namespace}_{name}", "unknown", UNKNOWN_HELP.format(
                        namespace=query.namespace))
                )  # fmt: skip
            elif column.usage not in ("LABEL", "DISCARD"):
                suffix = "_milliseconds" if column.usage == "DURATION" else ""
                series = f"{query.namespace}_{name}{suffix}"
                kind = _TYPES[column.usage]
                if kind == "counter" and not series.endswith("_total"):
                    # The text format the sinks write (prometheus_client's) declares a
                    # counter as <name>_total: a counter keeping postgres_exporter's name
                    # can only go untyped. rate() and increase() work on it all the same.
                    kind = "unknown"
                value_columns.append((i, series, kind, column.description))
        families: dict[str, Metric] = {}
        sent = dropped = 0
        for row in rows:
            labels = {
                name: label_of(row[i]) if i is not None else ""
                for name, i in zip(query.labels, label_indexes, strict=True)
            }
            if database_name is not None:
                labels["database_name"] = database_name
            for i, name, kind, help_text in value_columns:
                value = value_of(row[i])
                if value is None:
                    continue  # not a number: postgres_exporter leaves it out too
                if sent >= self.max_series:
                    dropped += 1
                    continue
                family = families.get(name)
                if family is None:
                    # A counter family is named without the _total its sample carries.
                    family_name = name.removesuffix("_total") if kind == "counter" else name
                    family = families[name] = Metric(family_name, help_text, kind)
                family.samples.append(Sample(name, labels, value, None, None))
                sent += 1
        return list(families.values()), dropped
