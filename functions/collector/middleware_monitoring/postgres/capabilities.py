"""What the server and the login allow, asked once per connection in one statement: a
reconnect may reach another server (a failover, a moved endpoint, an upgrade), so what held
on the last connection is asked again on the next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .connection import PgConnection
from .statements import MARKER

# to_regprocedure() resolves the name like a call would (search_path) and is NULL, not an
# error, where the function does not exist: aurora_replica_status() is Aurora's only.
CAPABILITIES_SQL: Final = f"""{MARKER} SELECT
  current_setting('server_version_num')::int,
  pg_has_role('pg_read_all_stats', 'USAGE'),
  CASE WHEN to_regprocedure('pg_catalog.pg_control_system()') IS NOT NULL
       THEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') END,
  to_regprocedure('aurora_replica_status()') IS NOT NULL,
  to_regclass('pg_catalog.pg_replication_slots') IS NOT NULL"""


@dataclass(frozen=True)
class Capabilities:
    server_version: int  # server_version_num: 150007, 170002, ...
    # Superuser, or member of pg_read_all_stats (pg_monitor includes it): without it
    # PostgreSQL hides other users' session state, waits and replication positions.
    reads_all_stats: bool
    # pg_control_system() (the cluster's system identifier) may be executed.
    control_readable: bool
    # aurora_replica_status() exists: Aurora PostgreSQL.
    aurora: bool
    # pg_replication_slots exists: the replication group names a replica by its slot. Without
    # the view only the replication_slots group is lost, not the replicas' lag.
    slots_view: bool = True


class CapabilityCache:
    """The capabilities of the connection currently open, asked again after a reconnect."""

    def __init__(self, db: PgConnection) -> None:
        self._db = db
        self._known: Capabilities | None = None
        self._asked_on = -1

    def get(self) -> Capabilities:
        if self._known is None or self._asked_on != self._db.opened:
            version, all_stats, control, aurora, slots = self._db.run(CAPABILITIES_SQL)[0]
            # Read after the statement: it may have opened the connection it was asked on.
            self._asked_on = self._db.opened
            self._known = Capabilities(
                int(version), bool(all_stats), bool(control), bool(aurora), bool(slots)
            )
        return self._known
