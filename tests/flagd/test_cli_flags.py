"""`flagd keys`, `flagd apply` and `flagd export`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from flagd.auth.keys import Scope
from tests.support import TIMEOUT, LiveServer, bearer, create_key, flag_definition, flagd_env


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
    async with httpx.AsyncClient(timeout=TIMEOUT, base_url=server.url) as http:
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
    # two flags and one evaluator to create; the flag-set metadata to update: one line each
    assert dry.stdout.splitlines() == [
        "+ flag beta",
        "+ flag limit",
        "+ evaluator staff",
        "~ flag-set metadata: flagSetId (none) → shop",
    ]
    assert (
        dry.stderr
        == "dry run: 3 to create, 1 to update, 0 to delete; nothing was changed (config version 0)\n"
    )
    assert applied.stdout == dry.stdout
    assert applied.stderr == "3 created, 1 updated, 0 deleted (config version 1)\n"
    assert (again.stdout, again.stderr) == ("= nothing to change\n", "nothing to change (config version 1)\n")
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
    assert merged.stdout.splitlines() == ["~ flag limit: defaultVariant low → high"]
    assert pruned.stdout.splitlines() == [
        "~ flag limit: defaultVariant low → high",
        "- flag beta",
        "- evaluator staff",
        "~ flag-set metadata: flagSetId shop → (none)",
    ]
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


YAML_MISTAKES = [
    (
        "flags:\n  beta:\n    state ENABLED\n    defaultVariant: on\n",
        'line 3, column 5: a key is missing its colon (":")',
        ["    3 |     state ENABLED", "      |     ^"],
    ),
    (
        "flags:\n  beta:\n    state: ENABLED\n    defaultVariant on\n",
        'line 4, column 5: a key is missing its colon (":")',
        ["    4 |     defaultVariant on", "      |     ^"],
    ),
    (
        "flags:\n  beta:\n    variants:\n        on: true\n      off: false\n",
        "line 5, column 7: this line is not indented like the lines around it: line it up with the keys "
        "(or the list items) it belongs with",
        ["    5 |       off: false", "      |       ^"],
    ),
    (
        "flags:\n  beta:\n    state: ENABLED\n     defaultVariant: on\n",
        "line 4, column 6: this line is indented more than the line above it (line 3), so it reads as the "
        "rest of that line's value: line it up with that line's key, or quote the value",
        ["    4 |      defaultVariant: on", "      |      ^"],
    ),
    (
        "flags:\n\tbeta: {}\n",
        "line 2, column 1: a tab: YAML is indented with spaces only; replace the tab with spaces",
        ["    2 | \\tbeta: {}", "      | ^"],
    ),
    (
        'flags:\n  beta:\n    state: "ENABLED\n    defaultVariant: on\n',
        'line 3, column 12: this quoted text is never closed: add its closing quote (")',
        ['    3 |     state: "ENABLED', "      |            ^"],
    ),
    (
        "flags: [unclosed",
        'line 1, column 8: this "[" opens a list that is not closed where it should be: add its "]" '
        '(or the "," missing between two of its entries)',
        ["    1 | flags: [unclosed", "      |        ^"],
    ),
    (
        "flags:\n  beta: {}\n  limit: {}\n  beta: {}\n",
        'line 4, column 3: the key "beta" is given twice in this mapping (first on line 2); keep one',
        ["    4 |   beta: {}", "      |   ^"],
    ),
    (
        "flags:\n  beta:\n    description: a: b\n",
        'line 3, column 19: a value cannot hold ": " unless it is quoted: quote it, or put the mapping on '
        "its own lines",
        ["    3 |     description: a: b", "      |                   ^"],
    ),
    (
        "flags:\n  \x1b]0;x\x07: {}\n",
        "line 2, column 3: \\x1b is not allowed in YAML (a control character); remove it, or write it as "
        "an escape in a quoted string",
        ["    2 |   \\x1b]0;x\\x07: {}", "      |   ^"],
    ),
]


@pytest.mark.parametrize(
    ("text", "problem", "excerpt"),
    YAML_MISTAKES,
    ids=[
        "missing-colon",
        "missing-colon-last",
        "bad-indentation",
        "indented-under-a-value",
        "tab",
        "unclosed-quote",
        "unclosed-bracket",
        "duplicate-key",
        "colon-in-a-value",
        "control-character",
    ],
)
def test_should_say_a_yaml_mistake_in_plain_words_at_its_line_with_a_caret(
    database_url: str, tmp_path: Path, text: str, problem: str, excerpt: list[str]
) -> None:
    source = tmp_path / "flags.yaml"
    source.write_text(text)
    result = flagd("apply", str(source), database_url=database_url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"flagd: error: {source} {problem}", *excerpt]


def test_should_locate_a_json_syntax_error_with_a_caret_and_a_missing_file(
    database_url: str, tmp_path: Path
) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{\n  "flags": {,}\n}')
    json_result = flagd("apply", str(bad_json), database_url=database_url)
    missing = flagd("apply", str(tmp_path / "nope.json"), database_url=database_url)
    assert json_result.returncode == missing.returncode == 1
    assert json_result.stderr.splitlines() == [
        f"flagd: error: {bad_json} line 2, column 13: this is not valid JSON: "
        "Expecting property name enclosed in double quotes",
        '    2 |   "flags": {,}',
        "      |             ^",
    ]
    assert missing.stderr.strip().endswith("nope.json: no such file")


def test_should_print_a_bounded_human_diff_and_json_when_asked(database_url: str, tmp_path: Path) -> None:
    big = {"if": [{"in": [{"var": "email"}, [f"user{i}@example.com" for i in range(200)]]}, "on", "off"]}
    first = {"flags": {"beta": flag_definition(targeting=big), "gone": flag_definition()}}
    changed = json.loads(json.dumps(first))
    changed["flags"]["beta"]["targeting"]["if"][0]["in"][1][7] = "ana\x1b[2J@example.com"
    changed["flags"]["beta"]["defaultVariant"] = "on"
    del changed["flags"]["gone"]
    source = tmp_path / "flags.json"
    source.write_text(json.dumps(first))
    flagd("apply", str(source), database_url=database_url)
    source.write_text(json.dumps(changed))
    human = flagd("apply", str(source), "--dry-run", "--prune", database_url=database_url)
    as_json = flagd("apply", str(source), "--dry-run", "--prune", "--json", database_url=database_url)
    assert human.returncode == as_json.returncode == 0, human.stderr
    assert human.stdout.splitlines() == [
        "~ flag beta: defaultVariant off → on; targeting.if[0].in[1][7] user7@example.com → "
        "ana\\x1b[2J@example.com",
        "- flag gone",
    ]
    result = json.loads(as_json.stdout)
    assert (result["dryRun"], result["counts"]) == (True, {"create": 0, "update": 1, "delete": 1})
    assert [(c["entity"], c["key"], c["action"]) for c in result["changes"]] == [
        ("flag", "beta", "update"),
        ("flag", "gone", "delete"),
    ]
    assert "\\u001b[2J" in as_json.stdout


def test_should_read_a_json_file_as_json_only(database_url: str, tmp_path: Path) -> None:
    # Valid YAML, not JSON: a .json file that only YAML accepts is a mistake worth reporting.
    yamlish = tmp_path / "flags.json"
    yamlish.write_text("flags: {}\n")
    result = flagd("apply", str(yamlish), database_url=database_url)
    assert result.returncode == 1
    assert "flags.json line 1, column 1: this is not valid JSON: Expecting value" in result.stderr


def test_should_read_standard_input_and_write_yaml(database_url: str, tmp_path: Path) -> None:
    applied = flagd("apply", "-", database_url=database_url, stdin=json.dumps(DOCUMENT))
    target = tmp_path / "out.yaml"
    exported = flagd("export", "-o", str(target), database_url=database_url)
    assert applied.returncode == 0, applied.stderr
    assert "wrote 2 flag(s)" in exported.stderr
    assert yaml.safe_load(target.read_text()) == DOCUMENT
