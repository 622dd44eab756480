"""What really arrives: the observed schema of each event name, accumulated in memory between flushes.

Bounded in time and memory: at most `sample_per_flush` events of one name are looked at between two
flushes (the shares are of those), at most `max_names` names and `max_properties` top-level properties
per name are held (more are dropped and counted in `dropped`), and at most MAX_EXAMPLES example values
per property and type, each short and never a long string or one that looks like a secret or an address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_EXAMPLES = 5
MAX_EXAMPLE_LENGTH = 24
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/=_\-.]{12,}", re.ASCII)
_JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    dict: "object",
    list: "array",
}


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "object")


def example(value: Any) -> tuple[bool, Any]:
    """(True, the value) when the value may be kept as an example; (False, None) when it may not: objects,
    lists, nulls, long strings, strings with '@' (addresses) and long runs of letters and digits mixed
    (tokens, keys, hashes)."""
    if isinstance(value, bool | int | float):
        return True, value
    if not isinstance(value, str) or len(value) > MAX_EXAMPLE_LENGTH or "@" in value:
        return False, None
    if _TOKEN_LIKE.fullmatch(value) and any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
        return False, None
    return True, value


@dataclass(slots=True)
class Seen:
    seen: int = 0
    first: datetime | None = None
    last: datetime | None = None
    examples: list[Any] = field(default_factory=list)

    def add(self, at: datetime, value: Any) -> None:
        self.seen += 1
        if self.first is None or at < self.first:
            self.first = at
        if self.last is None or at > self.last:
            self.last = at
        if len(self.examples) < MAX_EXAMPLES:
            keep, shown = example(value)
            if keep and shown not in self.examples:
                self.examples.append(shown)


@dataclass(slots=True)
class NameSeen:
    events: int = 0
    first: datetime | None = None
    last: datetime | None = None
    properties: dict[tuple[str, str], Seen] = field(default_factory=dict)
    """By (property, JSON type)."""


@dataclass(slots=True)
class Observations:
    sample_per_flush: int = 500
    max_names: int = 1_000
    max_properties: int = 64
    names: dict[str, NameSeen] = field(default_factory=dict)
    dropped: int = 0

    def observe(self, name: str, properties: Mapping[str, Any], at: datetime) -> None:
        entry = self.names.get(name)
        if entry is None:
            if len(self.names) >= self.max_names:
                self.dropped += 1
                return
            entry = self.names[name] = NameSeen()
        if entry.events >= self.sample_per_flush:
            return
        entry.events += 1
        if entry.first is None or at < entry.first:
            entry.first = at
        if entry.last is None or at > entry.last:
            entry.last = at
        seen = entry.properties
        for key, value in properties.items():
            slot = (key[:64], _JSON_TYPES.get(type(value), "object"))
            tally = seen.get(slot)
            if tally is None:
                if len(seen) >= self.max_properties:
                    self.dropped += 1
                    continue
                tally = seen[slot] = Seen()
            tally.add(at, value)

    def take(self) -> dict[str, NameSeen]:
        names, self.names = self.names, {}
        return names

    def give_back(self, names: Mapping[str, NameSeen]) -> None:
        """Observations a failed flush took, kept for the next (merged in, within the bounds)."""
        for name, entry in names.items():
            mine = self.names.get(name)
            if mine is None:
                if len(self.names) < self.max_names:
                    self.names[name] = entry
                continue
            mine.events += entry.events
            mine.first = (
                min(d for d in (mine.first, entry.first) if d is not None) if entry.first else mine.first
            )
            mine.last = max(d for d in (mine.last, entry.last) if d is not None) if entry.last else mine.last
            for slot, tally in entry.properties.items():
                if slot not in mine.properties and len(mine.properties) < self.max_properties:
                    mine.properties[slot] = tally
