"""What applying a flags file would change: a pure diff between the stored set and a document."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from flagd.config.audit import Action, Entity
from flagd.config.repository import StoredConfig


@dataclass(frozen=True, slots=True)
class Change:
    entity: Entity
    key: str
    action: Action
    before: Any
    after: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "key": self.key,
            "action": self.action,
            "before": self.before,
            "after": self.after,
        }

    def render(self) -> str:
        """A readable diff of this change, for `flagd apply --dry-run`."""
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        name = "flag-set metadata" if self.entity == "flag_set_metadata" else f"{self.entity} {self.key}"
        lines = [f"{sign} {name}"]
        before = _pretty(self.before).splitlines() if self.before is not None else []
        after = _pretty(self.after).splitlines() if self.after is not None else []
        lines.extend(
            f"    {line}" for line in difflib.unified_diff(before, after, "stored", "file", lineterm="", n=2)
        )
        return "\n".join(lines)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON documents: member order does not matter, but 1 and 1.0 differ."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    candidate: dict[str, Any]
    """The whole flag set as it will be once the changes are made."""
    candidate_config: StoredConfig | None = None

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0}
        for change in self.changes:
            counts[change.action] += 1
        return counts


SECTIONS: tuple[tuple[str, Entity], ...] = (
    ("metrics", "metric"),
    ("layers", "layer"),
    ("experiments", "experiment"),
    ("events", "event"),
)
"""Top-level document members beside the flags, and the audit entity of their entries."""


def plan(
    current: StoredConfig,
    flags: dict[str, Any],
    evaluators: dict[str, Any],
    metadata: dict[str, Any] | None,
    *,
    prune: bool,
    sections: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """The changes that make the stored set equal to the document.

    `sections` holds the metrics, layers and experiments the document defines; a section the
    document leaves out is left alone, even with prune (a flags-only file never deletes experiments).
    """
    changes: list[Change] = []
    changes += _diff("flag", current.flags, flags, prune)
    changes += _diff("evaluator", current.evaluators, evaluators, prune)
    merged_sections = {}
    for section, entity in SECTIONS:
        stored = getattr(current, section)
        desired = (sections or {}).get(section)
        if desired is None:
            merged_sections[section] = stored
            continue
        changes += _diff(entity, stored, desired, prune)
        merged_sections[section] = _merged(stored, desired, prune)
    new_metadata = current.metadata
    if metadata is not None or prune:
        desired = metadata or {}
        if not same_json(desired, current.metadata):
            changes.append(Change("flag_set_metadata", "", "update", current.metadata, desired))
        new_metadata = desired
    candidate = StoredConfig(
        version=current.version,
        flags=_merged(current.flags, flags, prune),
        evaluators=_merged(current.evaluators, evaluators, prune),
        metadata=new_metadata,
        updated_at=current.updated_at,
        lifecycles=current.lifecycles,
        **merged_sections,
    )
    return Plan(changes=tuple(changes), candidate=candidate.document(), candidate_config=candidate)


def _diff(entity: Entity, current: dict[str, Any], desired: dict[str, Any], prune: bool) -> list[Change]:
    changes = []
    for key, value in desired.items():
        if key not in current:
            changes.append(Change(entity, key, "create", None, value))
        elif not same_json(current[key], value):
            changes.append(Change(entity, key, "update", current[key], value))
    if prune:
        changes.extend(
            Change(entity, key, "delete", value, None) for key, value in current.items() if key not in desired
        )
    return changes


def _merged(current: dict[str, Any], desired: dict[str, Any], prune: bool) -> dict[str, Any]:
    return dict(desired) if prune else {**current, **desired}
