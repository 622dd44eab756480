"""The public flagd evaluator conformance suite, run against our evaluator.

The suite lives in ../shared/conformance/flagd-testbed (or FLAGD_TESTBED_DIR). Under CI
(CI=true) a missing suite fails the run; elsewhere the tests skip with a message
naming the folder.
"""

from __future__ import annotations

import json
import os

import pytest

from flagd_sdk.evaluation import FlagSet, load_flag_set
from tests.sdk.evaluation.conformance import EXCLUDED_TAGS, TESTBED, Scenario, run, scenarios

_PRESENT = (TESTBED / "gherkin").is_dir() and (TESTBED / "flags" / "testkit-flags.json").is_file()
_MISSING = f"the flagd conformance suite is missing: expected it in {TESTBED}"
_IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

SCENARIOS = [s for s in scenarios() if not s.tags & EXCLUDED_TAGS] if _PRESENT else []


def test_conformance_suite_is_present() -> None:
    if not _PRESENT:
        if _IN_CI:
            pytest.fail(_MISSING)
        pytest.skip(_MISSING)
    assert len(SCENARIOS) > 100, f"only {len(SCENARIOS)} scenarios found in {TESTBED}"


@pytest.fixture(scope="module")
def testkit() -> FlagSet:
    if not _PRESENT:
        pytest.skip(_MISSING)
    document = json.loads((TESTBED / "flags" / "testkit-flags.json").read_text(encoding="utf-8"))
    # Leniently, as every flagd evaluator loads it: the file deliberately contains broken flags
    # whose run-time behaviour the scenarios specify (test_loader checks we report each one).
    return load_flag_set(document, strict=False)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_conformance(scenario: Scenario, testkit: FlagSet) -> None:
    run(scenario, testkit)
