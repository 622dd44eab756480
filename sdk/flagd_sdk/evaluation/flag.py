"""One compiled flag and how it resolves.

Resolution never raises. Successful outcomes depend only on (requested type, variant,
reason), so they are built once and then shared: an evaluation that succeeds
allocates nothing but what its targeting rule computes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from flagd_sdk.evaluation.coercion import to_string
from flagd_sdk.evaluation.compiler import ResultFn, TargetingParseError
from flagd_sdk.evaluation.limits import EvaluationLimitExceeded
from flagd_sdk.evaluation.types import (
    ErrorCode,
    FlagType,
    JsonValue,
    MetadataValue,
    Reason,
    ResolutionDetails,
)

logger = logging.getLogger(__name__)
_MISMATCH: Final = object()


def _converted(flag_type: FlagType, value: Any) -> Any:
    """The value as the requested type, or _MISMATCH."""
    kind = type(value)
    if flag_type is FlagType.BOOLEAN:
        return value if kind is bool else _MISMATCH
    if flag_type is FlagType.STRING:
        return value if kind is str else _MISMATCH
    if flag_type is FlagType.INTEGER:
        return value if kind is int else _MISMATCH
    if flag_type is FlagType.FLOAT:
        return float(value) if kind is int or kind is float else _MISMATCH
    if flag_type is FlagType.ANY:
        return value
    return value if kind is dict or kind is list else _MISMATCH


class Flag:
    """A flag ready to evaluate. Built by the loader; `broken` flags resolve with PARSE_ERROR."""

    __slots__ = (
        "_cache",
        "_names",
        "broken",
        "default_variant",
        "enabled",
        "key",
        "metadata",
        "rule",
        "variants",
    )

    def __init__(
        self,
        *,
        key: str,
        enabled: bool,
        variants: Mapping[str, JsonValue],
        default_variant: str | None,
        rule: ResultFn | None,
        metadata: Mapping[str, MetadataValue],
        broken: str | None = None,
    ) -> None:
        self.key = key
        self.enabled = enabled
        self.variants = variants
        self._names = frozenset(variants)
        self.default_variant = default_variant
        self.rule = rule
        self.metadata = metadata
        self.broken = broken
        self._cache: dict[tuple[FlagType, str, Reason], ResolutionDetails | None] = {}

    def resolve(self, flag_type: FlagType, default: Any, context: Mapping[str, Any]) -> ResolutionDetails:
        if self.broken is not None:
            return self._error(default, ErrorCode.PARSE_ERROR, self.broken)
        if not self.enabled:
            return ResolutionDetails(default, None, Reason.DISABLED, flag_metadata=self.metadata)
        rule = self.rule
        if rule is None:
            name, reason = self.default_variant, Reason.STATIC
        else:
            try:
                result, split = rule(context)
            except TargetingParseError as exc:
                return self._error(default, ErrorCode.PARSE_ERROR, f'flag "{self.key}": {exc}')
            except EvaluationLimitExceeded as exc:
                return self._error(default, ErrorCode.GENERAL, f'flag "{self.key}": {exc}')
            except Exception:  # a rule must never take the application down
                # The exception's own text is for the log, not for callers.
                logger.debug("flag %r: targeting raised", self.key, exc_info=True)
                return self._error(
                    default,
                    ErrorCode.GENERAL,
                    f'flag "{self.key}": its targeting could not be evaluated for this context',
                )
            if result is None:
                name, reason = self.default_variant, Reason.DEFAULT
            else:
                name = result if type(result) is str else to_string(result)  # true -> "true", 2 -> "2"
                reason = Reason.SPLIT if split else Reason.TARGETING_MATCH
                if name not in self._names:
                    return self._error(
                        default,
                        ErrorCode.GENERAL,
                        f'flag "{self.key}": targeting chose variant "{name}", which the flag does not define',
                    )
        if name is None:
            return ResolutionDetails(default, None, Reason.DEFAULT, flag_metadata=self.metadata)
        try:
            details = self._cache[(flag_type, name, reason)]
        except KeyError:
            details = self._build(flag_type, name, reason)
        if details is None:
            found = type(self.variants[name]).__name__
            return self._error(
                default,
                ErrorCode.TYPE_MISMATCH,
                f'flag "{self.key}" has {found} values; it cannot be resolved as {flag_type.value}',
            )
        return details

    def _build(self, flag_type: FlagType, name: str, reason: Reason) -> ResolutionDetails | None:
        """The shared details for this outcome; None when the variant's value is not of that type."""
        value = _converted(flag_type, self.variants[name])
        details = (
            None
            if value is _MISMATCH
            else ResolutionDetails(value, name, reason, flag_metadata=self.metadata)
        )
        self._cache[(flag_type, name, reason)] = details
        return details

    def _error(self, default: Any, code: ErrorCode, message: str) -> ResolutionDetails:
        return ResolutionDetails(default, None, Reason.ERROR, code, message, self.metadata)
