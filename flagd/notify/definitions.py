"""A webhook as its owner writes it, checked once at the boundary, pure.

The API and the CLI both build a `WebhookFields` from what they were given; every problem is located by
its member's name, so a refused write says what to fix and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flagd.notify.outbox import KINDS
from flagd_sdk.evaluation import Problem
from flagd_sdk.evaluation.problems import given

MAX_NAME = 256
MAX_URL = 2048
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}", re.ASCII)
CREATE_REQUIRED = ("name", "url", "kinds")
CREATE_OPTIONAL = ("secretEnv", "slack", "enabled")
UPDATE_OPTIONAL = ("name", "url", "kinds", "secretEnv", "slack", "enabled", "rotateSecret")


@dataclass(frozen=True, slots=True)
class WebhookFields:
    """The members a create or update names (None: not named; an update leaves those as they are)."""

    name: str | None = None
    url: str | None = None
    kinds: tuple[str, ...] | None = None
    secret_env: str | None = None
    slack: bool | None = None
    enabled: bool | None = None
    rotate_secret: bool = False


def read_fields(body: Mapping[str, Any]) -> tuple[WebhookFields, list[Problem]]:
    """The fields of a create or update body (its members already checked by name) and their problems."""
    problems: list[Problem] = []
    fields = WebhookFields(
        name=_name(body.get("name"), problems) if "name" in body else None,
        url=_url(body.get("url"), problems) if "url" in body else None,
        kinds=_kinds(body.get("kinds"), problems) if "kinds" in body else None,
        secret_env=_env(body.get("secretEnv"), problems) if "secretEnv" in body else None,
        slack=_flag(body, "slack", problems),
        enabled=_flag(body, "enabled", problems),
        rotate_secret=bool(_flag(body, "rotateSecret", problems)),
    )
    if fields.secret_env is not None and fields.rotate_secret:
        problems.append(Problem("rotateSecret", "give either secretEnv or rotateSecret, not both"))
    return fields, problems


def _name(value: Any, problems: list[Problem]) -> str | None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME or not value.isprintable():
        problems.append(Problem("name", f"must be 1 to {MAX_NAME} printable characters; got {given(value)}"))
        return None
    return value


def _url(value: Any, problems: list[Problem]) -> str | None:
    reason = _url_problem(value)
    if reason is not None:
        problems.append(Problem("url", f"{reason}; got {given(value)}"))
        return None
    url: str = value
    return url


def _url_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.isascii() or not value.isprintable() or " " in value:
        return "must be an http or https URL in ASCII, without spaces"
    if len(value) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        return "must be a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (sign with the webhook's secret instead)"
    return None


def _kinds(value: Any, problems: list[Problem]) -> tuple[str, ...] | None:
    known = ", ".join(sorted(KINDS))
    if not isinstance(value, list) or not value or len(value) > len(KINDS):
        problems.append(Problem("kinds", f"must be a non-empty list of notification kinds ({known})"))
        return None
    unknown = [kind for kind in value if not isinstance(kind, str) or kind not in KINDS]
    if unknown:
        problems.append(
            Problem("kinds", f"{given(unknown[0])} is not a notification kind; the kinds are {known}")
        )
        return None
    return tuple(sorted(set(value)))


def _env(value: Any, problems: list[Problem]) -> str | None:
    if not isinstance(value, str) or ENV_NAME.fullmatch(value) is None:
        problems.append(
            Problem(
                "secretEnv",
                "must name an environment variable (capital letters, digits and _, at most 128); "
                f"got {given(value)}",
            )
        )
        return None
    return value


def _flag(body: Mapping[str, Any], name: str, problems: list[Problem]) -> bool | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, bool):
        problems.append(Problem(name, f"must be true or false; got {given(value)}"))
        return None
    return value
