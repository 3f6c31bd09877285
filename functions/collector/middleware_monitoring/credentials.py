"""Database logins read from AWS Secrets Manager (PG_SECRET_ARN, MONGO_SECRET_ARN, an
ElastiCache node's secret_arn).

Secrets are read through Powertools Parameters, whose cache lives as long as the function
instance: a warm instance reads each secret at most once per ``max_age_seconds``. Sources ask
at every (re)connect, so a rotated password is used once the cached copy expires, or at once
when the database refuses the old one (``refresh=True`` bypasses the cache).

A secret that cannot be read is that target's failure (``SourceFailure``), never the pass's.
Every value read is registered with the log scrubber before anything else happens with it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote_plus

from .aws import AwsSessions, aws_error_code
from .config import DocDBSettings, PostgresSettings, SecretStoreSettings
from .config.elasticache import RedisSettings
from .config.env import port_number
from .config.postgres import ENV_ORIGIN
from .logs import scrubber
from .model import SourceFailure
from .postgres.connection import LoginProvider, PgLogin

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

UNAVAILABLE: Final = "secret_unavailable"
INVALID: Final = "secret_invalid"

# Secrets Manager answers in milliseconds: the AWS clients' connect and read bounds
# (aws.py) and two attempts bound a pass that cannot reach it at all.
MAX_ATTEMPTS: Final = 2


class SecretStore:
    """One per function instance, shared by every source (thread-safe: sources of different
    targets run concurrently)."""

    def __init__(
        self, settings: SecretStoreSettings, provider: SecretsProvider | None = None
    ) -> None:
        self._settings = settings
        # A given provider (tests) serves every region.
        self._given = provider
        # One per region: a secret is read in the region its ARN names.
        self._providers: dict[str | None, SecretsProvider] = {}
        self._lock = threading.Lock()

    def _get_provider(self, secret_id: str) -> SecretsProvider:
        if self._given is not None:
            return self._given
        region = secret_region(secret_id) or self._settings.region
        with self._lock:
            provider = self._providers.get(region)
            if provider is None:
                # Deferred: boto3 costs ~125 ms of cold start, paid only when a secret is used.
                import boto3
                from aws_lambda_powertools.utilities.parameters import SecretsProvider

                config = AwsSessions.client_config(region, max_attempts=MAX_ATTEMPTS)
                client = boto3.session.Session().client("secretsmanager", config=config)
                provider = self._providers[region] = SecretsProvider(boto3_client=client)
            return provider

    def read_json(
        self, secret_id: str, variable: str, *, refresh: bool = False, shape: str | None = None
    ) -> dict[str, Any]:
        """The secret's JSON object. ``variable`` names where the id came from, for messages;
        ``shape`` is the shape expected (default: the RDS one).

        Raises ``SourceFailure`` (``secret_unavailable`` or ``secret_invalid``)."""
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        where = f"{variable} ({secret_id})"
        try:
            provider = self._get_provider(secret_id)
            raw = provider.get(
                secret_id, max_age=self._settings.max_age_seconds, force_fetch=refresh
            )
        except GetParameterError as exc:
            code = aws_error_code(exc)
            if code is None and "region" in str(exc).lower():
                detail = "no AWS region: set AWS_REGION (e.g. eu-west-1)"
            else:
                detail = code or type(exc.__cause__ or exc).__name__
            raise SourceFailure(UNAVAILABLE, f"cannot read {where}: {detail}") from None
        except Exception as exc:  # botocore's own errors (no region, no credentials...)
            raise SourceFailure(
                UNAVAILABLE, f"cannot read {where}: {type(exc).__name__}: {exc}"
            ) from None
        expected = f"the RDS shape {RDS_SHAPE}" if shape is None else f"the shape {shape}"
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        scrubber.add([text])
        try:
            value = json.loads(text)
        except ValueError:
            # The message could quote the text: say only what shape was expected.
            raise SourceFailure(INVALID, f"{where} is not JSON; expected {expected}") from None
        if not isinstance(value, dict):
            raise SourceFailure(INVALID, f"{where} is not a JSON object; expected {expected}")
        password = value.get("password")
        if isinstance(password, str):
            # A DocumentDB URI carries the escaped form; a driver's message may quote either.
            scrubber.add([password, quote_plus(password)])
        return value


def secret_region(secret_id: str) -> str | None:
    """The region a secret's ARN names (``arn:aws:secretsmanager:REGION:ACCOUNT:secret:...``);
    None for a plain name, which is read in the function's region."""
    parts = secret_id.split(":", 6)
    if len(parts) == 7 and parts[0] == "arn" and parts[2] == "secretsmanager" and parts[3]:
        return parts[3]
    return None


RDS_SHAPE: Final = (
    '{"username": "...", "password": "...", "host": "...", "port": 5432, "dbname": "..."} '
    "(host, port and dbname optional)"
)


def login_fields(secret: dict[str, Any], where: str) -> tuple[str, str]:
    """``username`` and ``password`` of an RDS-shaped secret."""
    username, password = secret.get("username"), secret.get("password")
    missing = [
        name
        for name, value in (("username", username), ("password", password))
        if not isinstance(value, str) or not value
    ]
    if missing:
        raise SourceFailure(
            INVALID,
            f"{where} has no {' or '.join(missing)} string; expected the RDS shape {RDS_SHAPE}",
        )
    assert isinstance(username, str) and isinstance(password, str)
    return username, password


def port_field(secret: dict[str, Any], where: str) -> int | None:
    """The optional ``port`` (a number or a numeric string in the wild)."""
    port = secret.get("port")
    if port is None or port == "":
        return None
    number = port_number(port)
    if number is None:
        raise SourceFailure(INVALID, f"{where} has a port that is not a port number")
    return number


def secret_setting(origin: str, env_origin: str, env_variable: str) -> str:
    """How messages name where a target's secret ARN was set: the environment variable for
    the environment's target, the ``secret_arn`` of its entry for a file's or discovery's."""
    return env_variable if origin.startswith(env_origin) else f"the secret_arn of {origin}"


def pg_secret_login(settings: PostgresSettings, store: SecretStore) -> LoginProvider:
    """PostgreSQL's login from PG_SECRET_ARN: the password from the secret; user, host,
    port and dbname from the secret where the PG_* variable is not set (an explicit variable
    always wins, never silently ignored)."""
    secret_id = settings.secret_arn
    if secret_id is None:
        raise ValueError("PostgresSettings.secret_arn is not set")
    variable = secret_setting(settings.origin, ENV_ORIGIN, "PG_SECRET_ARN")
    where = f"{variable} ({secret_id})"

    def login(refresh: bool) -> PgLogin:
        secret = store.read_json(secret_id, variable, refresh=refresh)
        secret_user, password = login_fields(secret, where)
        user = settings.user or secret_user
        host, port, database = settings.host, settings.port, settings.database
        if "host" in settings.from_secret:
            secret_host = secret.get("host")
            if not isinstance(secret_host, str) or not secret_host:
                raise SourceFailure(
                    INVALID, f"{where} has no host and PG_DATABASE is not set; set one of them"
                )
            host = secret_host
        if "port" in settings.from_secret:
            port = port_field(secret, where) or port
        if "dbname" in settings.from_secret:
            dbname = secret.get("dbname")
            if isinstance(dbname, str) and dbname:
                database = dbname
        return PgLogin(host, port, user, password, database)

    return login


def docdb_secret_login(
    settings: DocDBSettings, store: SecretStore
) -> Callable[[bool], tuple[str, str]]:
    """DocumentDB's (user, password) from MONGO_SECRET_ARN."""
    secret_id = settings.secret_arn
    if secret_id is None:
        raise ValueError("DocDBSettings.secret_arn is not set")

    variable = secret_setting(settings.origin, "MONGO_INFO", "MONGO_SECRET_ARN")

    def login(refresh: bool) -> tuple[str, str]:
        secret = store.read_json(secret_id, variable, refresh=refresh)
        return login_fields(secret, f"{variable} ({secret_id})")

    return login


# RDS IAM auth tokens are valid for 15 minutes; a new one is made well before that, at the
# next connect after this age (a kept connection stays logged in past the token's expiry).
TOKEN_REUSE_SECONDS: Final = 600.0


def iam_token_login(
    settings: PostgresSettings,
    sessions: AwsSessions,
    *,
    clock: Callable[[], float] = time.time,
) -> LoginProvider:
    """PostgreSQL's login with an RDS IAM auth token as the password (SPEC 9): signed for
    host, port, user and region with the function's role (or ``settings.aws.role_arn``),
    locally, without a network call. ``refresh=True`` (the server refused the last one)
    always makes a new one."""
    lock = threading.Lock()
    made: list[tuple[float, str]] = []

    def token() -> str:
        from botocore.exceptions import BotoCoreError

        region = sessions.region(settings.aws)
        if region is None:
            raise SourceFailure(
                "no_region", "no AWS region for the IAM auth token: set AWS_REGION or region"
            )
        try:
            return str(
                sessions.shared_client("rds", settings.aws).generate_db_auth_token(
                    DBHostname=settings.host,
                    Port=settings.port,
                    DBUsername=settings.user,
                    Region=region,
                )
            )
        except BotoCoreError as exc:
            raise SourceFailure(
                "auth_failed", f"cannot make an IAM auth token: {type(exc).__name__}: {exc}"
            ) from None

    def login(refresh: bool) -> PgLogin:
        with lock:
            now = clock()
            if refresh or not made or now - made[-1][0] >= TOKEN_REUSE_SECONDS:
                fresh = token()
                # The token in use until now may still show in a connection's error; the one
                # before it has expired (15 minutes, renewed every TOKEN_REUSE_SECONDS).
                expired = made[:-1]
                made[:] = [*made[-1:], (now, fresh)]
                scrubber.add([fresh], forget=[old for _, old in expired])
            return PgLogin(
                settings.host, settings.port, settings.user, made[-1][1], settings.database
            )

    return login


REDIS_SHAPE: Final = (
    '{"password": "..."} for an AUTH token, or {"username": "...", "password": "..."} '
    "for an RBAC user"
)


def redis_secret_login(
    settings: RedisSettings, store: SecretStore
) -> Callable[[bool], tuple[str | None, str]]:
    """An ElastiCache node's (user, password) from its ``secret_arn``: an AUTH token alone
    (user None, the ``default`` user) or an RBAC user. A ``user`` in the settings wins over
    the secret's ``username``."""
    secret_id = settings.secret_arn
    if secret_id is None:
        raise ValueError("RedisSettings.secret_arn is not set")
    variable = f"the secret_arn of {settings.where}"

    def login(refresh: bool) -> tuple[str | None, str]:
        secret = store.read_json(secret_id, variable, refresh=refresh, shape=REDIS_SHAPE)
        password, username = secret.get("password"), secret.get("username")
        if not isinstance(password, str) or not password:
            raise SourceFailure(
                INVALID, f"{variable} ({secret_id}) has no password string; expected {REDIS_SHAPE}"
            )
        if username is not None and not isinstance(username, str):
            raise SourceFailure(
                INVALID, f"{variable} ({secret_id}) has a username that is not a string"
            )
        return settings.user or username or None, password

    return login
