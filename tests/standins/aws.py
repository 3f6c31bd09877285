"""moto's AWS API server (CloudWatch, RDS, ElastiCache, Secrets Manager) on 127.0.0.1."""

from __future__ import annotations

import logging
from typing import Any, Self

from moto.server import ThreadedMotoServer

from tests.standins._process import StandinError, StartStop, http_ok, http_request, wait_until

DEFAULT_REGION = "us-east-1"


class MotoServer(StartStop):
    """An in-process moto server thread (no PID of its own; stop() shuts it down).

    Clients must be pointed at `endpoint_url`; `env()` gives the variables that do
    that for boto3 (AWS_ENDPOINT_URL) plus dummy credentials, without touching
    os.environ so one test cannot leak AWS settings into another.
    """

    def __init__(self, *, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self.host = "127.0.0.1"
        self.port = 0
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise StandinError("MotoServer has not been started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._server is not None:
            return self
        # Every request is logged at INFO by werkzeug otherwise.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        server.start()
        self._server = server
        self.port = server.get_host_and_port()[1]
        wait_until(
            lambda: http_ok(f"{self.endpoint_url}/moto-api/"),
            what=f"moto server on {self.endpoint_url}",
            timeout=15.0,
        )
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def reset(self) -> None:
        """Forget every resource and metric (moto's own reset API)."""
        http_request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")

    def env(self) -> dict[str, str]:
        """Environment for code under test: endpoint, region and throwaway credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            # Never read the developer's ~/.aws by accident.
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client bound to this server (typed as Any: stubs differ per service);
        ``kwargs`` may give another region or another account's (assumed) credentials."""
        import boto3  # deferred: ~125 ms import, only for tests that use AWS

        params: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "aws_session_token": "testing",
            **kwargs,
        }
        return boto3.client(service, **params)  # type: ignore[call-overload]

    def __repr__(self) -> str:
        return f"MotoServer(endpoint_url={self.endpoint_url if self._server else None!r})"
