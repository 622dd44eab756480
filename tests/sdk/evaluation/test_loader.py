"""Validation on load: every problem found at once, each located by its JSON path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flagd_sdk.evaluation import ErrorCode, FlagSetError, Reason, load_flag_set
from tests.sdk.evaluation.conformance import TESTBED, require_testbed


def problems_of(document: Any) -> list[str]:
    with pytest.raises(FlagSetError) as caught:
        load_flag_set(document)
    return [str(p) for p in caught.value.problems]


def flag(**overrides: Any) -> dict[str, Any]:
    return {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off", **overrides}


def test_should_report_five_mistakes_as_five_located_messages() -> None:
    document = {
        "flags": {
            "checkout": flag(targeting={"if": [{"var": "beta"}, {"fractionl": [["on", 50], ["off", 50]]}]}),
            "search": flag(defaultVariant="maybe"),
            "theme": {"state": "ENABLED", "variants": {"dark": "dark", "light": 1}, "defaultVariant": "dark"},
            "rollout": flag(targeting={"fractional": [["on", 12.5], ["off", 87]]}),
        },
        "$evaluators": {"is_admin": {"in": [{"var": "email"}, {"$ref": "admins"}]}},
    }
    assert problems_of(document) == [
        '$evaluators.is_admin.in[1]: $ref "admins" names no evaluator in $evaluators',
        'flags.checkout.targeting.if[1]: unknown operator "fractionl"',
        'flags.search.defaultVariant: "maybe" is not one of the variants (on, off)',
        'flags.theme.variants.light: is a number but "dark" is a string; all variants of a flag share one type',
        "flags.rollout.targeting.fractional[0][1]: weight must be a whole number, got 12.5",
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], ['a flag set must be a JSON object with a "flags" member']),
        ({}, ['flags: is missing; a flag set needs a "flags" object (it may be empty)']),
        ({"flags": 3}, ["flags: must be an object mapping flag keys to flag definitions"]),
        (
            {"flags": {"a": 3}},
            [
                "flags.a: a flag must be an object with state and variants",
                'flags.a.state: must be "ENABLED" or "DISABLED"; it is missing',
                "flags.a.variants: must be a non-empty object mapping variant names to values",
            ],
        ),
        ({"flags": {"a": flag(state="ON")}}, ['flags.a.state: must be "ENABLED" or "DISABLED"; got "ON"']),
        (
            {"flags": {"a": flag(variants={})}},
            ["flags.a.variants: must be a non-empty object mapping variant names to values"],
        ),
        (
            {"flags": {"a": flag(variants={"x": None}, defaultVariant=None)}},
            ["flags.a.variants.x: a variant is a boolean, string, number or object; got nothing"],
        ),
        (
            {"flags": {"a": flag(variants={"x": [1]}, defaultVariant=None)}},
            ["flags.a.variants.x: a variant is a boolean, string, number or object; got a list"],
        ),
        (
            {"flags": {"a": flag(defaultVariant=3)}},
            ["flags.a.defaultVariant: must be a variant name or null; got 3"],
        ),
        (
            {"flags": {"a": flag(targeting="on")}},
            ["flags.a.targeting: must be a JsonLogic rule (an object), or {} for none"],
        ),
        (
            {"flags": {"a": flag(targeting={"if": [True, "yes", "off"]})}},
            ['flags.a.targeting.if[1]: "yes" is not a variant of this flag (variants: off, on)'],
        ),
        (
            {"flags": {"a": flag(metadata={"owner": {"team": "x"}})}},
            ["flags.a.metadata.owner: must be a string, number or boolean; got an object"],
        ),
        (
            {"flags": {"a": flag(defaultVarient="on")}},
            [
                "flags.a.defaultVarient: unknown member; a flag has defaultVariant, metadata, state, targeting, variants"
            ],
        ),
        ({"flags": {}, "metadata": [1]}, ["metadata: must be an object of string, number or boolean values"]),
        (
            {"flags": {}, "$evaluators": {"x": 1}},
            ["$evaluators.x: an evaluator must be a JsonLogic rule (an object)"],
        ),
        (
            {
                "flags": {"a": flag(targeting={"$ref": "loop"})},
                "$evaluators": {"loop": {"!": {"$ref": "loop"}}},
            },
            ['$evaluators.loop["!"]: $ref cycle: loop -> loop'],
        ),
        (
            {"flags": {}, "$evaluators": {"a": {"!": {"$ref": "b"}}, "b": {"!!": {"$ref": "a"}}}},
            ['$evaluators.b["!!"]: $ref cycle: a -> b -> a', '$evaluators.a["!"]: $ref cycle: b -> a -> b'],
        ),
        (
            "{not json",
            [
                "the flag set is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
            ],
        ),
        (
            {"flags": [{"key": "a", **flag()}, {"key": "a", **flag()}]},
            ['flags[1].key: flag "a" is defined more than once'],
        ),
        ({"flags": [flag()]}, ['flags[0]: a flag in the array form needs a non-empty "key"']),
    ],
)
def test_should_locate_each_kind_of_problem(document: Any, expected: list[str]) -> None:
    assert problems_of(document) == expected


def test_should_accept_the_array_form_and_tolerate_flagd_sync_members() -> None:
    flags = load_flag_set({"flags": [{"key": "a", "source": "file.json", **flag()}]})
    assert flags.resolve_boolean("a", True).value is False


def test_should_accept_empty_targeting_and_empty_default_variant_as_none() -> None:
    flags = load_flag_set({"flags": {"a": flag(targeting={}, defaultVariant="")}})
    details = flags.resolve_boolean("a", True)
    assert (details.value, details.reason) == (True, Reason.DEFAULT)


def test_should_load_a_broken_flag_leniently_as_a_parse_error_and_keep_the_others() -> None:
    flags = load_flag_set({"flags": {"bad": flag(defaultVariant="maybe"), "good": flag()}}, strict=False)
    bad = flags.resolve_boolean("bad", True)
    assert (bad.value, bad.reason, bad.error_code) == (True, Reason.ERROR, ErrorCode.PARSE_ERROR)
    assert "flags.bad.defaultVariant" in (bad.error_message or "")
    assert flags.resolve_boolean("good", True).value is False
    assert [p.path for p in flags.problems] == ["flags.bad.defaultVariant"]


def test_should_report_the_conformance_files_deliberate_mistakes_when_strict() -> None:
    require_testbed()
    path = TESTBED / "flags" / "testkit-flags.json"
    with pytest.raises(FlagSetError) as caught:
        load_flag_set(json.loads(path.read_text(encoding="utf-8")))
    assert sorted(p.path.split(".")[1] for p in caught.value.problems) == [
        "ends-with-wrong-args-flag",
        "fractional-negative-weight-flag",
        "fractional-zero-weights-flag",
        "ref-to-nonexistent-evaluator-flag",
        "semver-invalid-operator-flag",
        "semver-wrong-args-flag",
        "starts-with-wrong-args-flag",
    ]


@pytest.mark.parametrize("state", [{"a": 1}, ["ENABLED"], 1, True])
def test_should_report_a_state_of_the_wrong_type_instead_of_failing(state: Any) -> None:
    # Found by schemathesis: an object as the state made the loader raise TypeError (unhashable).
    assert any(p.startswith("flags.f.state") for p in problems_of({"flags": {"f": flag(state=state)}}))
