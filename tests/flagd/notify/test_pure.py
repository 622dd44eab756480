"""The pure parts of webhooks: backoff with full jitter, and the Slack body."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import orjson

from flagd.notify.backoff import Backoff
from flagd.notify.messages import Notification, body


def test_should_double_the_backoff_ceiling_up_to_its_cap_and_jitter_below_it() -> None:
    backoff = Backoff(base_seconds=5.0, cap_seconds=3600.0)
    assert [backoff.ceiling(n) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert backoff.ceiling(10_000) == 3600.0
    assert backoff.delay(3, lambda: 0.5) == 10.0
    assert backoff.delay(3, lambda: 0.0) == 0.0


def test_should_write_a_slack_message_with_the_id_and_escaped_fields() -> None:
    notification = Notification(
        id=UUID(int=7),
        kind="flag.changed",
        subject="checkout",
        payload={"flag": "checkout", "actor": "<script>&", "big": "x" * 500},
        created_at=datetime(2026, 12, 2, tzinfo=UTC),
    )
    slack = orjson.loads(body(notification, slack=True))
    assert slack["text"] == "flagd: flag.changed — checkout"
    fields = slack["blocks"][1]["fields"]
    assert fields[1]["text"] == "*actor*\n&lt;script&gt;&amp;"
    assert len(fields[2]["text"]) < 220
    assert str(UUID(int=7)) in slack["blocks"][-1]["elements"][0]["text"]
    plain = orjson.loads(body(notification, slack=False))
    assert plain["id"] == str(UUID(int=7))
    assert plain["payload"]["big"] == "x" * 500
