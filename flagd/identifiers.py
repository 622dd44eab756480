"""The one rule for keys of flags, evaluators and every other named resource."""

from __future__ import annotations

import re

# ASCII and matched in full: `$` would accept a trailing newline, which then breaks headers and logs.
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}", re.ASCII)
KEY_RULE = "start with a letter or digit and use only letters, digits, '.', '_', ':' and '-' (at most 256)"


def is_key(value: object) -> bool:
    return isinstance(value, str) and KEY_PATTERN.fullmatch(value) is not None
