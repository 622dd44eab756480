from __future__ import annotations

from typing import Any

import pytest

from flagd_sdk.evaluation import compile_rule


@pytest.mark.parametrize(
    ("op", "subject", "affix", "expected"),
    [
        ("starts_with", "abcdef", "abc", True),
        ("starts_with", "abcdef", "def", False),
        ("ends_with", "abcdef", "def", True),
        ("ends_with", "abcdef", "abc", False),
        ("starts_with", "", "", True),
        ("starts_with", 123, "1", None),
        ("ends_with", "abc", None, None),
        ("ends_with", ["c"], "c", None),
    ],
)
def test_should_test_prefixes_and_suffixes_of_strings_only(
    op: str, subject: Any, affix: Any, expected: Any
) -> None:
    rule = compile_rule({op: [{"var": "s"}, {"var": "a"}]})
    assert rule({"s": subject, "a": affix}) is expected


def test_should_inject_the_flag_key_and_timestamp() -> None:
    key = compile_rule({"var": "$flagd.flagKey"}, flag_key="checkout")
    stamp = compile_rule({"var": "$flagd.timestamp"}, flag_key="checkout")
    whole = compile_rule({"var": "$flagd"}, flag_key="checkout")
    # A caller's own "$flagd" must not shadow what the evaluator injects.
    data = {"$flagd": {"flagKey": "spoofed"}}
    assert key(data) == "checkout"
    assert isinstance(stamp(data), int)
    assert stamp(data) > 1_700_000_000
    assert whole(data)["flagKey"] == "checkout"
