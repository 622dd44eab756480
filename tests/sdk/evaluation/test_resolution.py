"""How a flag resolves: values, variants, reasons, error codes, metadata."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from flagd_sdk.evaluation import ErrorCode, Evaluator, FlagSetError, FlagType, Reason, load_flag_set

DOCUMENT: dict[str, Any] = {
    "metadata": {"flagSetId": "shop", "team": "growth"},
    "flags": {
        "banner": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", None]},
            "metadata": {"team": "web", "owner": 7},
        },
        "limit": {
            "state": "ENABLED",
            "variants": {"low": 10, "high": 100, "half": 0.5},
            "defaultVariant": "low",
        },
        "ratio": {"state": "ENABLED", "variants": {"a": 0.25, "b": 1}, "defaultVariant": "b"},
        "layout": {
            "state": "ENABLED",
            "variants": {"grid": {"cols": 3}, "list": {"cols": 1}},
            "defaultVariant": "grid",
        },
        "off": {"state": "DISABLED", "variants": {"x": "x"}, "defaultVariant": "x"},
        "no-default": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": None},
        "chooses-dynamically": {
            "state": "ENABLED",
            "variants": {"a": "a", "b": "b"},
            "defaultVariant": "a",
            "targeting": {"var": "pick"},
        },
        "by-number": {
            "state": "ENABLED",
            "variants": {"1": "one", "2": "two"},
            "defaultVariant": "1",
            "targeting": {"+": [{"var": "n"}, 1]},
        },
        "by-bool": {
            "state": "ENABLED",
            "variants": {"true": "yes", "false": "no"},
            "defaultVariant": "false",
            "targeting": {"==": [{"var": "tier"}, "gold"]},
        },
    },
}


@pytest.fixture(scope="module")
def flags() -> Any:
    return load_flag_set(DOCUMENT)


def test_should_resolve_static_flags_with_reason_static(flags: Any) -> None:
    details = flags.resolve_integer("limit", 0)
    assert (details.value, details.variant, details.reason, details.error_code) == (
        10,
        "low",
        Reason.STATIC,
        None,
    )


def test_should_resolve_a_targeting_match(flags: Any) -> None:
    details = flags.resolve_boolean("banner", False, {"email": "kim@example.com"})
    assert (details.value, details.variant, details.reason) == (True, "on", Reason.TARGETING_MATCH)


def test_should_use_the_default_variant_when_targeting_gives_null(flags: Any) -> None:
    details = flags.resolve_boolean("banner", True, {"email": "kim@elsewhere.org"})
    assert (details.value, details.variant, details.reason) == (False, "off", Reason.DEFAULT)


def test_should_use_the_callers_default_when_there_is_no_default_variant(flags: Any) -> None:
    details = flags.resolve_string("no-default", "mine")
    assert (details.value, details.variant, details.reason) == ("mine", None, Reason.DEFAULT)


def test_should_return_the_callers_default_for_a_disabled_flag(flags: Any) -> None:
    details = flags.resolve_string("off", "mine")
    assert (details.value, details.variant, details.reason, details.error_code) == (
        "mine",
        None,
        Reason.DISABLED,
        None,
    )


def test_should_report_a_missing_flag(flags: Any) -> None:
    details = flags.resolve_boolean("nope", True)
    assert (details.value, details.reason, details.error_code) == (
        True,
        Reason.ERROR,
        ErrorCode.FLAG_NOT_FOUND,
    )
    assert details.error_message == 'flag "nope" is not in the flag set'


@pytest.mark.parametrize(
    ("flag_type", "key", "default"),
    [
        (FlagType.STRING, "banner", "x"),
        (FlagType.INTEGER, "banner", 1),
        (FlagType.BOOLEAN, "limit", True),
        (FlagType.OBJECT, "limit", {}),
        (FlagType.FLOAT, "layout", 1.0),
        (FlagType.STRING, "layout", "x"),
    ],
)
def test_should_report_a_type_mismatch_with_the_callers_default(
    flags: Any, flag_type: FlagType, key: str, default: Any
) -> None:
    details = flags.resolve(flag_type, key, default)
    assert (details.value, details.variant, details.reason, details.error_code) == (
        default,
        None,
        Reason.ERROR,
        ErrorCode.TYPE_MISMATCH,
    )
    assert f"cannot be resolved as {flag_type.value}" in (details.error_message or "")


def test_should_widen_integers_to_floats_but_not_narrow_floats(flags: Any) -> None:
    as_float = flags.resolve_float("ratio", 0.0)
    assert as_float.value == 1.0
    assert type(as_float.value) is float
    assert flags.resolve_integer("ratio", 0, {}).value == 1
    ratio_flags = load_flag_set(
        {"flags": {"r": {"state": "ENABLED", "variants": {"a": 0.25}, "defaultVariant": "a"}}}
    )
    assert ratio_flags.resolve_integer("r", 3).error_code == ErrorCode.TYPE_MISMATCH


def test_should_resolve_objects(flags: Any) -> None:
    assert flags.resolve_object("layout", {}).value == {"cols": 3}


def test_should_merge_flag_metadata_over_flag_set_metadata(flags: Any) -> None:
    assert dict(flags.resolve_boolean("banner", False).flag_metadata) == {
        "flagSetId": "shop",
        "team": "web",
        "owner": 7,
    }
    assert dict(flags.resolve_integer("limit", 0).flag_metadata) == {"flagSetId": "shop", "team": "growth"}


def test_should_name_variants_by_the_text_of_numbers_and_booleans(flags: Any) -> None:
    assert flags.resolve_string("by-number", "", {"n": 1}).value == "two"
    assert flags.resolve_string("by-bool", "", {"tier": "gold"}).value == "yes"
    assert flags.resolve_string("by-bool", "", {"tier": "tin"}).value == "no"


def test_should_report_a_targeting_result_that_names_no_variant(flags: Any) -> None:
    details = flags.resolve_string("chooses-dynamically", "mine", {"pick": "zzz"})
    assert (details.value, details.reason, details.error_code) == ("mine", Reason.ERROR, ErrorCode.GENERAL)
    assert 'targeting chose variant "zzz"' in (details.error_message or "")


class ExplodingMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def test_should_not_raise_when_the_context_misbehaves(flags: Any) -> None:
    inside = flags.resolve_boolean("banner", False, {"email": ExplodingMapping()})
    assert (inside.value, inside.reason) == (False, Reason.DEFAULT)
    nested = load_flag_set(
        {
            "flags": {
                "f": {
                    "state": "ENABLED",
                    "variants": {"a": "a"},
                    "defaultVariant": "a",
                    "targeting": {"var": "user.name"},
                }
            }
        }
    )
    broken = nested.resolve_string("f", "mine", {"user": ExplodingMapping()})
    assert (broken.value, broken.reason, broken.error_code) == ("mine", Reason.ERROR, ErrorCode.GENERAL)
    whole = flags.resolve_boolean("banner", False, ExplodingMapping())
    assert (whole.reason, whole.error_code) == (Reason.ERROR, ErrorCode.INVALID_CONTEXT)


@pytest.mark.parametrize("context", [{"targetingKey": 42}, ["not", "a", "mapping"]])
def test_should_report_an_invalid_context(flags: Any, context: Any) -> None:
    details = flags.resolve_boolean("banner", False, context)
    assert (details.value, details.reason, details.error_code) == (
        False,
        Reason.ERROR,
        ErrorCode.INVALID_CONTEXT,
    )


def test_should_share_success_details_between_evaluations(flags: Any) -> None:
    first = flags.resolve_boolean("banner", False, {"email": "a@example.com"})
    second = flags.resolve_boolean("banner", True, {"email": "b@example.com"})
    assert first is second


def test_should_keep_the_current_flag_set_when_an_update_is_invalid() -> None:
    evaluator = Evaluator()
    evaluator.update(DOCUMENT)
    with pytest.raises(FlagSetError):
        evaluator.update({"flags": {"banner": {"state": "ON", "variants": {}}}})
    assert evaluator.resolve(FlagType.INTEGER, "limit", 0).value == 10
    evaluator.update({"flags": {"limit": {"state": "ENABLED", "variants": {"x": 5}, "defaultVariant": "x"}}})
    assert evaluator.resolve(FlagType.INTEGER, "limit", 0).value == 5
