"""`flagd schedules create|list|cancel`, run in process (each child process would cost a second): checked
and recorded as the API does, mistakes said in one line with nothing written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from flagd.cli import main


def flagd(*args: str, database_url: str) -> int:
    return main(["schedules", *args, "--database-url", database_url])


async def _flag(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO flags (key, definition) VALUES ('banner', $1::text::json)",
            '{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}',
        )
    finally:
        await conn.close()


async def _rows(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT id, action, status, flag_version, definition::text FROM schedules ORDER BY id"
        )
    finally:
        await conn.close()


def test_should_create_list_and_cancel_schedules(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_flag(database_url))
    flags = tmp_path / "flags.yaml"
    flags.write_text(
        'flags:\n  banner: {state: ENABLED, variants: {"on": true, "off": false}, defaultVariant: "on"}\n'
    )
    assert (
        flagd(
            "create",
            "update_flag",
            "banner",
            "--at",
            "2036-01-01T09:00:00Z",
            "--file",
            str(flags),
            database_url=database_url,
        )
        == 0
    )
    created = capsys.readouterr()
    assert created.out.strip() == "1"
    assert "schedule 1: update_flag banner at 2036-01-01T09:00:00+00:00" in created.err
    assert (
        flagd(
            "create",
            "disable_flag",
            "banner",
            "--at",
            "2026-01-01T00:00:00+01:00",
            "--allow-past",
            database_url=database_url,
        )
        == 0
    )
    capsys.readouterr()

    assert flagd("list", database_url=database_url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "status", "due", "action", "target"]
    assert [line.split()[:2] + line.split()[3:] for line in lines[1:]] == [
        ["2", "pending", "disable_flag", "banner"],
        ["1", "pending", "update_flag", "banner"],
    ]
    assert flagd("cancel", "1", database_url=database_url) == 0
    assert "schedule 1 is cancelled" in capsys.readouterr().err
    assert flagd("cancel", "1", database_url=database_url) == 1
    assert "schedule 1 is cancelled, not pending" in capsys.readouterr().err
    rows = asyncio.run(_rows(database_url))
    assert [(r["id"], r["status"], r["flag_version"]) for r in rows] == [
        (1, "cancelled", 1),
        (2, "pending", None),
    ]
    assert '"defaultVariant":"on"' in rows[0]["definition"].replace(" ", "")


MISTAKES = [
    (["create", "enable_flag", "banner", "--at", "tomorrow"], "dueAt must be a time in RFC 3339"),
    (["create", "enable_flag", "banner", "--at", "2026-01-01T00:00:00Z"], "is in the past"),
    (["create", "enable_flag", "nothing", "--at", "2036-01-01T00:00:00Z"], 'flag "nothing" does not exist'),
    (
        ["create", "enable_flag", "banner", "--at", "2036-01-01T00:00:00Z", "--file", "x.yaml"],
        "only update_flag takes --file",
    ),
    (["create", "update_flag", "banner", "--at", "2036-01-01T00:00:00Z"], "update_flag needs definition"),
    (["cancel", "7"], "schedule 7 does not exist"),
]


def test_should_refuse_bad_schedules_in_one_line_and_write_nothing(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_flag(database_url))
    for args, message in MISTAKES:
        assert flagd(*args, database_url=database_url) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("flagd: error: "), err
        assert message in err, err
        assert len(err.splitlines()) == 1, err
    assert asyncio.run(_rows(database_url)) == []


def test_should_refuse_an_unknown_action_as_a_usage_error(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        flagd("create", "delete_flag", "banner", "--at", "2036-01-01T00:00:00Z", database_url=database_url)
    assert exited.value.code == 2
    assert "invalid choice: 'delete_flag'" in capsys.readouterr().err
