"""The unit of an evaluation, as text: one definition for the SDK and the server, so that an exposure the
SDK logs and one the server records for the same context name the same unit."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_UNIT_LENGTH = 256
"""The longest unit accepted (the events endpoint refuses longer ones)."""


def unit_text(context: Mapping[str, Any], path: str) -> str | None:
    """The value at the dotted `path` in `context` as a unit: text as it is, booleans and finite numbers
    as JSON writes them; None when absent, empty, too long, containing NUL, or of another type."""
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        text = repr(value)
    else:
        return None
    return text if 0 < len(text) <= MAX_UNIT_LENGTH and "\x00" not in text else None
