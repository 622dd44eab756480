"""The vocabulary of evaluation results, as OpenFeature names it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

JsonValue: TypeAlias = Any
"""A value decoded from JSON: None, bool, int, float, str, list or dict."""

Compiled: TypeAlias = Callable[[Any], Any]
"""A compiled JsonLogic expression: data in, value out."""

MetadataValue: TypeAlias = bool | int | float | str
EMPTY_METADATA: Mapping[str, MetadataValue] = MappingProxyType({})


class Reason(StrEnum):
    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DEFAULT = "DEFAULT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


class ErrorCode(StrEnum):
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    PARSE_ERROR = "PARSE_ERROR"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    GENERAL = "GENERAL"
    PROVIDER_NOT_READY = "PROVIDER_NOT_READY"


class FlagType(StrEnum):
    """The type a caller asks for; decides which variant values are a match."""

    BOOLEAN = "boolean"
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    OBJECT = "object"
    ANY = "any"
    """Remote evaluation (OFREP), where the caller's type is checked by the caller: values as stored."""


class ResolutionDetails(NamedTuple):
    """The outcome of one evaluation. Never raised: errors are values with reason ERROR.

    A NamedTuple rather than the frozen dataclass the style guide prefers: it is as
    immutable (successful outcomes are cached and shared between callers), and it is
    built in half the time, which matters on the paths that must return the caller's
    default (disabled flags, no default variant, errors).
    """

    value: Any
    variant: str | None
    reason: Reason
    error_code: ErrorCode | None = None
    error_message: str | None = None
    flag_metadata: Mapping[str, MetadataValue] = EMPTY_METADATA
