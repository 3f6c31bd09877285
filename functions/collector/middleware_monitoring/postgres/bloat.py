"""Table bloat, estimated from the planner's statistics (SPEC 16; PG_COLLECTORS group
`bloat`, off by default): no extension, no table read, one catalog query per database.

The estimate is the usual one: from pg_stats (each column's average width and share of
NULLs) a row's size on disk is rebuilt (the 23-byte header and NULL bitmap, aligned to
MAXALIGN, plus the data, aligned, plus its 4-byte line pointer); pg_class.reltuples such rows
at the table's fillfactor fill so many pages; what the heap holds beyond that
(pg_class.relpages) is bloat: dead rows and free space autovacuum has not given back.

Its limits: pg_class and pg_stats are as of the last VACUUM or ANALYZE (autovacuum runs
both); a table some of whose columns have no statistics (never analyzed, or a login without
SELECT on it: pg_stats hides those columns) is left out rather than guessed; TOAST is not
counted; alignment padding between columns is not modelled, so tables of mixed narrow and wide
columns read a little bloated. Against pgstattuple (dead tuples plus free space) on the same
table the error stays within 10% of the table's size (tests/integration/test_postgres_bloat.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from ..config import PostgresSettings


def bloat_column(settings: PostgresSettings) -> str:
    # MAXALIGN is 8 on every 64-bit build RDS and Aurora run; the page header is 24 bytes.
    return f"""(SELECT coalesce(json_agg(json_build_array(schemaname, relname, bloat)), '[]')
 FROM (SELECT schemaname, relname,
              greatest(relpages - ceil(reltuples / floor(
                (bs - 24) * fillfactor / 100.0 / row_size)), 0) * bs AS bloat
       FROM (SELECT n.nspname AS schemaname, c.relname, c.relpages, c.reltuples,
                    current_setting('block_size')::int AS bs,
                    coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::int
                              FROM unnest(c.reloptions) AS o WHERE o LIKE 'fillfactor=%'),
                             100) AS fillfactor,
                    4 + ceil((23 + CASE WHEN max(s.null_frac) > 0
                                        THEN (count(*) + 7) / 8 ELSE 0 END) / 8.0) * 8
                      + ceil(sum((1 - s.null_frac) * s.avg_width) / 8.0) * 8 AS row_size,
                    count(s.attname) = count(*) AS complete
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
                                 AND s.attname = a.attname AND NOT s.inherited
             WHERE c.relkind IN ('r', 'm') AND c.reltuples > 0
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%'
             GROUP BY n.nspname, c.relname, c.relpages, c.reltuples, c.reloptions) AS t
       WHERE complete AND row_size > 0
       ORDER BY bloat DESC, schemaname, relname
       LIMIT {int(settings.tables_top_n)}) AS b)"""


def bloat_families(database: str, value: Any) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "pg_table_bloat_bytes",
        "Estimated bloat of the table (statistics-based: heap pages beyond what its rows "
        "need), top PG_TABLES_TOP_N.",
        labels=["database_name", "schema", "table"],
    )
    for schema, table, bloat in value:
        family.add_metric([database, schema, table], float(bloat))
    yield family
