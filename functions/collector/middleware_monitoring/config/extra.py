"""EXTRA_SETTINGS: any number of other variables carried in one, so every setting can be given
through a deployment template's single parameter (ExtraSettings) without editing the
template, including variables added after the template was written.

Two forms:

- ``KEY=VALUE`` pairs separated by ``;`` (or new lines): ``PG_COLLECTORS=server,locks;
  PUSHGATEWAY_RETRIES=3``. A value runs to the next ``;`` and may hold ``=`` and ``,``.
- A JSON object of strings, ``{"PG_COLLECTORS": "server,locks"}``, for values that hold ``;``.

Rules: a KEY is an environment variable's name (``A-Z``, digits, ``_``), given once. A
variable that is also set (non-empty) in the environment itself with another value is a
conflict, reported as a configuration error naming it: a template parameter (or Lambda)
already sets it, and one place must say it. A variable holding a password (PG_PWD,
PUSHGATEWAY_PASSWORD, MONGO_INFO) is refused: the parameter is shown in clear. An empty
variable in the environment (a template parameter left empty) is filled from EXTRA_SETTINGS.
Values are never echoed in errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from typing import Final

from .env import SECRET_VARIABLES

VARIABLE: Final = "EXTRA_SETTINGS"
_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_EXAMPLE: Final = "PG_COLLECTORS=server,locks;PUSHGATEWAY_RETRIES=3"


def parse_extra(raw: str) -> tuple[dict[str, str], list[str]]:
    """The pairs of an EXTRA_SETTINGS value, and what is wrong with it (one line each)."""
    text = raw.strip()
    if not text:
        return {}, []
    if text.startswith("{"):
        return _parse_json(text)
    pairs: dict[str, str] = {}
    problems: list[str] = []
    items = [item.strip() for item in re.split(r"[;\n]", text)]
    for position, item in enumerate(items, start=1):
        if not item:
            continue
        key, separator, value = item.partition("=")
        key = key.strip()
        if not separator or not _NAME.fullmatch(key):
            shown = repr(key) if _NAME.fullmatch(key) else "it"
            problems.append(
                f"{VARIABLE}: pair {position} is not KEY=VALUE ({shown} has "
                f"{'no =' if not separator else 'a key that is not a variable name'}); "
                f"expected pairs separated by ';', e.g. {_EXAMPLE}"
            )
            continue
        problems += _add(pairs, key, value.strip())
    return pairs, problems


def _parse_json(text: str) -> tuple[dict[str, str], list[str]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, [
            f"{VARIABLE}: is not valid JSON ({exc.msg} at column {exc.colno}); expected an "
            f'object of strings, e.g. {{"PG_COLLECTORS": "server,locks"}}, or {_EXAMPLE}'
        ]
    if not isinstance(value, dict):
        return {}, [f"{VARIABLE}: expected a JSON object of strings, got another JSON value"]
    pairs: dict[str, str] = {}
    problems: list[str] = []
    for key, item in value.items():
        if not _NAME.fullmatch(key):
            problems.append(f"{VARIABLE}: key {key!r} is not a variable name (A-Z, 0-9, _)")
        elif isinstance(item, bool) or not isinstance(item, (str, int, float)):
            problems.append(f"{VARIABLE}: {key}: expected a string or a number")
        else:
            problems += _add(pairs, key, str(item))
    return pairs, problems


def _add(pairs: dict[str, str], key: str, value: str) -> list[str]:
    if key == VARIABLE:
        return [f"{VARIABLE}: cannot set {VARIABLE} itself"]
    if key in SECRET_VARIABLES:
        return [
            f"{VARIABLE}: {key} holds a password and {VARIABLE} is shown in clear (the "
            "ExtraSettings parameter); give it through its own parameter (NoEcho) or a secret ARN"
        ]
    if key in pairs:
        return [f"{VARIABLE}: {key} is given twice; give it once"]
    pairs[key] = value
    return []


def with_extra(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``environ`` with EXTRA_SETTINGS's variables added, and the problems found."""
    merged = dict(environ)
    pairs, problems = parse_extra(environ.get(VARIABLE, ""))
    for key, value in pairs.items():
        own = (environ.get(key) or "").strip()
        if own and own != value.strip():
            problems.append(
                f"{VARIABLE}: {key} is also set as its own variable, to another value (a "
                "template parameter or Lambda sets it); set it in one place: its own "
                "parameter when it has one"
            )
            continue
        merged[key] = value
    return merged, problems


def apply_extra(environ: MutableMapping[str, str]) -> None:
    """Put EXTRA_SETTINGS's variables into the process environment at start-up, so what
    reads it directly (boto3, the log level) sees them too. Problems are left for the
    configuration's check (``load_settings``), which reports them all."""
    merged, _ = with_extra(environ)
    for key, value in merged.items():
        if environ.get(key) != value:
            environ[key] = value
