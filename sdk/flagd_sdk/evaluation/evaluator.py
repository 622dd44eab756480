"""`Evaluator` holds the flag set in use and swaps in new ones only when they are valid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagd_sdk.evaluation.flag_set import FlagSet
from flagd_sdk.evaluation.loader import load_flag_set
from flagd_sdk.evaluation.types import FlagType, ResolutionDetails


class Evaluator:
    """Evaluates against the current flag set; a set that fails validation never replaces it."""

    def __init__(self, flag_set: FlagSet | None = None) -> None:
        self._flag_set = flag_set if flag_set is not None else load_flag_set({"flags": {}})

    @property
    def flag_set(self) -> FlagSet:
        return self._flag_set

    def update(self, document: Any, *, strict: bool = True) -> FlagSet:
        """Validate and compile `document`, then make it current.

        Raises FlagSetError (listing every problem) and keeps the current set when the
        document is invalid. Readers see either the old set or the new one, whole.
        """
        new_set = load_flag_set(document, strict=strict)
        self._flag_set = new_set  # a single reference assignment: atomic for concurrent readers
        return new_set

    def resolve(
        self, flag_type: FlagType, key: str, default: Any, context: Mapping[str, Any] | None = None
    ) -> ResolutionDetails:
        return self._flag_set.resolve(flag_type, key, default, context)
