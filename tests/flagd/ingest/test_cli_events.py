"""`flagd events tail` and `flagd events prune` on a real database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
import pytest

from flagd.cli.events import _line
from flagd.ingest.repository import StoredEvent
from tests.flagd.ingest.test_post_events import exposure, now_text, post, track
from tests.flagd.test_cli_flags import flagd

pytestmark = pytest.mark.usefixtures("checkout_ran")


async def run_flagd(*args: str, database_url: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(flagd, *args, database_url=database_url)
    return done.returncode, done.stdout, done.stderr


async def test_should_tail_what_was_stored(sdk: httpx.AsyncClient, database_url: str) -> None:
    events = [track("u1", event="signup"), exposure("u2"), track("u3", value=None, properties={})]
    assert (await post(sdk, events)).status_code == 200
    code, out, err = await run_flagd(
        "events", "tail", "--since", "60", "--limit", "3", "--json", database_url=database_url
    )
    assert code == 0, err
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert {(line["kind"], line["name"], line["unit"]) for line in lines} == {
        ("track", "signup", "u1"),
        ("exposure", "checkout", "u2"),
        ("track", "order_paid", "u3"),
    }
    exposed = next(line for line in lines if line["kind"] == "exposure")
    assert (exposed["variant"], exposed["phase"], exposed["source"]) == ("treatment", 1, "client")
    code, out, _ = await run_flagd(
        "events",
        "tail",
        "--since",
        "60",
        "--kind",
        "track",
        "--name",
        "signup",
        "--seconds",
        "1",
        database_url=database_url,
    )
    assert code == 0
    assert len(out.splitlines()) == 1
    assert "track     signup  unit=u1  value=12.5" in out


async def test_should_tail_only_new_events_by_default(sdk: httpx.AsyncClient, database_url: str) -> None:
    assert (await post(sdk, [track("before")])).status_code == 200
    tail = asyncio.create_task(
        run_flagd("events", "tail", "--limit", "1", "--seconds", "30", "--json", database_url=database_url)
    )
    await asyncio.sleep(2.0)  # the command starts and takes its first look; then one more event arrives
    assert (await post(sdk, [track("after")])).status_code == 200
    code, out, err = await tail
    assert code == 0, err
    assert [orjson.loads(line)["unit"] for line in out.splitlines()] == ["after"]


async def test_should_refuse_bad_prune_days(database_url: str) -> None:
    for args, message in [
        (("events", "prune", "--before", "yesterday"), "--before must be a day as YYYY-MM-DD"),
        (("events", "prune", "--before", "20261201"), "--before must be a day as YYYY-MM-DD"),
        (("events", "prune", "--before", "2026-W49-2"), "--before must be a day as YYYY-MM-DD"),
        (("events", "prune", "--before", "2999-01-01"), "that would drop events still arriving"),
    ]:
        code, _, err = await run_flagd(*args, database_url=database_url)
        assert code == 1
        assert message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("events", "tail", "--since", "nan"), "argument --since: must be a number of seconds from 0 to"),
        (("events", "tail", "--since", "inf"), "argument --since"),
        (("events", "tail", "--since", "1e12"), "argument --since"),
        (("events", "tail", "--since", "-1"), "argument --since"),
        (("events", "tail", "--since", "\u0661\u0660"), "argument --since"),
        (
            ("events", "tail", "--seconds", "nan"),
            "argument --seconds: must be a number of seconds more than 0",
        ),
        (("events", "tail", "--seconds", "0"), "argument --seconds"),
        (("events", "tail", "--seconds", "1e400"), "argument --seconds"),
        (("events", "tail", "--limit", "0"), "argument --limit: must be a whole number from 1 to"),
        (("events", "tail", "--limit", "1.5"), "argument --limit"),
        (("events", "tail", "--limit", "1_000"), "argument --limit"),
        (("keys", "revoke", "0"), "argument id: must be a whole number from 1 to 9223372036854775807"),
        (("keys", "revoke", "99999999999999999999"), "argument id"),
        (("keys", "revoke", "\u0661"), "argument id"),
    ],
)
def test_should_refuse_cli_numbers_out_of_range_as_usage_errors(args: tuple[str, ...], message: str) -> None:
    # Refused while parsing, before any database is touched (this one does not exist).
    done = flagd(*args, database_url="postgresql://flagd@127.0.0.1:1/none")
    assert done.returncode == 2, done.stderr
    assert f"flagd: error: {message}" in done.stderr
    assert "Traceback" not in done.stderr


def hostile(text: str) -> str:
    """Terminal control in client text: clear the screen, set the window title, CR, a forged line, C1 CSI."""
    return f"\x1b[2J\x1b]0;owned\x07{text}\r\n2026-12-01T00:00:00.000Z  track     forged\x9b31m\u202e"


def assert_terminal_safe(out: str) -> None:
    assert out.endswith("\n")
    assert out[:-1].isprintable(), repr(out)  # no ESC, BEL, CR, LF, C1 or bidi control but the line's end


async def test_should_escape_what_clients_sent_when_tailing(
    sdk: httpx.AsyncClient, database_url: str
) -> None:
    event = track(hostile("unit"), properties={"v": hostile("property")})
    assert (await post(sdk, [event])).status_code == 200
    code, out, err = await run_flagd(
        "events", "tail", "--since", "60", "--limit", "1", database_url=database_url
    )
    assert code == 0, err
    assert_terminal_safe(out)
    assert "unit=\\x1b[2J\\x1b]0;owned\\x07unit\\r\\n2026-12-01T00:00:00.000Z" in out
    assert "\\u001b[2J" in out  # the properties, as the JSON they are
    code, out, err = await run_flagd(
        "events", "tail", "--since", "60", "--limit", "1", "--json", database_url=database_url
    )
    assert code == 0, err
    assert_terminal_safe(out)
    line = orjson.loads(out)
    assert (line["unit"], line["properties"]) == (event["unit"], event["properties"])


def test_should_escape_an_exposure_line_and_its_variant() -> None:
    at = datetime(2026, 12, 1, 18, 5, 19, tzinfo=UTC)
    row = StoredEvent(
        "exposure",
        str(uuid.UUID(int=1)),
        at,
        at,
        "checkout",
        hostile("unit"),
        '{"a": "\x9b"}',
        None,
        1,
        "\x1b[31mred",
        "client",
    )
    for as_json in (False, True):
        assert_terminal_safe(_line(row, as_json) + "\n")
    text = _line(row, False)
    assert "variant=\\x1b[31mred  [client]" in text
    assert text.endswith('{"a": "\\u009b"}')
    assert orjson.loads(_line(row, True))["variant"] == "\x1b[31mred"


async def test_should_prune_whole_days_but_not_under_a_running_experiment(
    sdk: httpx.AsyncClient, admin: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str
) -> None:
    old, recent = track(timestamp=now_text(-timedelta(days=10))), track()
    assert (
        await post(sdk, [old, recent, exposure(timestamp=now_text(-timedelta(days=9)))])
    ).status_code == 200
    document = {
        "flags": {"f": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a"}},
        "experiments": {"e": {"flag": "f", "variants": {"a": 1, "b": 1}}},
    }
    assert (await admin.put("/v1/admin/flag-set", json=document)).status_code == 200
    assert (await admin.post("/v1/admin/experiments/e/start")).status_code == 200
    await conn.execute("UPDATE experiments SET phase_started_at = now() - interval '3 days'")
    today = datetime.now(UTC).date()
    code, _, err = await run_flagd("events", "prune", "--before", str(today), database_url=database_url)
    assert code == 1
    assert "running experiments would lose data they analyse: e" in err
    code, _, err = await run_flagd(
        "events", "prune", "--before", str(today - timedelta(days=5)), database_url=database_url
    )
    assert code == 0, err
    assert "dropped" in err
    assert "1 exposures" in err
    assert [str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM events")] == [
        recent["event_id"]
    ]
    assert await conn.fetchval("SELECT count(*) FROM exposures") == 0


async def test_should_create_a_key_whose_evaluations_record_no_exposures(
    database_url: str, conn: asyncpg.Connection
) -> None:
    code, out, err = await run_flagd(
        "keys",
        "create",
        "--scope",
        "sdk",
        "--name",
        "own-exposures",
        "--no-server-exposures",
        database_url=database_url,
    )
    assert code == 0, err
    prefix = out.strip().split("_")[1]
    assert await conn.fetchval("SELECT server_exposures FROM api_keys WHERE prefix = $1", prefix) is False
