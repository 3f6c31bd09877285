"""moto's RDS endpoint names (``*.rds.amazonaws.com``) resolved to this machine, so that a
discovered instance's SQL reaches a local PostgreSQL. Imports nothing but the standard
library: the benchmark's measured process uses it too."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

RDS_SUFFIX = ".rds.amazonaws.com"


@contextmanager
def rds_hosts_on_localhost() -> Iterator[None]:
    """RDS endpoint names (``*.rds.amazonaws.com``) resolve to 127.0.0.1 while it lasts:
    name resolution of AWS's endpoints is what cannot run here. Everything else resolves
    as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(RDS_SUFFIX):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real
