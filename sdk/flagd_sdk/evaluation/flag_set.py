"""A loaded, compiled flag set and its typed resolvers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagd_sdk.evaluation.flag import Flag
from flagd_sdk.evaluation.problems import Problem
from flagd_sdk.evaluation.types import (
    EMPTY_METADATA,
    ErrorCode,
    FlagType,
    JsonValue,
    MetadataValue,
    Reason,
    ResolutionDetails,
)

_EMPTY_CONTEXT: Mapping[str, Any] = {}


class FlagSet:
    """Immutable once built (by `load_flag_set`): safe to share between threads."""

    __slots__ = ("document", "flags", "metadata", "problems")

    def __init__(
        self,
        *,
        flags: Mapping[str, Flag],
        metadata: Mapping[str, MetadataValue],
        problems: tuple[Problem, ...],
        document: JsonValue,
    ) -> None:
        self.flags = flags
        self.metadata = metadata
        self.problems = problems
        self.document = document

    def resolve(
        self, flag_type: FlagType, key: str, default: Any, context: Mapping[str, Any] | None = None
    ) -> ResolutionDetails:
        flag = self.flags.get(key)
        if flag is None:
            return ResolutionDetails(
                default,
                None,
                Reason.ERROR,
                ErrorCode.FLAG_NOT_FOUND,
                f'flag "{key}" is not in the flag set',
                EMPTY_METADATA,
            )
        if context is None:
            context = _EMPTY_CONTEXT
        elif type(context) is not dict:
            supplied: Any = context  # typed as a Mapping, but callers are not always typed
            if not isinstance(supplied, Mapping):
                return _invalid_context(flag, default, "the evaluation context must be a mapping")
            try:
                context = dict(context)
            except Exception as exc:  # a caller's mapping type must not take the application down
                return _invalid_context(flag, default, f"the evaluation context could not be read: {exc!r}")
        targeting_key = context.get("targetingKey")
        if targeting_key is not None and type(targeting_key) is not str:
            return _invalid_context(flag, default, "targetingKey must be a string")
        return flag.resolve(flag_type, default, context)

    def resolve_boolean(
        self, key: str, default: bool, context: Mapping[str, Any] | None = None
    ) -> ResolutionDetails:
        return self.resolve(FlagType.BOOLEAN, key, default, context)

    def resolve_string(
        self, key: str, default: str, context: Mapping[str, Any] | None = None
    ) -> ResolutionDetails:
        return self.resolve(FlagType.STRING, key, default, context)

    def resolve_integer(
        self, key: str, default: int, context: Mapping[str, Any] | None = None
    ) -> ResolutionDetails:
        return self.resolve(FlagType.INTEGER, key, default, context)

    def resolve_float(
        self, key: str, default: float, context: Mapping[str, Any] | None = None
    ) -> ResolutionDetails:
        return self.resolve(FlagType.FLOAT, key, default, context)

    def resolve_object(
        self, key: str, default: JsonValue, context: Mapping[str, Any] | None = None
    ) -> ResolutionDetails:
        return self.resolve(FlagType.OBJECT, key, default, context)


def _invalid_context(flag: Flag, default: Any, message: str) -> ResolutionDetails:
    return ResolutionDetails(default, None, Reason.ERROR, ErrorCode.INVALID_CONTEXT, message, flag.metadata)
