"""Problems found in a flag set, each located by a JSON path such as `flags.checkout.targeting.if[1]`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

MAX_SHOWN_CHARS = 60
"""How much of a given text a message quotes."""


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FlagSetError(ValueError):
    """A flag set failed validation; `problems` lists every problem found, in document order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the flag set has {count} problem{'s' if count != 1 else ''}:\n{lines}")


def child(path: str, key: Any) -> str:
    """The path of a member (`a.b`) or an element (`a[0]`) of the node at `path`; a member name that is not
    text (YAML reads `on:` as true, `2026-01-01:` as a date) in words, as `a[true]`."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    if not isinstance(key, str):
        shown = "null" if key is None else key.isoformat() if isinstance(key, date) else given(key)
        return f"{path}[{shown}]"
    segment = key if _is_plain(key) else f'["{key}"]'
    if not path:
        return segment
    return f"{path}{segment}" if segment.startswith("[") else f"{path}.{segment}"


def _is_plain(key: str) -> bool:
    return bool(key) and all(c.isalnum() or c in "_-$" for c in key)


def given(value: Any) -> str:
    """What was given, in words, for a message that says what is wrong: never a Python repr.

    None -> nothing        {} -> an object        [] -> a list       True -> true
    12 -> 12               "on" -> "on" (quoted, escaped, cut to MAX_SHOWN_CHARS)
    "" -> empty text       b"x" -> binary data    a YAML date -> a date
    """
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a number of more than 30 digits"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "not a number" if math.isnan(value) else "infinity"
    if isinstance(value, str):
        return quoted(value) if value else "empty text"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bytes | bytearray | memoryview):
        return "binary data"
    if isinstance(value, date):
        return "a date"
    return "a value of another kind"


def quoted(text: str) -> str:
    """`text` in double quotes, with quotes, backslashes and invisible characters escaped, cut short."""
    cut = text[:MAX_SHOWN_CHARS]
    if not cut.isprintable() or '"' in cut or "\\" in cut:
        cut = "".join(_escaped(ch) for ch in cut)
    return f'"{cut}"' + ("..." if len(text) > MAX_SHOWN_CHARS else "")


def _escaped(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    if ch.isprintable():
        return ch
    return ch.encode("unicode_escape").decode("ascii")
