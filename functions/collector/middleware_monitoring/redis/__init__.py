"""ElastiCache (Redis OSS / Valkey) engine metrics from INFO (SPEC 13)."""
