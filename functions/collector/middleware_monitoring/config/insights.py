"""Database Insights settings (SPEC 17): Enhanced Monitoring's OS metrics from CloudWatch
Logs, and Performance Insights' DB load. Both off unless switched on."""

from __future__ import annotations

from dataclasses import dataclass

from .env import EnvReader


@dataclass(frozen=True)
class InsightsSettings:
    # ENHANCED_MONITORING: the newest event of each instance's RDSOSMetrics log stream.
    enhanced_monitoring: bool = False
    # ENHANCED_MONITORING_PROCESSES: processes of processList sent, the busiest by CPU.
    processes: int = 10
    # PERFORMANCE_INSIGHTS: pi:GetResourceMetrics, DB load by wait event and by statement.
    performance_insights: bool = False


def load_insights(env: EnvReader) -> InsightsSettings:
    return InsightsSettings(
        enhanced_monitoring=env.flag("ENHANCED_MONITORING", False),
        processes=env.integer("ENHANCED_MONITORING_PROCESSES", 10, 0, 100),
        performance_insights=env.flag("PERFORMANCE_INSIGHTS", False),
    )
