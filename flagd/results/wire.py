"""The results' typed values as the JSON API writes them: the one place results become JSON.

Field names go from snake_case to camelCase (the casing of the whole JSON API), dataclasses become
objects, tuples arrays; a number that is not finite (an unbounded end of an interval) becomes null,
since JSON has none. Fields a class lists in OMIT_NONE are left out when None (a decision names a
variant only when it ships or stops one). Dates and times are written by orjson (RFC 3339).
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from functools import cache
from typing import Any

import orjson

from flagd.results.preparing import Progress


@cache
def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def to_wire(value: Any) -> Any:
    """JSON-ready values (dicts, lists, numbers, strings, dates) from results' typed values."""
    if is_dataclass(value) and not isinstance(value, type):
        omit: frozenset[str] = getattr(value, "OMIT_NONE", frozenset())
        out = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if item is None and f.name in omit:
                continue
            out[camel(f.name)] = to_wire(item)
        return out
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    return value


def dumps(value: Any) -> bytes:
    """The JSON body of a typed value."""
    return orjson.dumps(to_wire(value))


def preparing(progress: Progress) -> bytes:
    """The answer of a results request whose roll-ups are still being built (flagd.results.preparing)."""
    return orjson.dumps(
        {
            "experiment": progress.experiment,
            "phase": progress.phase,
            "state": "preparing",
            "preparing": {
                "percentDone": progress.percent_done,
                "rollupsBuilt": progress.built,
                "rollups": progress.rollups,
            },
            "message": progress.message,
        }
    )
