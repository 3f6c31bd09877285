"""Where a target lives in AWS: the region (and account role) its AWS APIs are asked in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AwsLocation:
    """``region`` None means the function's own (AWS_REGION); ``role_arn`` None means the
    function's own credentials, else a role assumed in another account. ``account`` is
    informational (names and labels), known for discovered resources."""

    region: str | None = None
    role_arn: str | None = None
    account: str | None = None


HERE = AwsLocation()
