"""Validated, audited changes to webhooks; the caller owns the transaction.

A generated secret is returned once, by the change that made it, and is never in a record's JSON or in
the audit log (which records the webhook as its JSON shows it, and that a secret was rotated).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from uuid_utils.compat import uuid7

from flagd.config.audit import Action, AuditRepository
from flagd.errors import Conflict, NotFound, ValidationFailed
from flagd.notify.definitions import WebhookFields, read_fields
from flagd.notify.repository import WebhookRecord, WebhookRepository
from flagd.notify.signing import new_secret
from flagd.storage.types import Connection
from flagd_sdk.evaluation import Problem

MAX_WEBHOOKS = 100
"""Webhooks one server keeps: each is a receiver every notification may be owed to."""


@dataclass(frozen=True, slots=True)
class Written:
    record: WebhookRecord
    secret: str | None
    """The secret, when this change generated it: shown to the caller once."""

    def to_json(self) -> dict[str, Any]:
        shown = self.record.to_json()
        if self.secret is not None:
            shown["secret"] = self.secret
        return shown


class WebhookService:
    def __init__(self, conn: Connection, actor: str, environ: Mapping[str, str] = os.environ) -> None:
        self._conn = conn
        self._actor = actor
        self._environ = environ
        self._webhooks = WebhookRepository(conn)

    async def get(self, webhook_id: UUID, *, for_update: bool = False) -> WebhookRecord:
        record = await self._webhooks.get(webhook_id, for_update=for_update)
        if record is None:
            raise NotFound(f"webhook {webhook_id} does not exist", code="webhook_not_found")
        return record

    async def create(self, body: Mapping[str, Any]) -> Written:
        fields = self._checked(body)
        if await self._webhooks.count() >= MAX_WEBHOOKS:
            raise Conflict(
                f"there are {MAX_WEBHOOKS} webhooks already, the most a server keeps; delete one first",
                code="too_many_webhooks",
            )
        secret = new_secret() if fields.secret_env is None else None
        try:
            record = await self._webhooks.create(uuid7(), fields, secret)
        except asyncpg.UniqueViolationError:
            raise _name_taken(fields.name) from None
        await self._record("create", record, None, record.to_json())
        return Written(record, secret)

    async def update(self, webhook_id: UUID, body: Mapping[str, Any]) -> Written:
        fields = self._checked(body)
        current = await self.get(webhook_id, for_update=True)
        secret, secret_env = current.secret, current.secret_env
        generated = None
        if fields.secret_env is not None:
            secret, secret_env = None, fields.secret_env
        elif fields.rotate_secret:
            secret = generated = new_secret()
            secret_env = None
        try:
            record = await self._webhooks.update(current, fields, secret, secret_env)
        except asyncpg.UniqueViolationError:
            raise _name_taken(fields.name) from None
        after = record.to_json()
        if generated is not None:
            after["secretRotated"] = True
        await self._record("update", record, current.to_json(), after)
        return Written(record, generated)

    async def delete(self, webhook_id: UUID) -> None:
        current = await self.get(webhook_id, for_update=True)
        await self._webhooks.delete(webhook_id)
        await self._record("delete", current, current.to_json(), None)

    def _checked(self, body: Mapping[str, Any]) -> WebhookFields:
        fields, problems = read_fields(body)
        problems += secret_env_problems(fields, self._environ)
        if problems:
            raise ValidationFailed(
                f"the webhook is not valid: {problems[0]}"
                + (" (and more in details)" if len(problems) > 1 else ""),
                code="invalid_webhook",
                details=[{"path": p.path, "message": p.message} for p in problems],
            )
        return fields

    async def _record(self, action: Action, record: WebhookRecord, before: Any, after: Any) -> None:
        await AuditRepository(self._conn).record(
            actor=self._actor,
            action=action,
            entity="webhook",
            key=str(record.id),
            before=before,
            after=after,
            config_version=None,
        )


def secret_env_problems(fields: WebhookFields, environ: Mapping[str, str]) -> list[Problem]:
    """What is wrong with naming `fields.secret_env` here: the variable must be set (and not empty)."""
    if fields.secret_env is None or environ.get(fields.secret_env):
        return []
    return [
        Problem(
            "secretEnv",
            f"{fields.secret_env} is not set in the server's environment; set it on every worker "
            "(and host) before naming it, or omit secretEnv to have a secret generated",
        )
    ]


def _name_taken(name: str | None) -> Conflict:
    return Conflict(f'a webhook named "{name}" exists already; choose another name', code="webhook_exists")
