"""Everything CloudWatch: declarations, the batched GetMetricData pass, the per-target source."""

from __future__ import annotations

from .declarations import Declaration, Stat
from .source import CloudWatchBatch, CloudWatchSource

__all__ = ["CloudWatchBatch", "CloudWatchSource", "Declaration", "Stat"]
