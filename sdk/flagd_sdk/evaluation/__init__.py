"""The one flag evaluator shared by the SDK and the server: pure, standard library only.

    >>> from flagd_sdk.evaluation import load_flag_set
    >>> flags = load_flag_set({"flags": {"new-ui": {
    ...     "state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off",
    ...     "targeting": {"fractional": [["on", 50], ["off", 50]]}}}})
    >>> flags.resolve_boolean("new-ui", False, {"targetingKey": "user-1"}).reason
    <Reason.SPLIT: 'SPLIT'>

Definitions follow the flagd flag-definition format (flags, $evaluators, metadata);
targeting is JsonLogic plus flagd's fractional, sem_ver, starts_with and ends_with.
"""

from flagd_sdk.evaluation.evaluator import Evaluator
from flagd_sdk.evaluation.flag_set import FlagSet
from flagd_sdk.evaluation.loader import compile_rule, load_flag_set
from flagd_sdk.evaluation.problems import FlagSetError, Problem
from flagd_sdk.evaluation.types import ErrorCode, FlagType, Reason, ResolutionDetails

__all__ = [
    "ErrorCode",
    "Evaluator",
    "FlagSet",
    "FlagSetError",
    "FlagType",
    "Problem",
    "Reason",
    "ResolutionDetails",
    "compile_rule",
    "load_flag_set",
]
