"""Starting, stopping, re-phasing and launching stored experiments: validated, versioned and audited.

The pure transitions are `flagd.experiments.lifecycle`; this reads the stored set under the
config lock, applies one, writes the lifecycle columns (and, for a launch, the flag), bumps
the config version and audits it. A new phase may bring a changed definition, stored through
the same validation as any write (`FlagService.apply`) before the phase starts with it. The
caller owns the transaction, so either both happen or nothing changes.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from flagd.config.audit import Action, AuditRepository
from flagd.config.phase_history import PhaseHistory
from flagd.config.repository import ConfigRepository, StoredConfig
from flagd.config.service import FlagService
from flagd.errors import Conflict, NotFound, ValidationFailed
from flagd.experiments.lifecycle import LifecycleError, launch, new_phase, not_running, start, stop
from flagd.experiments.model import Experiment
from flagd.experiments.reading import Sections, read_sections
from flagd.experiments.serving import with_lifecycle
from flagd.storage.types import Connection
from flagd_sdk.evaluation import Problem


class ExperimentLifecycle:
    def __init__(self, conn: Connection, actor: str) -> None:
        self._conn = conn
        self._actor = actor
        self._config = ConfigRepository(conn)
        self._audit = AuditRepository(conn)
        self._phases = PhaseHistory(conn)

    async def transition(
        self, key: str, action: Action, variant: str | None = None, *, definition: Any = None
    ) -> dict[str, Any]:
        """Apply `action` to experiment `key`. A `definition` (new_phase only) is written first, validated
        like any write, and the next phase starts with it, in the caller's one transaction."""
        current = await self._config.load(for_update=True)
        defined_in: int | None = None
        if definition is not None and action != "new_phase":
            raise ValueError(f"only a new phase takes a definition, not {action}")
        if definition is not None:
            current, defined_in = await self._rephase(current, key, definition)
        experiment, running, sections = _experiments(current, key)
        layer = sections.layers.get(experiment.layer) if experiment.layer is not None else None
        in_layer = [e for e in running if e.layer is not None and e.layer == experiment.layer]
        flag_after: dict[str, Any] | None = None
        try:
            if action == "start":
                # The first phase uses the author's salt when the definition gives one; later phases draw anew.
                written = sections.experiments[key].salt
                salt = written if experiment.phase == 0 and written else _salt()
                changed = start(experiment, salt, layer, in_layer)
            elif action == "new_phase":
                changed = new_phase(experiment, experiment, _salt(), layer, in_layer)
            elif action == "stop":
                changed = stop(experiment)
            else:
                if variant is None:
                    raise LifecycleError("say which variant to launch")
                changed, flag_after = launch(experiment, variant, current.flags[experiment.flag])
        except LifecycleError as exc:
            raise Conflict(str(exc), code="lifecycle_conflict") from None
        if changed.phase != experiment.phase:
            # Never a phase number the key ran before (it may have been deleted and created again).
            changed = replace(changed, phase=max(changed.phase, await self._phases.last_phase(key) + 1))
            await self._phases.begin(key, changed.phase, [name for name, _ in changed.variants])
        elif changed.state != "running":
            await self._phases.end(key)
        await self._conn.execute(
            "UPDATE experiments SET state = $2, phase = $3, salt = $4, slot_start = $5, updated_at = now(), "
            "phase_started_at = CASE WHEN $3 <> phase THEN now() ELSE phase_started_at END WHERE key = $1",
            key,
            changed.state,
            changed.phase,
            changed.salt,
            changed.slot_start,
        )
        if flag_after is not None:
            await self._config.update_flag(experiment.flag, flag_after)
        # A definition written above bumped the version already: the whole change is one config version.
        version = defined_in if defined_in is not None else await self._config.bump_version()
        state = {"state": changed.state, "phase": changed.phase, "slotStart": changed.slot_start}
        before = {"state": experiment.state, "phase": experiment.phase, "slotStart": experiment.slot_start}
        await self._audit.record(
            actor=self._actor,
            action=action,
            entity="experiment",
            key=key,
            before=before,
            after={**state, **({"variant": variant} if variant else {})},
            config_version=version,
        )
        if flag_after is not None:
            await self._audit.record(
                actor=self._actor,
                action="update",
                entity="flag",
                key=experiment.flag,
                before=current.flags[experiment.flag],
                after=flag_after,
                config_version=version,
            )
        return {"key": key, **state, "configVersion": version}

    async def _rephase(
        self, current: StoredConfig, key: str, definition: Any
    ) -> tuple[StoredConfig, int | None]:
        """Store the next phase's definition of running experiment `key` (audited as an update); the set as
        it is now, and the config version of the write (None when the definition was already stored)."""
        if key not in current.experiments:
            raise NotFound(f'experiment "{key}" does not exist', code="experiment_not_found")
        lifecycle = current.lifecycles.get(key)
        state = lifecycle.state if lifecycle else "draft"
        if state != "running":
            raise Conflict(str(not_running(key, state)), code="lifecycle_conflict")
        document = {"flags": {}, "experiments": {key: definition}}
        plan, version = await FlagService(self._conn, self._actor).apply(
            document, prune=False, dry_run=False, rephasing=key
        )
        if not plan.changes:
            return current, None
        return await self._config.load(for_update=True), version


def _salt() -> str:
    return secrets.token_hex(8)


def _experiments(current: StoredConfig, key: str) -> tuple[Experiment, list[Experiment], Sections]:
    """The experiment `key` with its lifecycle, every running one, and what was read; 404 or 422 when unreadable."""
    if key not in current.experiments:
        raise NotFound(f'experiment "{key}" does not exist', code="experiment_not_found")
    problems: list[Problem] = []
    sections = read_sections(current.document(), problems, current.flags)
    if key not in sections.experiments:
        mine = [p for p in problems if p.path.startswith(f"experiments.{key}")] or problems
        raise ValidationFailed(
            f'experiment "{key}" does not read cleanly: {mine[0]}; fix its definition first',
            details=[{"path": p.path, "message": p.message} for p in mine],
        )
    stored = {
        name: with_lifecycle(experiment, current.lifecycles[name])
        for name, experiment in sections.experiments.items()
        if name in current.lifecycles
    }
    running = [e for e in stored.values() if e.state == "running"]
    return stored[key], running, sections
