"""The one CloudWatch client of a function instance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..aws import AwsSessions
from ..config import HERE, AwsLocation, CloudWatchSettings
from .fetch import CONCURRENT_CALLS

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient


def make_client(
    settings: CloudWatchSettings,
    sessions: AwsSessions | None = None,
    location: AwsLocation = HERE,
) -> CloudWatchClient:
    """Credentials come from boto3's usual chain (the execution role in Lambda), or the role
    of ``location`` (another account) through ``sessions``. botocore's standard/adaptive retry
    modes back off on throttling; ``max_attempts`` counts the first try too. Deferred
    imports: boto3 costs ~125 ms of cold start, paid only when used."""
    import boto3

    config = AwsSessions.client_config(
        location.region or settings.region,
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        max_attempts=settings.max_attempts,
        retry_mode=settings.retry_mode,
        # A connection per concurrent call of a pass, and one more to serve the next pass
        # while a call stuck past its deadline still holds one.
        max_pool_connections=CONCURRENT_CALLS + 1,
    )
    if sessions is not None:
        client: CloudWatchClient = sessions.client(
            "cloudwatch", location, config, endpoint_url=settings.endpoint_url
        )
        return client
    # A session of its own: boto3's default session is not safe to share between threads.
    return boto3.session.Session().client(
        "cloudwatch", config=config, endpoint_url=settings.endpoint_url
    )
