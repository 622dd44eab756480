"""Our step code for the OpenFeature flagd evaluator conformance suite (flagd-testbed).

The Gherkin files are parsed with the official Cucumber parser and compiled to
pickles (one per scenario and example row, carrying the example's tags); each pickle
runs through the step definitions below against our evaluator.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from gherkin.parser import Parser
from gherkin.pickles.compiler import Compiler

from flagd_sdk.evaluation import FlagSet, FlagType, ResolutionDetails

REPO_ROOT = Path(__file__).resolve().parents[3]
TESTBED = Path(
    os.environ.get("FLAGD_TESTBED_DIR", REPO_ROOT.parent / "shared" / "conformance" / "flagd-testbed")
)
PRESENT = (TESTBED / "gherkin").is_dir() and (TESTBED / "flags" / "testkit-flags.json").is_file()
MISSING = f"the flagd conformance suite is missing: expected it in {TESTBED}"


def require_testbed() -> None:
    """Fail under CI (CI=true) when the suite is missing; elsewhere skip, naming the folder."""
    if PRESENT:
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(MISSING)
    pytest.skip(MISSING)


# Other hashing generations of `fractional`, which this evaluator deliberately does not implement.
EXCLUDED_TAGS = frozenset({"@fractional-v1", "@fractional-v3"})

_FLAG_TYPES = {
    "Boolean": FlagType.BOOLEAN,
    "String": FlagType.STRING,
    "Integer": FlagType.INTEGER,
    "Float": FlagType.FLOAT,
    "Object": FlagType.OBJECT,
}


@dataclass(frozen=True)
class Scenario:
    feature: str
    line: int
    name: str
    tags: frozenset[str]
    steps: tuple[dict[str, Any], ...]

    @property
    def id(self) -> str:
        return f"{self.feature}:{self.line}:{self.name}"


def scenarios() -> Iterator[Scenario]:
    for feature in sorted((TESTBED / "gherkin").glob("*.feature")):
        document: Any = {**Parser().parse(feature.read_text(encoding="utf-8")), "uri": feature.name}
        for pickle in Compiler().compile(document):
            yield Scenario(
                feature=feature.stem,
                line=pickle["location"]["line"],
                name=pickle["name"],
                tags=frozenset(tag["name"] for tag in pickle["tags"]),
                steps=tuple(cast(dict[str, Any], step) for step in pickle["steps"]),
            )


def typed(type_name: str, text: str) -> Any:
    """A value written in a feature file, read as the named type."""
    if type_name == "Boolean":
        return {"true": True, "false": False}[text]
    if type_name == "Integer":
        return int(text)
    if type_name == "Float":
        return float(text)
    if type_name == "Object":
        return json.loads(text.replace('\\"', '"'))
    return text


@dataclass
class World:
    flag_set: FlagSet | None = None
    type_name: str = ""
    key: str = ""
    default: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    result: ResolutionDetails | None = None

    def details(self) -> ResolutionDetails:
        assert self.result is not None, "no evaluation happened before the assertion"
        return self.result


StepFn = Callable[[World, re.Match[str], dict[str, Any]], None]
_STEPS: list[tuple[re.Pattern[str], StepFn]] = []


def step(pattern: str) -> Callable[[StepFn], StepFn]:
    def register(fn: StepFn) -> StepFn:
        _STEPS.append((re.compile(f"^{pattern}$"), fn))
        return fn

    return register


def run(scenario: Scenario, flag_set: FlagSet) -> None:
    world = World()
    world.flag_set = flag_set
    for pickle_step in scenario.steps:
        text = pickle_step["text"]
        for pattern, fn in _STEPS:
            match = pattern.match(text)
            if match:
                fn(world, match, pickle_step)
                break
        else:
            raise AssertionError(f"no step definition matches: {text!r}")


@step(r"an evaluator")
def _an_evaluator(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    assert world.flag_set is not None


@step(r'a (\w+)-flag with key "([^"]+)" and a fallback value "(.*)"')
def _a_flag(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    world.type_name, world.key = match[1], match[2]
    world.default = typed(match[1], match[3])


@step(r'a context containing a targeting key with value "(.*)"')
def _targeting_key(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    world.context["targetingKey"] = match[1]


@step(r'a context containing a key "([^"]+)", with type "(\w+)" and with value "(.*)"')
def _context_key(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    world.context[match[1]] = typed(match[2], match[3])


@step(
    r'a context containing a nested property with outer key "([^"]+)" and inner key "([^"]+)", with value "(.*)"'
)
def _nested_key(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    world.context.setdefault(match[1], {})[match[2]] = match[3]


@step(r"the flag was evaluated with details")
def _evaluate(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    assert world.flag_set is not None
    world.result = world.flag_set.resolve(
        _FLAG_TYPES[world.type_name], world.key, world.default, world.context
    )


@step(r'the resolved details value should be "(.*)"')
def _value(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    expected = typed(world.type_name, match[1])
    details = world.details()
    assert details.value == expected, details
    assert type(details.value) is type(expected), details


@step(r'the reason should be "(\w+)"')
def _reason(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    assert world.details().reason == match[1], world.details()


@step(r'the error-code should be "(\w+)"')
def _error_code(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    assert world.details().error_code == match[1], world.details()


@step(r"the resolved metadata should contain")
def _metadata_contains(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    header, *rows = [[cell["value"] for cell in row["cells"]] for row in raw["argument"]["dataTable"]["rows"]]
    assert header == ["key", "metadata_type", "value"]
    metadata = world.details().flag_metadata
    for key, type_name, text in rows:
        assert key in metadata, f"metadata lacks {key!r}: {dict(metadata)}"
        assert metadata[key] == typed(type_name, text)
        assert type(metadata[key]) is type(typed(type_name, text))


@step(r"the resolved metadata is empty")
def _metadata_empty(world: World, match: re.Match[str], raw: dict[str, Any]) -> None:
    assert dict(world.details().flag_metadata) == {}
