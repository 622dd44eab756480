"""What a webhook receives, pure: the notification as JSON, or a Slack-compatible message.

The plain body:

    {"id": "<notification id>", "kind": "flag.changed", "subject": "new-checkout",
     "createdAt": "2026-12-02T09:30:00.123456+00:00", "payload": {...}}

The Slack body (`slack: true`) is what a Slack incoming webhook (and Mattermost, Rocket.Chat...) takes: a
`text` fallback and `blocks`, with the id in a context block.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from flagd import jsonio

MAX_FIELDS = 10
"""Payload members shown in a Slack message; the rest are in the plain body, for receivers that want them."""
MAX_FIELD_TEXT = 200


@dataclass(frozen=True, slots=True)
class Notification:
    id: UUID
    kind: str
    subject: str
    payload: Any
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "kind": self.kind,
            "subject": self.subject,
            "createdAt": self.created_at.isoformat(),
            "payload": self.payload,
        }


def body(notification: Notification, *, slack: bool) -> bytes:
    return jsonio.dumps(slack_message(notification) if slack else notification.to_json())


def slack_message(notification: Notification) -> dict[str, Any]:
    text = f"flagd: {notification.kind} — {notification.subject}"
    fields = [
        {"type": "mrkdwn", "text": f"*{_escape(str(name))}*\n{_escape(_shown(value))}"}
        for name, value in list(_members(notification.payload))[:MAX_FIELDS]
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(text)}*"}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"{notification.created_at.isoformat()} · id {notification.id}"}
            ],
        }
    )
    return {"text": text, "blocks": blocks}


def _members(payload: Any) -> list[tuple[str, Any]]:
    return list(payload.items()) if isinstance(payload, dict) else [("payload", payload)]


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else jsonio.dumps(value).decode()
    return text if len(text) <= MAX_FIELD_TEXT else text[: MAX_FIELD_TEXT - 1] + "…"


def _escape(text: str) -> str:
    """Slack's three control characters in mrkdwn (api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
