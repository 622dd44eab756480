"""Starting rollouts and moving them between stages: each change one transaction, guarded by the version.

A transition is made from the version of the rollout it was decided on: the UPDATE names that version,
so of two hosts (or a host and an operator) deciding on the same version, one moves the rollout and the
other finds nothing to update and does nothing. In the same transaction: the transition log row (reason
and statistics), the phase of `rollout:<key>` (a new stage records exposures in a new phase), the config
version bump (every worker serves the new share at once, SDKs and SSE streams follow), the audit entry
and the outbox notification. The caller owns the transaction: all of it commits, or none.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import datetime
from typing import Any, Final, Literal, cast

import asyncpg

from flagd.config.audit import Action, AuditRepository
from flagd.config.phase_history import PhaseHistory
from flagd.config.repository import ConfigRepository
from flagd.errors import Conflict, NotFound, ValidationFailed
from flagd.experiments.model import BASIS_POINTS
from flagd.experiments.reading import read_sections
from flagd.notify.outbox import enqueue
from flagd.rollouts.model import Rollout, read_rollout
from flagd.rollouts.repository import RolloutRepository
from flagd.rollouts.serving import RolloutState, normalised
from flagd.storage.types import Connection
from flagd_sdk.evaluation import Problem

Move = Literal["advance", "complete", "hold", "pause", "resume", "rollback"]
MOVES: Final[tuple[Move, ...]] = ("advance", "complete", "hold", "pause", "resume", "rollback")
_NOTIFY: Final[dict[str, str]] = {
    "advance": "rollout.advanced",
    "complete": "rollout.completed",
    "hold": "rollout.held",
    "rollback": "rollout.rolled_back",
}
_FROM: Final[dict[str, tuple[str, ...]]] = {
    "advance": ("running", "paused", "held"),
    "complete": ("running", "paused", "held"),
    "hold": ("running",),
    "pause": ("running",),
    "resume": ("paused", "held"),
    "rollback": ("running", "paused", "held"),
}


class RolloutService:
    def __init__(self, conn: Connection, actor: str) -> None:
        self._conn = conn
        self._actor = actor
        self._rollouts = RolloutRepository(conn)
        self._config = ConfigRepository(conn)
        self._phases = PhaseHistory(conn)

    async def start(self, key: str, definition: Any, *, path: str = "") -> tuple[RolloutState, int]:
        """Validate `definition` against the stored set (problems located under `path`) and start rollout
        `key` at its first stage."""
        rollout = await self.check(key, definition, path=path)
        phase = await self._phases.last_phase(rollout.experiment) + 1
        first = rollout.stages[0].share_bp
        row = await self._rollouts.insert(key, normalised(rollout), first, phase)
        if first >= BASIS_POINTS:
            moved = await self._rollouts.move(
                key, row.version, state="completed", stage=0, share_bp=first, phase=phase, new_stage=False
            )
            assert moved is not None
            row = moved
        else:
            await self._phases.begin(rollout.experiment, phase, [rollout.replaces, rollout.variant])
        await self._rollouts.log(row, self._actor, "start", "started", {})
        version = await self._config.bump_version()
        await AuditRepository(self._conn).record(
            actor=self._actor,
            action="start",
            entity="rollout",
            key=key,
            before=None,
            after={**row.definition, "state": row.state, "percent": row.share_bp / 100},
            config_version=version,
        )
        return row, version

    async def check(
        self, key: str, definition: Any, *, path: str = "", candidate: dict[str, Any] | None = None
    ) -> Rollout:
        """The rollout `definition` defines, checked against the stored set (or the `candidate` set a dry run
        would make; problems located under `path`), or the error that says what to fix."""
        current = await self._config.load(for_update=True)
        document = candidate if candidate is not None else current.document()
        flags = document.get("flags") or {}
        if key in current.rollouts:
            raise Conflict(
                f'rollout "{key}" exists already; rollout keys are not reused, choose another',
                code="rollout_exists",
            )
        problems: list[Problem] = []
        sections = read_sections(document, [], flags)
        rollout = read_rollout(
            key, definition, flags, sections.metrics, path, problems, document.get("$evaluators") or {}
        )
        if rollout is None:
            count = len(problems)
            raise ValidationFailed(
                f"the rollout has {count} problem{'s' if count != 1 else ''}: {problems[0]}"
                + (" (and more in details)" if count > 1 else ""),
                details=[{"path": p.path, "message": p.message} for p in problems],
            )
        if not rollout.salt:
            rollout = replace(rollout, salt=secrets.token_hex(8))
        busy = await self._rollouts.active_on(rollout.flag)
        if busy is not None:
            raise Conflict(
                f'flag "{rollout.flag}" is being rolled out by "{busy}"; finish or roll it back first',
                code="rollout_conflict",
            )
        for name, lifecycle in current.lifecycles.items():
            experiment = current.experiments.get(name)
            if (
                lifecycle.state == "running"
                and isinstance(experiment, dict)
                and experiment.get("flag") == rollout.flag
            ):
                raise Conflict(
                    f'flag "{rollout.flag}" runs experiment "{name}"; stop it before rolling a variant out',
                    code="rollout_conflict",
                )
        return rollout

    async def move(
        self,
        key: str,
        move: Move,
        *,
        reason: str,
        statistics: Any = None,
        version: int | None = None,
        at: datetime | None = None,
    ) -> tuple[RolloutState, int] | None:
        """Make `move` from the rollout's `version` (None: its current one, for an operator). None when the
        rollout is no longer at `version` (another host or an operator moved it first). A stage it begins
        starts `at` (the monitor's clock, which times the stages), or now."""
        row = await self._rollouts.get(key)
        if row is None:
            raise NotFound(f'rollout "{key}" does not exist', code="rollout_not_found")
        if version is not None and row.version != version:
            return None
        if row.state not in _FROM[move]:
            raise Conflict(
                f'rollout "{key}" is {row.state.replace("_", " ")}; {move} applies to a rollout that is '
                f"{' or '.join(s.replace('_', ' ') for s in _FROM[move])}",
                code="rollout_state",
            )
        rollout = row.rollout
        state, stage, phase, new_stage = _after(rollout, row, move)
        if state == "completed" and move == "advance":
            move = "complete"
        share = 0 if state == "rolled_back" else rollout.stages[stage].share_bp
        if new_stage and state == "running":
            phase = await self._phases.last_phase(rollout.experiment) + 1
        moved = await self._rollouts.move(
            key,
            row.version,
            state=state,
            stage=stage,
            share_bp=share,
            phase=phase,
            new_stage=new_stage,
            at=at,
        )
        if moved is None:
            return None
        if new_stage and state == "running":
            await self._phases.begin(rollout.experiment, phase, [rollout.replaces, rollout.variant])
        elif state in ("rolled_back", "completed"):
            await self._phases.end(rollout.experiment)
        await self._rollouts.log(moved, self._actor, move, reason, statistics or {})
        version_after = await self._config.bump_version()
        before = {"state": row.state, "stage": row.stage, "percent": row.share_bp / 100}
        after = {
            "state": moved.state,
            "stage": moved.stage,
            "percent": moved.share_bp / 100,
            "reason": reason,
        }
        action: Action = move
        await AuditRepository(self._conn).record(
            actor=self._actor,
            action=action,
            entity="rollout",
            key=key,
            before=before,
            after={**after, "statistics": statistics or {}},
            config_version=version_after,
        )
        kind = _NOTIFY.get(move)
        if kind is not None:
            await enqueue(
                cast(asyncpg.Connection, self._conn),  # a pool's proxy is a connection too
                kind,
                key,
                {"rollout": key, "flag": rollout.flag, **after, "statistics": statistics or {}},
            )
        return moved, version_after


def _after(rollout: Rollout, row: RolloutState, move: Move) -> tuple[str, int, int, bool]:
    """(state, stage, phase, whether a new stage begins) after `move`."""
    if move in ("advance", "complete"):
        stage = len(rollout.stages) - 1 if move == "complete" else row.stage + 1
        if stage >= len(rollout.stages) - 1:
            return "completed", len(rollout.stages) - 1, row.phase, True
        return "running", stage, row.phase, True
    if move == "hold":
        return "held", row.stage, row.phase, False
    if move == "pause":
        return "paused", row.stage, row.phase, False
    if move == "resume":
        return "running", row.stage, row.phase, False
    return "rolled_back", row.stage, row.phase, False
