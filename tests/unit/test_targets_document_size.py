"""A fleet's targets document at size (SPEC 14): 1,000 PostgreSQL entries (about 100 KB, what
TARGETS_S3_URI is for) parsed and validated, one malformed entry named by the object, the
entry and the key; and how many entries an SSM parameter holds (4 KB standard, 8 KB
advanced), counted here, with docs/fleet.md stating the same counts."""

from __future__ import annotations

import re
from pathlib import Path

from middleware_monitoring.config import load_settings, parse_document

FLEET_PAGE = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"
OBJECT = "TARGETS_S3_URI (s3://fleet-config/targets.yaml)"
# SSM's limits on a parameter's value, in bytes.
SSM_STANDARD = 4096
SSM_ADVANCED = 8192


def entry(i: int) -> str:
    """A typical RDS entry: the login from a secret, CloudWatch by the instance id."""
    name = f"orders-db-{i:03d}"
    return (
        f"  - name: {name}\n"
        f"    host: {name}.abcdefghijkl.eu-west-1.rds.amazonaws.com\n"
        f"    secret_arn: arn:aws:secretsmanager:eu-west-1:123456789012:secret:monitoring/"
        f"{name}-AbCdEf\n"
        f"    rds_id: {name}\n"
    )


def document(count: int) -> str:
    return "postgres:\n" + "".join(entry(i) for i in range(count))


def defaults():
    settings = load_settings({})
    assert settings.postgres_defaults is not None
    return settings.postgres_defaults


def test_a_thousand_entries_are_parsed_and_validated():
    text = document(1000)
    assert 150_000 < len(text.encode()) < 250_000
    parsed, problems = parse_document(text, OBJECT, defaults())
    assert problems == []
    specs = parsed.specs()
    assert len(specs) == 1000
    last = parsed.postgres[-1]
    assert (last.target_name, last.host, last.rds_id, last.sslmode) == (
        "orders-db-999",
        "orders-db-999.abcdefghijkl.eu-west-1.rds.amazonaws.com",
        "orders-db-999",
        "verify-full",
    )


def test_one_malformed_entry_of_a_thousand_is_named_by_object_entry_and_key():
    lines = document(1000).replace(
        "  - name: orders-db-617\n", "  - name: orders-db-617\n    port: 54x32\n"
    )
    _, problems = parse_document(lines, OBJECT, defaults())
    assert problems == [
        f"{OBJECT}: postgres[617] (orders-db-617).port: expected a port number from 1 to "
        "65535, got '54x32'"
    ]


def entries_that_fit(limit: int) -> int:
    count = 0
    while len(document(count + 1).encode()) <= limit:
        count += 1
    return count


def test_ssm_parameter_sizes_and_what_the_docs_say():
    standard, advanced = entries_that_fit(SSM_STANDARD), entries_that_fit(SSM_ADVANCED)
    assert (standard, advanced) == (18, 37)
    page = " ".join(FLEET_PAGE.read_text().split())
    assert re.search(rf"standard parameter \(4 KB\) holds {standard} entries", page), page
    assert re.search(rf"advanced parameter \(8 KB\) {advanced}", page)
