"""A whole flags file applied at once, by `flagd apply` and by `PUT /v1/admin/flag-set` alike.

Everything but `rollouts:` goes through FlagService.apply; then the file's new rollouts are started
(flagd.rollouts.as_code: a rollout starts once and is then the monitor's), in the caller's transaction, so a
problem anywhere refuses the whole file.
"""

from __future__ import annotations

from typing import Any

from flagd.config.plan import Plan
from flagd.config.repository import ConfigRepository
from flagd.config.service import FlagService
from flagd.rollouts.as_code import apply_rollouts
from flagd.storage.types import Connection


async def apply_whole_file(
    conn: Connection,
    actor: str,
    document: Any,
    *,
    prune: bool,
    dry_run: bool,
    expected_version: int | None = None,
) -> tuple[Plan, int, list[str]]:
    """The plan applied, the config version after it, and what each of the file's rollouts did, in words."""
    rest = dict(document) if isinstance(document, dict) else document
    section = rest.pop("rollouts", None) if isinstance(rest, dict) else None
    plan, version = await FlagService(conn, actor).apply(
        rest, prune=prune, dry_run=dry_run, expected_version=expected_version
    )
    said: list[str] = []
    if section is not None:
        said = await apply_rollouts(conn, actor, section, dry_run=dry_run, candidate=plan.candidate)
        version = await ConfigRepository(conn).version()
    return plan, version, said
