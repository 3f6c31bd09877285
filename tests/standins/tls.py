"""Throwaway certificates made with openssl at test time: a CA, a server certificate it
signs, and an unrelated CA (the wrong bundle). No real AWS bundle is ever needed here."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.standins._process import StandinError


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA that signed the server certificate
    other_ca: Path  # an unrelated CA: verifying with it must fail
    server_cert: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise StandinError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", key.name, "-out", cert.name,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return key, cert


def make_tls_files(directory: Path, names: str = "IP:127.0.0.1,DNS:localhost") -> TlsFiles:
    """A throwaway CA, a server certificate it signs for ``names`` (subjectAltName entries),
    and a second CA that signs nothing (the wrong bundle)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _make_ca(directory, "test-ca")
    _, other_ca = _make_ca(directory, "other-ca")
    (directory / "san.ext").write_text(
        f"subjectAltName={names}\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", ca_key.name,
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return TlsFiles(ca, other_ca, directory / "server.pem", directory / "server.key")


def postgres_tls_settings(files: TlsFiles, directory: Path) -> dict[str, str]:
    """PostgreSQL server settings for TLS with ``files``' server certificate, copied into
    ``directory`` (made here, readable by all): the server runs as the postgres user, which
    must read the certificate and own the key (it refuses a key others can read)."""
    directory.mkdir()
    directory.chmod(0o755)
    cert, key = directory / "server.pem", directory / "server.key"
    shutil.copy(files.server_cert, cert)
    shutil.copy(files.server_key, key)
    key.chmod(0o600)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (cert, key):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return {"ssl": "on", "ssl_cert_file": str(cert), "ssl_key_file": str(key)}
