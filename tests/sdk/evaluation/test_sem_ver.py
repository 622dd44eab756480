from __future__ import annotations

from typing import Any

import pytest

from flagd_sdk.evaluation import FlagSetError, compile_rule
from flagd_sdk.evaluation.semver import Version, parse_version


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3", Version(1, 2, 3)),
        ("v1.2.3", Version(1, 2, 3)),
        ("V1.2.3", Version(1, 2, 3)),
        ("1.2", Version(1, 2, 0)),
        ("1", Version(1, 0, 0)),
        (1, Version(1, 0, 0)),
        (1.2, Version(1, 2, 0)),
        ("1.0.0-alpha.1", Version(1, 0, 0, ("alpha", 1))),
        ("1.0.0+build.5", Version(1, 0, 0)),
        ("1.0.0-rc.1+build", Version(1, 0, 0, ("rc", 1))),
    ],
)
def test_should_parse_versions_leniently_as_flagd_does(text: Any, expected: Version) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1.2.3.4", "01.2.3", "a.b.c", "1.0.0-", "1.0.0-01", "1..2", True, None, [1]]
)
def test_should_refuse_what_is_not_a_version(text: Any) -> None:
    assert parse_version(text) is None


def test_should_order_prereleases_as_semver_section_11_says() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    parsed = [parse_version(v) for v in ordered]
    keys = [v.key() for v in parsed if v is not None]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("left", "op", "right", "expected"),
    [
        ("1.0.0", "=", "1.0.0", True),
        ("1.0.0", "=", "1.0.0+other", True),
        ("1.0.0", "!=", "1.0.1", True),
        ("1.0.0", "<", "1.0.1", True),
        ("1.10.0", ">", "1.9.0", True),
        ("2.0.0-alpha", "<", "2.0.0", True),
        ("1.2.3", "<=", "1.2.3", True),
        ("1.2.3", ">=", "1.2.4", False),
        ("3.0.9", "~", "3.0.0", True),
        ("3.1.0", "~", "3.0.0", False),
        ("3.9.9", "^", "3.0.0", True),
        ("4.0.0", "^", "3.0.0", False),
        ("not-a-version", "=", "1.0.0", None),
        ("1.0.0", "===", "1.0.0", None),
    ],
)
def test_should_compare_versions(left: str, op: str, right: str, expected: bool | None) -> None:
    rule = compile_rule({"sem_ver": [{"var": "v"}, {"var": "op"}, right]})
    assert rule({"v": left, "op": op}) is expected


def test_should_reject_a_malformed_literal_operator_or_version() -> None:
    with pytest.raises(FlagSetError) as caught:
        compile_rule(
            {"and": [{"sem_ver": [{"var": "v"}, "=>", "1.0.0"]}, {"sem_ver": [{"var": "v"}, ">", "1.x"]}]}
        )
    assert [str(p) for p in caught.value.problems] == [
        'rule.and[0].sem_ver[1]: unknown sem_ver operator "=>"; use one of = != < <= > >= ~ ^',
        'rule.and[1].sem_ver[2]: "1.x" is not a semantic version',
    ]
