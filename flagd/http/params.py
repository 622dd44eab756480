"""Query parameters, path identifiers and preconditions, parsed strictly in one place.

Everything taken from a URL is checked before it reaches a query: numbers are ASCII
digits within a range (`"²".isdigit()` is true in Python, `float()` reads other scripts' digits, and
PostgreSQL's bigint ends at 2**63 - 1), and text may not hold control characters (PostgreSQL refuses NUL,
and logs must not carry line breaks). A bad value is a 400 `invalid_parameter`
that names the parameter; a path identifier that no resource could have is a 404.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from flagd.errors import InvalidParameter, NotFound, PreconditionRequired
from flagd.identifiers import KEY_RULE, is_key

INT64_MAX = 2**63 - 1
MAX_TEXT_PARAM = 256
# A decimal number in ASCII (float() also reads "nan", "inf", "1_000", spaces and other scripts' digits).
_DECIMAL = re.compile(r"(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)


def shown(value: str) -> str:
    """A caller's value, quoted with every control character escaped and cut to a readable length."""
    text = value if len(value) <= 80 else value[:80] + "..."
    return repr(text)


def int_param(request: Request, name: str, *, low: int, high: int = INT64_MAX) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and low <= int(raw) <= high):
        raise InvalidParameter(f"{name} must be a whole number between {low} and {high}, got {shown(raw)}")
    return int(raw)


def float_param(request: Request, name: str, *, low: float, high: float) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = float(raw) if _DECIMAL.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise InvalidParameter(f"{name} must be a decimal number from {low:g} to {high:g}, got {shown(raw)}")
    return value


def bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise InvalidParameter(f"{name} must be true or false, got {shown(raw)}")
    return raw in ("true", "1")


def text_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if len(raw) > MAX_TEXT_PARAM or not raw.isprintable():
        raise InvalidParameter(
            f"{name} must be at most {MAX_TEXT_PARAM} printable characters (no control characters), "
            f"got {shown(raw)}"
        )
    return raw


def choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw is not None and raw not in choices:
        raise InvalidParameter(f"{name} must be one of {', '.join(choices)}, got {shown(raw)}")
    return raw


def path_key(request: Request, name: str, what: str) -> str:
    """A key from the path; one that no resource could have is simply not found."""
    key: str = request.path_params[name]
    if not is_key(key):
        raise NotFound(f"{what} {shown(key)} does not exist: keys {KEY_RULE}", code=f"{what}_not_found")
    return key


_VERSION_TAG = re.compile(r'\s*(?:W/)?"?([0-9]{1,18})"?\s*', re.ASCII)
_CONFIG_TAG = re.compile(r'\s*(?:W/)?"?cfg-([0-9]{1,18})"?\s*', re.ASCII)


def if_match(request: Request) -> int:
    """The version an update or delete of one resource expects (required)."""
    raw = request.headers.get("if-match")
    if raw is None:
        raise PreconditionRequired(
            "send If-Match with the version you are changing (the ETag from GET), so concurrent edits are not lost"
        )
    match = _VERSION_TAG.fullmatch(raw)
    if match is None:
        raise InvalidParameter(f'If-Match must be a version such as "3", got {shown(raw)}')
    return int(match[1])


def if_match_config(request: Request) -> int | None:
    """The config version a whole-set write expects (optional): If-Match: "cfg-N"."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    match = _CONFIG_TAG.fullmatch(raw)
    if match is None:
        raise InvalidParameter(
            f'If-Match must be the config ETag from GET /v1/admin/flag-set, such as "cfg-12", got {shown(raw)}'
        )
    return int(match[1])
