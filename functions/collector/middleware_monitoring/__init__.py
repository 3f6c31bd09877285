"""Collects PostgreSQL, DocumentDB and CloudWatch values and pushes them to Prometheus."""

__version__ = "0.1.0"
