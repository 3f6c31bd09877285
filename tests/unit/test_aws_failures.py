"""How a failed AWS call becomes a reason token and a sentence, for CloudWatch and discovery
alike (botocore's exceptions built directly; no network)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, NoRegionError, ReadTimeoutError

from middleware_monitoring.aws import AwsFailure, classify_failure


def client_error(code: str, operation: str, message: str = "", retries: int = 0) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RetryAttempts": retries},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("Throttling", "throttled"),
        ("RequestLimitExceeded", "throttled"),
        ("AccessDenied", "auth_failed"),
        ("AuthorizationError", "auth_failed"),
        ("UnauthorizedOperation", "auth_failed"),
        ("MissingAuthenticationToken", "auth_failed"),
        ("InternalFailure", "cloudwatch_error"),
    ],
)
def test_codes_of_the_service(code: str, reason: str) -> None:
    failure = classify_failure(
        client_error(code, "GetMetricData", "no"), service_error="cloudwatch_error"
    )
    assert failure == AwsFailure(reason, f"GetMetricData failed: {code}: no")


def test_a_refused_role_is_named_whichever_call_needed_it() -> None:
    exc = client_error(
        "AccessDenied", "AssumeRole", "User is not authorized to perform: sts:AssumeRole", 2
    )
    assert classify_failure(exc, service_error="aws_error") == AwsFailure(
        "assume_role_failed",
        "AssumeRole failed after 3 attempts: AccessDenied: "
        "User is not authorized to perform: sts:AssumeRole",
    )


def test_timeouts_and_no_region() -> None:
    timeout = ReadTimeoutError(endpoint_url="https://monitoring.eu-west-1.amazonaws.com/")
    assert classify_failure(timeout, service_error="aws_error") == AwsFailure(
        "timeout",
        'timed out: Read timeout on endpoint URL: "https://monitoring.eu-west-1.amazonaws.com/"',
    )
    assert classify_failure(NoRegionError(), service_error="aws_error") == AwsFailure(
        "no_region", "no AWS region: set AWS_REGION (e.g. eu-west-1)"
    )


def test_anything_else_is_an_error_with_its_type() -> None:
    assert classify_failure(ValueError("bad"), service_error="aws_error") == AwsFailure(
        "error", "ValueError: bad"
    )
