"""A flags file's `rollouts:` section, as `flagd apply` reads it.

A rollout's definition is fixed once it starts (its stages and guardrails are what its statistics were
designed for), so applying a file starts the rollouts it defines that do not exist yet and leaves the
others as they are; a definition that differs from the started one is reported, not changed. Every
problem of every new rollout is located under `rollouts.KEY` and refuses the whole apply (the caller's
transaction). A dry run validates and starts nothing.
"""

from __future__ import annotations

from typing import Any

from flagd.errors import FlagdError, ValidationFailed
from flagd.identifiers import KEY_RULE, is_key
from flagd.rollouts.repository import RolloutRepository
from flagd.rollouts.service import RolloutService
from flagd.storage.types import Connection
from flagd_sdk.evaluation.problems import child


async def apply_rollouts(
    conn: Connection, actor: str, section: Any, *, dry_run: bool, candidate: dict[str, Any] | None = None
) -> list[str]:
    """Start the section's new rollouts (after the rest of the file is applied; a dry run checks them against
    the `candidate` set it would make); what each key did, in words."""
    if not isinstance(section, dict):
        raise ValidationFailed(
            "rollouts must be a mapping of rollout keys to definitions",
            details=[{"path": "rollouts", "message": "must be a mapping of rollout keys to definitions"}],
        )
    service = RolloutService(conn, actor)
    existing = {row.key: row for row in await RolloutRepository(conn).all()}
    said: list[str] = []
    details: list[dict[str, Any]] = []
    for key, definition in section.items():
        path = child("rollouts", key)
        if not is_key(key) or len(key) > 200:
            details.append({"path": path, "message": f"the key must {KEY_RULE} (at most 200)"})
            continue
        if key in existing:
            said.append(f"rollout {key}: {existing[key].state.replace('_', ' ')}, left as it is")
            continue
        try:
            if dry_run:
                await service.check(key, definition, path=path, candidate=candidate)
            else:
                await service.start(key, definition, path=path)
        except ValidationFailed as exc:
            details.extend(dict(d) for d in (exc.details or [{"path": path, "message": exc.message}]))
            continue
        except FlagdError as exc:
            details.append({"path": path, "message": exc.message})
            continue
        said.append(f"rollout {key}: {'would start' if dry_run else 'started'}")
    if details:
        raise ValidationFailed(
            f"the rollouts section has {len(details)} problem{'s' if len(details) != 1 else ''}: "
            f"{details[0]['path']}: {details[0]['message']}",
            details=details,
        )
    return said
