"""`flagd apply`'s plan as a person reads it: one line per change, naming what changed in it.

    + flag new-checkout
    ~ flag button-color: defaultVariant blue → green
    ~ experiment one-page-checkout: variants classic 50/one-page 50 → classic 30/one-page 70
    - flag old
    = nothing to change

A change inside a large value names the paths that changed, not the whole value, and long
values are cut with "…", so a line stays short whatever the definitions hold. Everything
shown is escaped (flagd.text): a definition may hold control characters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flagd.config.plan import Change, same_json
from flagd.text import escape

VALUE_WIDTH = 40
"""The most characters of one value shown before it is cut with "…"."""
PATHS_SHOWN = 4
"""The most changed paths named on one line; the rest are counted."""
FLAT_MEMBERS = 8
"""A mapping of at most this many plain values is shown whole (`classic 50/one-page 50`)."""

_SIGNS = {"create": "+", "update": "~", "delete": "-"}
_MISSING = object()


def render(changes: tuple[Change, ...]) -> list[str]:
    """The plan's lines; `= nothing to change` when it has none."""
    return [line(change) for change in changes] or ["= nothing to change"]


def line(change: Change) -> str:
    name = "flag-set metadata" if change.entity == "flag_set_metadata" else f"{change.entity} {change.key}"
    head = f"{_SIGNS[change.action]} {escape(name)}"
    if change.action != "update":
        return head
    paths = list(_changed("", change.before, change.after))
    shown = "; ".join(
        f"{escape(_cut(path))} {before} → {after}" if path else f"{before} → {after}"
        for path, before, after in paths[:PATHS_SHOWN]
    )
    more = f"; and {len(paths) - PATHS_SHOWN} more" if len(paths) > PATHS_SHOWN else ""
    return f"{head}: {shown}{more}" if paths else head


def _changed(path: str, before: Any, after: Any) -> Iterator[tuple[str, str, str]]:
    """(path, before, after) for each place the two values differ, as short texts."""
    if before is not _MISSING and after is not _MISSING and same_json(before, after):
        return
    # A small mapping of plain values (an experiment's weights) reads best whole; others by member.
    whole = bool(path) and _flat(before) and _flat(after)
    if isinstance(before, dict) and isinstance(after, dict) and not whole:
        for key in [*before, *(k for k in after if k not in before)]:
            member = f"{path}.{key}" if path else str(key)
            yield from _changed(member, before.get(key, _MISSING), after.get(key, _MISSING))
        return
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from _changed(f"{path}[{index}]", old, new)
        return
    yield path, _shown(before), _shown(after)


def _flat(value: Any) -> bool:
    """A non-empty mapping of a few plain values."""
    return (
        isinstance(value, dict)
        and 0 < len(value) <= FLAT_MEMBERS
        and all(not isinstance(v, (dict, list)) for v in value.values())
    )


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    if _flat(value):
        text = "/".join(f"{key} {_scalar(member)}" for key, member in value.items())
    else:
        text = _scalar(value)
    return escape(_cut(text))


def _cut(text: str) -> str:
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _scalar(value: Any) -> str:
    """A string as it is (the line is not JSON) unless empty or padded, anything else as JSON (`true`, `[1, 2]`)."""
    if isinstance(value, str) and value and value.strip() == value:
        return value
    return json.dumps(value, ensure_ascii=False)
