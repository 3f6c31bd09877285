"""Database Insights you own (SPEC 17): Enhanced Monitoring's OS metrics and Performance
Insights' DB load, read per instance by the pass's prefetches."""
