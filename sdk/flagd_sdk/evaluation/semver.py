"""Semantic versions for the `sem_ver` operator (https://semver.org, section 11 for precedence).

Lenient where flagd is lenient: a leading `v`/`V` is dropped, partial versions are
padded (`1` -> `1.0.0`, `1.2` -> `1.2.0`), numbers are read as their decimal text, and
build metadata is ignored. `~` matches the same major.minor, `^` the same major.

A string longer than MAX_VERSION_LENGTH is not a version: real versions are short, and
the bound keeps parsing (and the parse cache) cheap whatever a context holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flagd_sdk.evaluation.coercion import to_string

_CORE = re.compile(r"(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:\.(0|[1-9][0-9]*))?", re.ASCII)
_IDENTIFIER = re.compile(r"[0-9A-Za-z-]+", re.ASCII)
MAX_VERSION_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A version without pre-release ranks above any pre-release of it (semver 11.3);
        # numeric identifiers rank below alphanumeric ones (semver 11.4.3).
        pre = tuple((0, p) if isinstance(p, int) else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)


def parse_version(value: Any) -> Version | None:
    """The version `value` denotes, or None when it is not one."""
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return None
    text = to_string(value)
    if len(text) > MAX_VERSION_LENGTH:
        return None
    text = text.strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    text = text.split("+", 1)[0]
    core, _, pre = text.partition("-")
    match = _CORE.fullmatch(core)
    if match is None:
        return None
    prerelease: tuple[int | str, ...] = ()
    if pre or text.endswith("-"):
        parts = pre.split(".")
        if not all(_IDENTIFIER.fullmatch(p) for p in parts):
            return None
        if any(p.isascii() and p.isdigit() and len(p) > 1 and p[0] == "0" for p in parts):
            return None
        prerelease = tuple(int(p) if p.isascii() and p.isdigit() else p for p in parts)
    major, minor, patch = (int(g) if g is not None else 0 for g in match.groups())
    return Version(major, minor, patch, prerelease)


def _same_minor(a: Version, b: Version) -> bool:
    return (a.major, a.minor) == (b.major, b.minor)


COMPARATORS: dict[str, Callable[[Version, Version], bool]] = {
    "=": lambda a, b: a.key() == b.key(),
    "!=": lambda a, b: a.key() != b.key(),
    "<": lambda a, b: a.key() < b.key(),
    "<=": lambda a, b: a.key() <= b.key(),
    ">": lambda a, b: a.key() > b.key(),
    ">=": lambda a, b: a.key() >= b.key(),
    "~": _same_minor,
    "^": lambda a, b: a.major == b.major,
}
