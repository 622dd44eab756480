"""The generated documents match the code they are generated from."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from flagd import reference
from flagd.routes.openapi import document
from flagd.settings import Settings
from flagd.settings_meanings import MEANINGS

ROOT = Path(__file__).resolve().parents[2]


def test_generated_documents_are_current() -> None:
    assert reference.stale() == [], "run: python -m flagd.reference --write"


def test_every_setting_has_a_meaning_and_every_meaning_a_setting() -> None:
    assert {f.name for f in fields(Settings)} == set(MEANINGS)


def test_every_variable_the_settings_read_is_documented() -> None:
    read = set(
        re.findall(r'"((?:FLAGD_[A-Z_]+)|DATABASE_URL)"', (ROOT / "flagd" / "settings.py").read_text())
    )
    documented = set(
        re.findall(r"^\| `([A-Z_]+)` \|", (ROOT / "docs" / "configuration.md").read_text(), re.M)
    )
    assert read == documented


def test_every_endpoint_is_in_the_api_document() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for path, item in document()["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "delete"):
                assert f"`{method.upper()} {path}`" in text
