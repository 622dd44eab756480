"""The public flagd evaluator conformance suite, run against our evaluator.

The suite lives in ../shared/conformance/flagd-testbed (or FLAGD_TESTBED_DIR). Under CI
(CI=true) a missing suite fails the run; elsewhere the tests skip with a message
naming the folder.
"""

from __future__ import annotations

import json

import pytest

from flagd_sdk.evaluation import FlagSet, load_flag_set
from tests.sdk.evaluation.conformance import (
    EXCLUDED_TAGS,
    PRESENT,
    TESTBED,
    Scenario,
    require_testbed,
    run,
    scenarios,
)

SCENARIOS = [s for s in scenarios() if not s.tags & EXCLUDED_TAGS] if PRESENT else []


def test_conformance_suite_is_present() -> None:
    require_testbed()
    assert len(SCENARIOS) > 100, f"only {len(SCENARIOS)} scenarios found in {TESTBED}"


@pytest.fixture(scope="module")
def testkit() -> FlagSet:
    require_testbed()
    document = json.loads((TESTBED / "flags" / "testkit-flags.json").read_text(encoding="utf-8"))
    # Leniently, as every flagd evaluator loads it: the file deliberately contains broken flags
    # whose run-time behaviour the scenarios specify (test_loader checks we report each one).
    return load_flag_set(document, strict=False)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_conformance(scenario: Scenario, testkit: FlagSet) -> None:
    run(scenario, testkit)
