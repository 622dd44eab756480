"""Messages about a flag-set document describe what was given in words, never as a Python value.

Every field of flags, metrics, layers and experiments is given null, empty text, a list, an object, a
boolean, a YAML date and binary data in turn, through the validation `flagd apply` and
PUT /v1/admin/flag-set run (FlagService.apply, dry run); no message may show `None`, `True`, `b'...'`,
`{'a': ...}`, `[1, 'a']` or a Python type name.
"""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

import asyncpg
import pytest

from flagd.config.service import FlagService
from flagd.errors import FlagdError
from flagd.storage.pool import init_connection
from flagd_sdk.evaluation.problems import given

DOCUMENT: dict[str, Any] = {
    "flags": {
        "checkout": {
            "state": "ENABLED",
            "variants": {"off": False, "on": True},
            "defaultVariant": "off",
            "targeting": {"if": [{"==": [{"var": "country"}, "NL"]}, "on", "off"]},
            "metadata": {"team": "web"},
        }
    },
    "$evaluators": {"dutch": {"==": [{"var": "country"}, "NL"]}},
    "metadata": {"owner": "web"},
    "metrics": {
        "checkout-rate": {
            "name": "Checkout rate",
            "description": "Units that check out",
            "type": "conversion",
            "event": "checkout",
            "direction": "increase",
            "window_seconds": 86400,
        },
        "revenue": {
            "type": "sum",
            "event": "purchase",
            "direction": "increase",
            "winsorisation": {"percentile": 99},
        },
        "orders": {"type": "count", "event": "purchase", "direction": "increase"},
        "revenue-per-order": {
            "type": "ratio",
            "numerator": "revenue",
            "denominator": "orders",
            "direction": "increase",
        },
    },
    "layers": {"checkout": {"holdout_bp": 500, "salt": "checkout-layer"}},
    "experiments": {
        "one-page": {
            "name": "One page",
            "hypothesis": "One page lifts checkout",
            "flag": "checkout",
            "variants": {"off": 50, "on": 50},
            "allocation_bp": 5000,
            "eligibility": {"==": [{"var": "country"}, "NL"]},
            "unit": "targetingKey",
            "layer": "checkout",
            "salt": "one-page",
            "metrics": [
                {"metric": "checkout-rate", "role": "primary"},
                {"metric": "revenue-per-order", "role": "guardrail"},
            ],
            "alpha": 0.05,
            "expected_units": 10000,
            "mde": 0.05,
            "owner": "web",
            "tags": ["checkout"],
        }
    },
}

GIVEN: list[Any] = [None, "", [], {}, [1, "a"], {"a": None}, True, 1.5, date(2026, 1, 1), b"\x00x"]
PYTHON = re.compile(
    r"\bNone\b|\bTrue\b|\bFalse\b|\bb'|\bb\"|\{'|\['|\[\d|NoneType|\bdict\b|\bbytes\b|datetime"
    r"|\bstr\b|\bint\b|<class"
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every member and element of the document, containers included."""
    found = [path] if path else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found += _paths(value, (*path, key))
    return found


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


async def _messages(conn: asyncpg.Connection, document: Any) -> list[str]:
    try:
        await FlagService(conn, "test").apply(document, prune=True, dry_run=True)
    except FlagdError as exc:
        details = exc.details or []
        top = exc.message
        for detail in details:
            top = top.replace(str(detail.get("path", "")), "<path>")
        return [top, *(str(d.get("message", "")) for d in details), *(str(d.get("path")) for d in details)]
    return []


def _leaks(messages: list[str]) -> list[str]:
    # A path names an element as [0] and a member name that is not text as [true] or [2026-01-01].
    return [m for m in messages if PYTHON.search(re.sub(r"(?<=[\w\]])\[[^\]\s']*\]", "", m))]


@pytest.fixture
async def conn(conn: asyncpg.Connection) -> asyncpg.Connection:
    await init_connection(conn)  # the JSON codecs the server's connections have
    return conn


async def test_should_accept_the_unpoisoned_document(conn: asyncpg.Connection) -> None:
    assert await _messages(conn, DOCUMENT) == []


async def test_should_describe_every_wrong_value_of_every_field_in_words(conn: asyncpg.Connection) -> None:
    leaks, refused = [], 0
    for path in _paths(DOCUMENT):
        for value in GIVEN:
            messages = await _messages(conn, _with(path, value))
            refused += bool(messages)
            leaks += [f"{'.'.join(map(str, path))} = {value!r}: {m}" for m in _leaks(messages)]
    assert not leaks, "\n".join(leaks[:40])
    assert refused > 300  # most poisonings are refused: the test reached the validation


@pytest.mark.parametrize("key", [True, None, 1, date(2026, 1, 1)])
@pytest.mark.parametrize("section", ["flags", "metrics", "layers", "experiments", "$evaluators"])
async def test_should_name_a_key_that_is_not_text_in_words(
    conn: asyncpg.Connection, section: str, key: Any
) -> None:
    document = copy.deepcopy(DOCUMENT)
    document[section][key] = copy.deepcopy(next(iter(document[section].values())))
    messages = await _messages(conn, document)
    assert messages, "a key that is not text is refused"
    assert not _leaks(messages), messages


async def test_should_name_a_variant_key_that_is_not_text_in_words(conn: asyncpg.Connection) -> None:
    # YAML 1.1 reads an unquoted `on:` as true.
    for path in (("flags", "checkout", "variants"), ("experiments", "one-page", "variants")):
        document = copy.deepcopy(DOCUMENT)
        node: Any = document
        for key in path:
            node = node[key]
        node[True] = node.pop("on")
        messages = await _messages(conn, document)
        assert messages
        assert not _leaks(messages), messages


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "nothing"),
        ("", "empty text"),
        ({"a": 1}, "an object"),
        ([1], "a list"),
        (True, "true"),
        (12, "12"),
        (0.5, "0.5"),
        (float("nan"), "not a number"),
        (b"x", "binary data"),
        (date(2026, 1, 1), "a date"),
        ('say "hi"\x1b[2J', '"say \\"hi\\"\\x1b[2J"'),
        ("x" * 100, '"' + "x" * 60 + '"...'),
    ],
)
def test_should_describe_a_given_value_in_words(value: Any, words: str) -> None:
    assert given(value) == words
