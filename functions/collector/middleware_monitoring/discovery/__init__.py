"""Discovery (SPEC 10): RDS PostgreSQL, Aurora PostgreSQL, DocumentDB and ElastiCache
resources found by tags, across regions and accounts, as targets with their inventory.

``describe`` makes the AWS calls, ``resources`` reads their answers, ``specs`` turns a
resource into its target, ``cache`` keeps and refreshes what is known, ``source`` reports a
resource's inventory as series of its target.
"""

from .cache import Discovery
from .source import InventorySource

__all__ = ["Discovery", "InventorySource"]
