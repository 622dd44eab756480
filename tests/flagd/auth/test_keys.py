from __future__ import annotations

import pytest

from flagd.auth import keys


def test_should_generate_keys_that_parse_and_match_their_stored_hash() -> None:
    new = keys.generate()
    presented = keys.parse(new.token)
    assert presented is not None
    assert presented.prefix == new.prefix
    assert keys.matches(presented, new.secret_hash)
    assert new.token not in new.secret_hash.hex()


def test_should_generate_distinct_keys() -> None:
    tokens = {keys.generate().token for _ in range(200)}
    assert len(tokens) == 200


def test_should_not_match_another_keys_hash() -> None:
    first, second = keys.generate(), keys.generate()
    presented = keys.parse(first.token)
    assert presented is not None
    assert not keys.matches(presented, second.secret_hash)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "flagd_",
        "flagd_abc_def",
        "Bearer flagd_0123456789_" + "a" * 43,
        "flagd_0123456789_" + "a" * 42,
        "flagd_XYZ3456789_" + "a" * 43,
    ],
)
def test_should_refuse_malformed_tokens(token: str) -> None:
    assert keys.parse(token) is None
