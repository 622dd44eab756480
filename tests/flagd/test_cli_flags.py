"""`flagd keys`, `flagd apply` and `flagd export`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from flagd.auth.keys import Scope
from tests.support import LiveServer, bearer, create_key, flag_definition, flagd_env


def flagd(*args: str, database_url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flagd", *args, "--database-url", database_url],
        env=flagd_env(),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


DOCUMENT: dict[str, Any] = {
    "flags": {
        "beta": flag_definition(targeting={"if": [{"$ref": "staff"}, "on", "off"]}),
        "limit": {"state": "ENABLED", "variants": {"low": 1, "high": 2.5}, "defaultVariant": "low"},
    },
    "$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@example.com"]}},
    "metadata": {"flagSetId": "shop"},
}


async def test_should_create_a_key_that_the_server_accepts_and_list_it(
    database_url: str, server: LiveServer
) -> None:
    created = flagd("keys", "create", "--scope", "sdk", "--name", "web shop", database_url=database_url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("flagd_")
    assert "only time it is shown" in created.stderr
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/v1/flags", headers=bearer(token))).status_code == 200
    listed = flagd("keys", "list", database_url=database_url)
    assert "web shop" in listed.stdout
    secret = token[len("flagd_0123456789_") :]  # the secret itself may contain "_"
    assert len(secret) == 43
    assert secret not in listed.stdout  # the secret never appears again


def test_should_name_a_key_with_a_positional_name_as_the_login_page_says(database_url: str) -> None:
    login_page = (Path(__file__).resolve().parents[2] / "flagd/web/templates/login.html").read_text()
    assert "<code>flagd keys create --scope results NAME</code>" in login_page
    positional = flagd("keys", "create", "--scope", "results", "product team", database_url=database_url)
    both_alike = flagd("keys", "create", "--scope", "sdk", "web", "--name", "web", database_url=database_url)
    listed = flagd("keys", "list", database_url=database_url)
    assert positional.returncode == both_alike.returncode == listed.returncode == 0, positional.stderr
    rows = listed.stdout.splitlines()[1:]
    assert len(rows) == 2
    assert [(row.split()[1], row.split("-  ")[-1].strip()) for row in rows] == [
        ("results", "product team"),
        ("sdk", "web"),
    ]


def test_should_refuse_two_different_names_for_a_key_as_a_usage_error(database_url: str) -> None:
    result = flagd("keys", "create", "--scope", "results", "pm", "--name", "ops", database_url=database_url)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        'flagd: error: the key\'s name is given twice, as "pm" and "ops"; give it once, as NAME'
    )
    listed = flagd("keys", "list", database_url=database_url)
    assert len(listed.stdout.splitlines()) == 1  # the header: no key was created


async def test_should_list_keys_with_their_names_escaped(database_url: str) -> None:
    await create_key(database_url, Scope.SDK, "shop\x1b[2J\x1b]0;title\x07\r\nforged line\x9b")
    listed = flagd("keys", "list", database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.replace("\n", "").isprintable(), repr(listed.stdout)
    assert len(listed.stdout.splitlines()) == 2  # the header and the one key
    assert "shop\\x1b[2J\\x1b]0;title\\x07\\r\\nforged line\\x9b" in listed.stdout


async def test_should_revoke_a_key_and_audit_it(database_url: str) -> None:
    flagd("keys", "create", "--scope", "admin", database_url=database_url)
    revoked = flagd("keys", "revoke", "1", "--actor", "alice", database_url=database_url)
    missing = flagd("keys", "revoke", "99", database_url=database_url)
    assert revoked.returncode == 0, revoked.stderr
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "flagd: error: there is no key with id 99; `flagd keys list` shows the ids",
    )
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT actor, action FROM audit_log WHERE entity = 'api_key' ORDER BY id")
    finally:
        await conn.close()
    assert [(r["actor"], r["action"]) for r in rows][-1] == ("alice", "update")


def test_should_refuse_an_unknown_scope() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flagd", "keys", "create", "--scope", "root"],
        capture_output=True,
        text=True,
        env=flagd_env(),
    )
    assert result.returncode == 2
    assert "invalid choice: 'root'" in result.stderr


def test_should_apply_a_yaml_file_idempotently_and_export_it_back(database_url: str, tmp_path: Path) -> None:
    source = tmp_path / "flags.yaml"
    source.write_text(yaml.safe_dump(DOCUMENT, sort_keys=False))
    dry = flagd("apply", str(source), "--dry-run", database_url=database_url)
    applied = flagd("apply", str(source), database_url=database_url)
    again = flagd("apply", str(source), database_url=database_url)
    exported = flagd("export", database_url=database_url)
    assert dry.returncode == applied.returncode == again.returncode == exported.returncode == 0
    assert "+ flag beta" in dry.stdout
    # two flags and one evaluator to create; the flag-set metadata to update
    assert "dry run: 3 to create, 1 to update, 0 to delete; nothing was changed" in dry.stderr
    assert "applied: 3 create, 1 update, 0 delete; config version is now 1" in applied.stderr
    assert "nothing to change; config version is 1" in again.stderr
    assert json.loads(exported.stdout) == DOCUMENT
    assert '"high": 2.5' in exported.stdout


def test_should_show_a_diff_and_prune_only_when_asked(database_url: str, tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(DOCUMENT))
    changed = {
        "flags": {
            "limit": {"state": "ENABLED", "variants": {"low": 1, "high": 2.5}, "defaultVariant": "high"}
        }
    }
    second.write_text(json.dumps(changed))
    flagd("apply", str(first), database_url=database_url)
    merged = flagd("apply", str(second), "--dry-run", database_url=database_url)
    pruned = flagd("apply", str(second), "--prune", database_url=database_url)
    exported = flagd("export", database_url=database_url)
    assert "~ flag limit" in merged.stdout
    assert '-  "defaultVariant": "low"' in merged.stdout.replace("    ", "")
    assert "- flag beta" not in merged.stdout
    assert "- flag beta" in pruned.stdout
    assert "- evaluator staff" in pruned.stdout
    assert json.loads(exported.stdout) == changed


def test_should_refuse_an_invalid_file_with_located_problems_and_change_nothing(
    database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"flags": {"x": flag_definition(defaultVariant="maybe", state="ON")}}))
    result = flagd("apply", str(bad), database_url=database_url)
    exported = flagd("export", database_url=database_url)
    assert result.returncode == 1
    # one line per problem: the message's own quote of the first problem is not printed again
    first, *problems = result.stderr.splitlines()
    assert first == "flagd: error: the change would leave the flag set with 2 problems:"
    assert [line.split(": ")[0] for line in problems] == ["  flags.x.state", "  flags.x.defaultVariant"]
    assert '  flags.x.defaultVariant: "maybe" is not one of the variants (on, off)' in problems
    assert json.loads(exported.stdout) == {"flags": {}}


def test_should_print_a_single_problem_once(database_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"flags": {"x": flag_definition(defaultVariant="maybe")}}))
    result = flagd("apply", str(bad), database_url=database_url)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "flagd: error: the change would leave the flag set with 1 problem: "
        'flags.x.defaultVariant: "maybe" is not one of the variants (on, off)'
    ]


def test_should_locate_a_syntax_error_in_yaml_and_in_json(database_url: str, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("flags: [unclosed")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{\n  "flags": {,}\n}')
    yaml_result = flagd("apply", str(bad_yaml), database_url=database_url)
    json_result = flagd("apply", str(bad_json), database_url=database_url)
    missing = flagd("apply", str(tmp_path / "nope.json"), database_url=database_url)
    assert yaml_result.returncode == json_result.returncode == 1
    assert "bad.yaml is not valid YAML:" in yaml_result.stderr
    assert "at line 1, column 17" in yaml_result.stderr
    assert (
        "bad.json is not valid JSON: Expecting property name enclosed in double quotes at line 2, column 13"
        in (json_result.stderr)
    )
    assert "YAML" not in json_result.stderr
    assert missing.stderr.strip().endswith("nope.json: no such file")


def test_should_read_a_json_file_as_json_only(database_url: str, tmp_path: Path) -> None:
    # Valid YAML, not JSON: a .json file that only YAML accepts is a mistake worth reporting.
    yamlish = tmp_path / "flags.json"
    yamlish.write_text("flags: {}\n")
    result = flagd("apply", str(yamlish), database_url=database_url)
    assert result.returncode == 1
    assert "flags.json is not valid JSON" in result.stderr


def test_should_read_standard_input_and_write_yaml(database_url: str, tmp_path: Path) -> None:
    applied = flagd("apply", "-", database_url=database_url, stdin=json.dumps(DOCUMENT))
    target = tmp_path / "out.yaml"
    exported = flagd("export", "-o", str(target), database_url=database_url)
    assert applied.returncode == 0, applied.stderr
    assert "wrote 2 flag(s)" in exported.stderr
    assert yaml.safe_load(target.read_text()) == DOCUMENT
