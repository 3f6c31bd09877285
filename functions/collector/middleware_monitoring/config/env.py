"""Reading environment variables: every problem is recorded (named, with the shape
expected) instead of stopping at the first, and secret values are never echoed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

# Variables that hold a password: never echoed, and never given through EXTRA_SETTINGS (whose
# template parameter is shown in clear).
SECRET_VARIABLES: Final = ("PG_PWD", "PUSHGATEWAY_PASSWORD", "MONGO_INFO")

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FLAGS: Final = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def port_number(value: object) -> int | None:
    """A TCP port from a string or a JSON number (as users write them), or None.

    ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits,
    which int() then refuses (a crash instead of a configuration error). A JSON true is an
    int to Python, not a port."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        return None
    return int(text)


def value_kind(value: object, *, null: str = "null", mapping: str = "an object") -> str:
    """How a parsed JSON or YAML value is named in an error: its kind, never its content
    (which may be a secret)."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return mapping


class ConfigError(Exception):
    """The environment cannot be used; ``problems`` holds one line per bad variable."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "invalid configuration:\n" + "\n".join(f"  - {problem}" for problem in self.problems)
        )


class EnvReader:
    """Reads variables from a mapping and records problems instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str], secret_names: Iterable[str] = ()) -> None:
        self._environ = environ
        self._secret_names = frozenset(secret_names)
        self.problems: list[str] = []

    def has(self, name: str) -> bool:
        return self.text(name) is not None

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return default
        return value.strip()

    def aws_region(self) -> str | None:
        """Lambda always sets AWS_REGION; elsewhere boto3's chain (a profile) may supply it."""
        return self.text("AWS_REGION") or self.text("AWS_DEFAULT_REGION")

    def secret(self, name: str) -> str | None:
        """A password as given: blanks around it may be part of it."""
        value = self._environ.get(name)
        return value if value else None

    def http_url(
        self,
        name: str,
        login_hint: str = "PUSHGATEWAY_USERNAME / PUSHGATEWAY_PASSWORD for the Pushgateway",
    ) -> str | None:
        """An http(s) URL, parsed with urllib.parse. A URL may carry user:password@: never
        echo that part, and refuse it (urllib does not send it; it would take it for the
        host and quote it in its errors). Any ``@`` before the query counts as a login:
        in ``https://user:pa/ss@host`` the password holds a ``/``, so the parser sees host
        ``user`` and a path ``/ss@host`` that would carry the secret into error texts."""
        raw = self.text(name)
        if raw is None:
            return None
        parts = urlsplit(raw)
        before_query = raw.split("?", 1)[0].split("#", 1)[0]
        has_login = "@" in before_query
        shown = raw
        if has_login:
            scheme, separator, rest = before_query.partition("://")
            prefix = scheme + separator if separator else ""
            shown = prefix + "***@" + (rest or scheme).rpartition("@")[2]
        if parts.scheme not in ("http", "https"):
            self.problem(name, f"expected an http:// or https:// URL, got {shown!r}")
            return None
        if has_login:
            self.problem(
                name,
                f"expected a URL without user:password@ (got {shown!r}); give the login "
                f"separately ({login_hint})",
            )
            return None
        try:
            port_ok = parts.hostname is not None and (parts.port is None or parts.port > 0)
        except ValueError:  # a port that is not a number (or out of range)
            port_ok = False
        if not port_ok:
            self.problem(
                name, f"expected an http:// or https:// URL with a host[:port], got {raw!r}"
            )
            return None
        return raw

    def required(self, name: str, why: str) -> str:
        value = self.text(name)
        if value is None:
            self.problem(name, f"is required {why}")
            return ""
        return value

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{name}: {message}")

    def _shown(self, name: str, raw: str) -> str:
        return "(hidden)" if name in self._secret_names else repr(raw)

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if not minimum <= value <= maximum:
            self.problem(
                name,
                f"expected a whole number from {minimum} to {maximum}, "
                f"got {self._shown(name, raw)}",
            )
            return default
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not minimum <= value <= maximum:  # NaN fails both comparisons
            self.problem(
                name,
                f"expected a number from {minimum:g} to {maximum:g}, got {self._shown(name, raw)}",
            )
            return default
        return value

    def port(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        port = port_number(raw)
        if port is None:
            self.problem(
                name, f"expected a port number from 1 to 65535, got {self._shown(name, raw)}"
            )
            return default
        return port

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        value = FLAGS.get(raw.lower())
        if value is None:
            self.problem(name, f"expected true or false, got {self._shown(name, raw)}")
            return default
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        if raw not in allowed:
            self.problem(
                name,
                f"expected one of {', '.join(allowed)}, got {self._shown(name, raw)}",
            )
            return default
        return raw

    def json_value(self, name: str, example: str) -> Any:
        """Parsed JSON, or None when absent or malformed; the raw text is never echoed."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            self.problem(
                name,
                f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                f"expected e.g. {example}",
            )
            return None
