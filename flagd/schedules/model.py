"""What a schedule is, and the pure rules of a request to make one (no I/O).

A request names an `action`, its `target` (a flag or experiment key) and `dueAt` (RFC 3339 with a zone);
`update_flag` also carries the flag's whole new `definition`. The rule for time: `dueAt` must not be
before the moment the request arrives, unless the request says `allowPast: true`, and then the schedule is
simply due (the executors run it at their next poll); it may lie at most MAX_AHEAD ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, get_args

from flagd.errors import BadRequest, ValidationFailed
from flagd.identifiers import KEY_RULE, is_key
from flagd.timestamps import rfc3339
from flagd_sdk.evaluation.problems import given

Action = Literal["enable_flag", "disable_flag", "update_flag", "start_experiment", "stop_experiment"]
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
Status = Literal["pending", "executed", "failed", "cancelled"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)

MAX_AHEAD: Final = timedelta(days=3660)
"""How far ahead a schedule may be due (ten years)."""


def on_flag(action: Action) -> bool:
    return action.endswith("_flag")


@dataclass(frozen=True, slots=True)
class Request:
    """A request to schedule a change, read and checked for shape (the stored set is checked elsewhere)."""

    action: Action
    target: str
    due_at: datetime
    definition: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    action: Action
    target: str
    definition: dict[str, Any] | None
    flag_version: int | None
    """For update_flag: the flag's version when it was scheduled; the change is made only on that version."""
    due_at: datetime
    status: Status
    result: dict[str, Any] | None
    error: str | None
    created_by: str
    created_at: datetime
    executed_at: datetime | None
    executed_by: str | None
    cancelled_at: datetime | None
    cancelled_by: str | None

    @property
    def actor(self) -> str:
        """Who the audit log names for the changes this schedule makes."""
        return f"schedule:{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "target": self.target,
            "definition": self.definition,
            "flagVersion": self.flag_version,
            "dueAt": self.due_at.isoformat(),
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "createdBy": self.created_by,
            "createdAt": self.created_at.isoformat(),
            "executedAt": _iso(self.executed_at),
            "executedBy": self.executed_by,
            "cancelledAt": _iso(self.cancelled_at),
            "cancelledBy": self.cancelled_by,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def read_request(body: dict[str, Any], now: datetime) -> Request:
    """The request in `body` (members already checked to be known), or the first thing wrong with it."""
    action = body.get("action")
    if action not in ACTIONS:
        raise BadRequest(
            f"action must be one of {', '.join(ACTIONS)}; got {given(action)}", code="invalid_schedule"
        )
    target = body.get("target")
    if not isinstance(target, str) or not is_key(target):
        what = "flag" if on_flag(action) else "experiment"
        raise BadRequest(
            f"target must be the key of the {what} to change: it must {KEY_RULE}; got {given(target)}",
            code="invalid_schedule",
        )
    allow_past = body.get("allowPast", False)
    if not isinstance(allow_past, bool):
        raise BadRequest(f"allowPast must be true or false; got {given(allow_past)}", code="invalid_schedule")
    due_at = due_time(body.get("dueAt"))
    check_due(due_at, now, allow_past=allow_past)
    definition = body.get("definition")
    if action == "update_flag":
        if not isinstance(definition, dict):
            raise BadRequest(
                "update_flag needs definition: the flag's whole new definition, a JSON object as PUT "
                f"/v1/admin/flags/{{key}} takes it; got {given(definition)}",
                code="invalid_schedule",
            )
    elif "definition" in body:
        raise BadRequest(
            f"only update_flag takes a definition; {action} changes only the "
            + ("flag's state" if on_flag(action) else "experiment's lifecycle"),
            code="invalid_schedule",
        )
    return Request(action, target, due_at, definition)


def due_time(raw: Any) -> datetime:
    """`dueAt`: RFC 3339 with a zone, such as 2026-12-24T18:00:00Z or 2026-12-24T19:00:00+01:00."""
    try:
        moment = rfc3339(raw) if isinstance(raw, str) else None
    except (ValueError, OverflowError):
        raise BadRequest(
            f"dueAt {given(raw)} is not a valid date, time or offset", code="invalid_schedule"
        ) from None
    if moment is None:
        raise BadRequest(
            "dueAt must be a time in RFC 3339 with a zone, such as 2026-12-24T18:00:00Z or "
            f"2026-12-24T19:00:00+01:00; got {given(raw)}",
            code="invalid_schedule",
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past the last moment Python has
        raise BadRequest(f"dueAt {given(raw)} is too far ahead", code="invalid_schedule") from None


def check_due(due_at: datetime, now: datetime, *, allow_past: bool) -> None:
    if due_at < now and not allow_past:
        raise ValidationFailed(
            f"dueAt {due_at.isoformat()} is in the past (the server's time is {now.isoformat()}); give a "
            "later time, or send allowPast: true to have it run at once",
            code="schedule_in_past",
        )
    if due_at > now + MAX_AHEAD:
        raise ValidationFailed(
            f"dueAt {due_at.isoformat()} is more than {MAX_AHEAD.days} days ahead; schedule it nearer the time",
            code="schedule_too_far",
        )
