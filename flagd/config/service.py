"""Validated, audited changes to the flag configuration.

Every change is checked with the evaluator's own loader against the whole flag set it
will produce; only problems the change introduces are refused, so an older flaw in an
unrelated flag never blocks work. Writers serialise on the config row, each write bumps
the config version once, and the audit log records who changed what, before and after.
The caller owns the transaction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from flagd.config.audit import AuditRepository
from flagd.config.plan import Change, Plan, plan, same_json
from flagd.config.repository import ConfigRepository, FlagRecord, StoredConfig
from flagd.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from flagd.experiments.lifecycle import LifecycleError, edit
from flagd.experiments.model import Experiment
from flagd.experiments.reading import read_sections
from flagd.identifiers import KEY_RULE, is_key
from flagd.jsonio import check_storable
from flagd.notify import as_code as webhooks_as_code
from flagd.notify.outbox import enqueue
from flagd.storage.types import Connection
from flagd.tracking.plan import read_plan, unplanned_metric_events
from flagd_sdk.evaluation import Problem, load_flag_set
from flagd_sdk.evaluation.problems import given

# The members of a flag-set document: flagd's flags.json schema, and beside the flags (its root allows
# more members) the metrics, layers and experiments. Anything else is a mistake.
_DOCUMENT_MEMBERS = (
    "$schema",
    "flags",
    "$evaluators",
    "metadata",
    "metrics",
    "layers",
    "experiments",
    "events",
    "webhooks",
)
_SECTION_TABLES = {"metric": "metrics", "layer": "layers", "experiment": "experiments", "event": "events"}


class FlagService:
    def __init__(self, conn: Connection, actor: str, environ: Mapping[str, str] = os.environ) -> None:
        self._conn = conn
        self._actor = actor
        self._environ = environ
        """Where a webhook's secretEnv is looked up (flagd.notify.service)."""
        self._config = ConfigRepository(conn)
        self._audit = AuditRepository(conn)

    async def create_flag(self, key: str, definition: Any) -> FlagRecord:
        check_key(key, "flag key")
        current = await self._config.load(for_update=True)
        if key in current.flags:
            raise Conflict(
                f'flag "{key}" already exists; update it with PUT and If-Match', code="flag_exists"
            )
        _validate(current, {**current.document(), "flags": {**current.flags, key: definition}})
        record = await self._config.insert_flag(key, definition)
        await self._record("create", key, None, definition)
        return record

    async def update_flag(self, key: str, definition: Any, expected_version: int) -> FlagRecord:
        current = await self._config.load(for_update=True)
        existing = await self._existing(key, expected_version)
        _validate(current, {**current.document(), "flags": {**current.flags, key: definition}})
        if same_json(existing.definition, definition):
            return existing
        record = await self._config.update_flag(key, definition)
        await self._record("update", key, existing.definition, definition)
        return record

    async def check_update(self, key: str, definition: Any) -> FlagRecord:
        """What `update_flag` checks of the flag as it is now, writing nothing: it exists, and replacing its
        definition leaves the set without new problems. Returns the flag as it is (its version)."""
        current = await self._config.load()
        existing = await self._config.get_flag(key)
        if existing is None:
            raise NotFound(f'flag "{key}" does not exist', code="flag_not_found")
        _validate(current, {**current.document(), "flags": {**current.flags, key: definition}})
        return existing

    async def delete_flag(self, key: str, expected_version: int) -> None:
        current = await self._config.load(for_update=True)
        existing = await self._existing(key, expected_version)
        remaining = {k: v for k, v in current.flags.items() if k != key}
        _validate(current, {**current.document(), "flags": remaining})
        await self._config.delete_flag(key)
        await self._record("delete", key, existing.definition, None)

    async def apply(
        self,
        document: Any,
        *,
        prune: bool,
        dry_run: bool,
        expected_version: int | None = None,
        rephasing: str | None = None,
    ) -> tuple[Plan, int]:
        """Make the stored set equal to `document` (or merge it in, without prune).

        Returns the plan and the config version after it; with dry_run nothing is written.
        With `expected_version`, refuses (412) unless the set is still at that config version.
        `rephasing` names a running experiment whose assignment may change because the caller starts
        its next phase in the same transaction (flagd.config.experiment_lifecycle).
        A `webhooks` section is planned and written here too (flagd.notify.as_code), outside the config
        version: a change to webhooks alone leaves the version as it is.
        """
        flags, evaluators, metadata = read_document(document)
        sections = {
            name: dict(document[name])
            for name in ("metrics", "layers", "experiments", "events")
            if name in document
        }
        current = await self._config.load(for_update=not dry_run)
        if expected_version is not None and expected_version != current.version:
            raise PreconditionFailed(
                f"the flag set is at config version {current.version}, not {expected_version}: it changed "
                "since you read it; fetch it again (GET /v1/admin/flag-set) and reapply your change",
                code="config_version_mismatch",
            )
        the_plan = plan(current, flags, evaluators, metadata, prune=prune, sections=sections)
        _validate(current, the_plan.candidate)
        check_running_experiments(current, the_plan.changes, rephasing)
        # Webhooks are not part of the config version: planned beside it, written after it, in this
        # transaction (flagd.notify.as_code); a file without the section leaves them alone.
        hooks = (
            await webhooks_as_code.changes_for(self._conn, document["webhooks"], self._environ, prune=prune)
            if "webhooks" in document
            else []
        )
        config_changes = the_plan.changes
        the_plan = replace(the_plan, changes=(*config_changes, *hooks))
        if dry_run:
            return the_plan, current.version
        if hooks:
            await webhooks_as_code.write(self._conn, self._actor, hooks, self._environ)
        if not config_changes:
            return the_plan, current.version
        for change in config_changes:
            await self._write(change)
        version = await self._config.bump_version()
        for change in config_changes:
            await self._audit.record(
                actor=self._actor,
                action=change.action,
                entity=change.entity,
                key=change.key,
                before=change.before,
                after=change.after,
                config_version=version,
            )
            if change.entity == "flag":
                await self._notify(change.action, change.key, version)
        return the_plan, version

    async def _write(self, change: Change) -> None:
        if change.entity == "flag":
            if change.action == "create":
                await self._config.insert_flag(change.key, change.after)
            elif change.action == "update":
                await self._config.update_flag(change.key, change.after)
            else:
                await self._config.delete_flag(change.key)
        elif change.entity == "evaluator":
            if change.action == "delete":
                await self._config.delete_evaluator(change.key)
            else:
                await self._config.upsert_evaluator(change.key, change.after)
        elif change.entity in _SECTION_TABLES:
            table = _SECTION_TABLES[change.entity]
            if change.action == "delete":
                await self._config.delete_definition(table, change.key)
            else:
                await self._config.upsert_definition(table, change.key, change.after)
        else:
            await self._config.set_metadata(change.after)

    async def _existing(self, key: str, expected_version: int) -> FlagRecord:
        existing = await self._config.get_flag(key)
        if existing is None:
            raise NotFound(f'flag "{key}" does not exist', code="flag_not_found")
        if existing.version != expected_version:
            raise PreconditionFailed(
                f'flag "{key}" is at version {existing.version}, not {expected_version}: it changed since you read it; '
                "fetch it again and reapply your change",
                code="version_mismatch",
            )
        return existing

    async def _record(self, action: Any, key: str, before: Any, after: Any) -> None:
        version = await self._config.bump_version()
        await self._audit.record(
            actor=self._actor,
            action=action,
            entity="flag",
            key=key,
            before=before,
            after=after,
            config_version=version,
        )
        await self._notify(action, key, version)

    async def _notify(self, action: str, key: str, version: int) -> None:
        """`flag.changed`, in the transaction of the change (its definition is read with the admin API)."""
        await enqueue(
            self._conn,
            "flag.changed",
            key,
            {"flag": key, "action": action, "actor": self._actor, "configVersion": version},
        )


async def exported_document(conn: Connection) -> dict[str, Any]:
    """The stored set as a file that makes it: the config document, and its webhooks when there are any
    (what `flagd export` writes and GET /v1/admin/flag-set answers; applying it changes nothing)."""
    document = (await ConfigRepository(conn).load()).document()
    webhooks = await webhooks_as_code.exported(conn)
    if webhooks:
        document["webhooks"] = webhooks
    return document


def check_key(key: Any, what: str) -> None:
    if not is_key(key):
        shown = given(key)
        raise ValidationFailed(
            f"{what} {shown} is not allowed: it must {KEY_RULE}",
            details=[{"path": "key", "message": f"must {KEY_RULE}"}],
        )


def read_document(document: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The flags, evaluators and metadata of a flagd document, flags in object form.

    The shape is checked here, strictly (a misspelt member must not read as "no flags" and
    prune them all); the definitions are checked by `_validate`, on the set they produce.
    """
    if not isinstance(document, dict):
        raise _validation_error([Problem("", 'a flag set must be a JSON object with a "flags" member')])
    shape = [
        Problem(name, f"unknown member; a flag set has {', '.join(_DOCUMENT_MEMBERS)}")
        for name in document
        if name not in _DOCUMENT_MEMBERS
    ]
    if "flags" not in document:
        shape.append(Problem("flags", 'is missing; a flag set needs a "flags" object (it may be empty: {})'))
    for name, kind in (
        ("$evaluators", "an object of named rules"),
        ("metadata", "an object"),
        ("metrics", "an object of named metrics"),
        ("layers", "an object of named layers"),
        ("experiments", "an object of named experiments"),
        ("events", "an object of planned events (the tracking plan)"),
        ("webhooks", "an object of webhooks by name"),
    ):
        if name in document and not isinstance(document[name], dict):
            shape.append(Problem(name, f"must be {kind}; got {given(document[name])}"))
    if shape:
        raise _validation_error(shape)
    unstorable = check_storable(document)  # before anything compares or encodes it as JSON
    if unstorable:
        raise _validation_error(unstorable)
    raw_flags = document["flags"]
    if isinstance(raw_flags, list):
        flags = {}
        for index, flag in enumerate(raw_flags):
            if not isinstance(flag, dict) or not isinstance(flag.get("key"), str):
                raise _validation_error(
                    [Problem(f"flags[{index}]", 'a flag in the array form needs a "key"')]
                )
            flags[flag["key"]] = {k: v for k, v in flag.items() if k != "key"}
    elif isinstance(raw_flags, dict):
        flags = dict(raw_flags)
    else:
        raise _validation_error([Problem("flags", "must be an object mapping flag keys to flag definitions")])
    for key in flags:
        check_key(key, "flag key")
    evaluators = document.get("$evaluators", {})
    for name in evaluators:
        check_key(name, "evaluator name")
    metadata = document.get("metadata")
    return flags, dict(evaluators), dict(metadata) if metadata is not None else None


def _validate(current: StoredConfig, candidate: dict[str, Any]) -> None:
    """Refuse the problems the change introduces: to the evaluator, and to storing and serving it."""
    known = {(p.path, p.message) for p in _problems(current.document())}
    new = [p for p in _problems(candidate) if (p.path, p.message) not in known]
    if new:
        raise _validation_error(new)


def _problems(document: dict[str, Any]) -> list[Problem]:
    problems = [*check_storable(document), *load_flag_set(document, strict=False).problems]
    sections = read_sections(document, problems)
    tracking = read_plan(document, problems)
    problems += unplanned_metric_events(
        tracking, {key: metric.event_names for key, metric in sections.metrics.items()}
    )
    return problems


def check_running_experiments(
    current: StoredConfig, changes: Sequence[Change], rephasing: str | None = None
) -> None:
    """Refuse, for the whole change, what a running experiment forbids: deleting it, or changing its assignment
    (except for `rephasing`, whose next phase starts with the change)."""
    for change in changes:
        if change.entity != "experiment" or (change.key == rephasing and change.action == "update"):
            continue
        lifecycle = current.lifecycles.get(change.key)
        if lifecycle is None or lifecycle.state != "running":
            continue
        if change.action == "delete":
            raise Conflict(
                f'experiment "{change.key}" is running; stop it (`flagd experiments stop {change.key}`) before '
                "deleting it",
                code="experiment_running",
            )
        before, after = (
            _experiment(current, change.key, change.before),
            _experiment(current, change.key, change.after),
        )
        if before is None or after is None:
            continue  # unreadable definitions are refused by validation
        try:
            edit(replace(before, state="running", salt=lifecycle.salt), replace(after, salt=""))
        except LifecycleError as exc:
            raise Conflict(str(exc), code="experiment_running") from None


def _experiment(current: StoredConfig, key: str, definition: Any) -> Experiment | None:
    document = {**current.document(), "experiments": {key: definition}}
    return read_sections(document, [], current.flags).experiments.get(key)


def _validation_error(problems: list[Problem]) -> ValidationFailed:
    count = len(problems)
    return ValidationFailed(
        f"the change would leave the flag set with {count} problem{'s' if count != 1 else ''}: {problems[0]}"
        + (" (and more in details)" if count > 1 else ""),
        details=[{"path": p.path, "message": p.message} for p in problems],
    )
