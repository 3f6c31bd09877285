"""PostgreSQL values by SQL (SPEC 3.1, 3.2)."""
