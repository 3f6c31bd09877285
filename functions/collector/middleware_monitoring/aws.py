"""AWS API clients of a function instance, per location (region, and role of another account).

One botocore session per role: its credentials are assumed once and refreshed by botocore
shortly before they expire, so every client of that role (CloudWatch, RDS auth tokens,
Describe calls) shares one AssumeRole result instead of asking STS per call or per pass.
boto3 is imported on first use: it costs ~125 ms of cold start, paid only when needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .config import AwsLocation

if TYPE_CHECKING:
    import boto3

# Every AWS call's bounds unless its caller sets its own: STS, Describe and tagging calls
# answer in milliseconds; these bound an invocation that cannot reach them at all.
CONNECT_TIMEOUT_SECONDS: Final = 3.0
READ_TIMEOUT_SECONDS: Final = 5.0
ROLE_SESSION_NAME: Final = "middleware-monitoring"

# Error codes AWS services answer when they throttle, and when the caller's identity or its
# rights are the problem: CloudWatch and discovery report them as `throttled` and
# `auth_failed`; any other code is the service's own error.
THROTTLING_CODES: Final = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
AUTH_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)


@dataclass(frozen=True)
class AwsFailure:
    reason: str
    detail: str


def aws_error_code(exc: BaseException) -> str | None:
    """The AWS error code of ``exc`` or of an error it wraps (Powertools wraps botocore's
    ClientError in its own GetParameterError), else None."""
    current: BaseException | None = exc
    while current is not None:
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
        current = current.__cause__ or current.__context__
    return None


def classify_failure(exc: BaseException, *, service_error: str) -> AwsFailure:
    """A failed AWS call as a reason token and a sentence without secrets; the service's own
    errors (neither throttling nor authorization) are ``service_error``."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")).strip()
        attempts = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        # A role of another account is assumed when its credentials are first needed, so
        # STS's refusal surfaces from whichever call needed them.
        detail = f"{exc.operation_name} failed{tries}: {code}: {message}".rstrip(": ")
        if exc.operation_name == "AssumeRole":
            return AwsFailure("assume_role_failed", detail)
        if code in THROTTLING_CODES:
            return AwsFailure("throttled", detail)
        if code in AUTH_CODES:
            return AwsFailure("auth_failed", detail)
        return AwsFailure(service_error, detail)
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return AwsFailure("timeout", f"timed out: {exc}")
    if isinstance(exc, EndpointConnectionError):
        return AwsFailure("unreachable", str(exc))
    if isinstance(exc, NoCredentialsError):
        return AwsFailure(
            "auth_failed",
            "no AWS credentials found (execution role in Lambda, the usual chain elsewhere)",
        )
    if isinstance(exc, NoRegionError):
        return AwsFailure("no_region", "no AWS region: set AWS_REGION (e.g. eu-west-1)")
    return AwsFailure("error", f"{type(exc).__name__}: {exc}")


class AwsSessions:
    """Thread-safe: the sources of different targets ask for clients concurrently. A boto3
    session is not safe to make clients from in several threads at once, so clients are made
    under a lock (they are then safe to share). Endpoint overrides (AWS_ENDPOINT_URL,
    AWS_ENDPOINT_URL_<SERVICE>: a stand-in outside Lambda) are botocore's own, read from the
    process environment, except where a caller passes one."""

    def __init__(self, default_region: str | None) -> None:
        self.default_region = default_region
        self._sessions: dict[str | None, boto3.session.Session] = {}
        self._shared: dict[tuple[str, str | None, str | None], Any] = {}
        self._lock = threading.Lock()
        self._client_lock = threading.Lock()

    def region(self, location: AwsLocation) -> str | None:
        return location.region or self.default_region

    def session(self, role_arn: str | None) -> boto3.session.Session:
        """The function's own credentials (None), or the role's, assumed and refreshed."""
        with self._lock:
            session = self._sessions.get(role_arn)
            if session is None:
                session = self._sessions[role_arn] = self._new_session(role_arn)
            return session

    def _new_session(self, role_arn: str | None) -> boto3.session.Session:
        import boto3
        import botocore.session
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            DeferredRefreshableCredentials,
        )

        if role_arn is None:
            # A session of its own: boto3's default session is not safe to share between threads.
            return boto3.session.Session()
        source = boto3.session.Session()
        base = botocore.session.Session()
        config = self.client_config(self.default_region, max_attempts=2)

        def sts_client(service: str, **kwargs: Any) -> Any:
            return source.client(
                service,  # type: ignore[call-overload]
                config=config,
                **{k: v for k, v in kwargs.items() if k != "config"},
            )

        fetcher = AssumeRoleCredentialFetcher(
            sts_client,
            source.get_credentials(),
            role_arn,
            extra_args={"RoleSessionName": ROLE_SESSION_NAME},
        )
        base._credentials = DeferredRefreshableCredentials(  # type: ignore[attr-defined]
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        return boto3.session.Session(botocore_session=base)

    @staticmethod
    def client_config(
        region: str | None,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = 3,
        retry_mode: str = "standard",
        max_pool_connections: int = 10,
    ) -> Any:
        """Every AWS client's configuration: bounded connect and read, botocore's retries
        (standard or adaptive back off on throttling; ``max_attempts`` counts the first try),
        and the connection pool (botocore's default is 10)."""
        from botocore.config import Config

        return Config(
            region_name=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={
                "mode": "adaptive" if retry_mode == "adaptive" else "standard",
                "total_max_attempts": max_attempts,
            },
            max_pool_connections=max_pool_connections,
        )

    def client(
        self,
        service: str,
        location: AwsLocation,
        config: Any = None,
        endpoint_url: str | None = None,
    ) -> Any:
        """A client of ``service`` for ``location`` (typed as Any: stubs differ per service)."""
        region = self.region(location)
        session = self.session(location.role_arn)
        with self._client_lock:
            return session.client(
                service,  # type: ignore[call-overload]
                region_name=region,
                config=config or self.client_config(region),
                endpoint_url=endpoint_url,
            )

    def shared_client(self, service: str, location: AwsLocation) -> Any:
        """One client of ``service`` per location for the function instance, with the default
        configuration: for calls every target makes alike (RDS auth tokens)."""
        key = (service, location.role_arn, self.region(location))
        with self._lock:
            client = self._shared.get(key)
        if client is None:
            client = self.client(service, location)
            with self._lock:
                client = self._shared.setdefault(key, client)
        return client
