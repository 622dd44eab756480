"""The metric definitions docs/experiments.md shows are read as flagd reads them, without a problem.

YAML blocks are shown, never run (tests/docs/markdown.py); a block that defines metrics, whole (`metrics:`) or
as bare entries, must still be a definition flagd accepts, so a renamed member or a bound cannot leave the
document behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flagd.experiments.model import METRIC_TYPES
from flagd.experiments.reading import read_metrics
from flagd_sdk.evaluation import Problem
from tests.docs.markdown import blocks

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "experiments.md"


def metric_documents() -> list[Any]:
    found = []
    for block in blocks(DOCUMENT):
        if block.lang != "yaml":
            continue
        loaded = yaml.safe_load(block.text)
        if isinstance(loaded, dict) and isinstance(loaded.get("metrics"), dict):
            found.append(pytest.param({"metrics": loaded["metrics"]}, id=f"line {block.line}"))
        elif (
            isinstance(loaded, dict)
            and loaded
            and all(isinstance(v, dict) and v.get("type") in METRIC_TYPES for v in loaded.values())
        ):
            found.append(pytest.param({"metrics": loaded}, id=f"line {block.line}"))
    return found


def test_should_find_the_metric_blocks_of_the_document() -> None:
    assert len(metric_documents()) >= 4


@pytest.mark.parametrize("document", metric_documents())
def test_should_read_every_metric_the_document_shows(document: dict[str, Any]) -> None:
    problems: list[Problem] = []
    metrics = read_metrics(document, problems)
    assert problems == []
    assert set(metrics) == set(document["metrics"])
