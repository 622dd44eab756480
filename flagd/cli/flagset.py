"""Flags as code: `flagd apply FILE` makes the server's flags equal to a file; `flagd export` writes them out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from flagd.cli import diff
from flagd.cli.common import cli_actor, database_options, with_connection
from flagd.cli.documents import read_document
from flagd.config.plan import Plan
from flagd.config.service import exported_document
from flagd.config.whole_file import apply_whole_file
from flagd.settings import Settings
from flagd.text import escape_json


def register(commands: Any) -> None:
    apply = commands.add_parser(
        "apply",
        help="make the server's flags equal to a flags file (JSON or YAML)",
        description="Create and update the flags, $evaluators, metadata and the sections of FILE (metrics, "
        "layers, experiments, events, webhooks; rollouts are started), in one transaction. With --prune, also "
        "delete what FILE does not define in the sections it has. Applying the same file twice changes nothing.",
    )
    apply.add_argument(
        "file",
        help="flagd flag-definition file: JSON (*.json) or YAML (anything else); - reads standard input",
    )
    apply.add_argument(
        "--prune",
        action="store_true",
        help="delete flags, evaluators and the entries of FILE's sections that FILE does not define",
    )
    apply.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    apply.add_argument(
        "--json", action="store_true", help="print the changes as JSON (as PUT /v1/admin/flag-set answers)"
    )
    apply.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
    database_options(apply)
    apply.set_defaults(command=apply_file)

    export = commands.add_parser("export", help="write the server's flags in the flagd definition format")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.add_argument("--format", choices=["json", "yaml"], help="default: from the file name, else json")
    database_options(export)
    export.set_defaults(command=export_file)


def apply_file(settings: Settings, args: argparse.Namespace) -> int:
    document = read_document(args.file)
    started: list[str] = []

    async def work(conn: asyncpg.Connection) -> tuple[Plan, int]:
        plan, version, said = await apply_whole_file(
            conn, cli_actor(args), document, prune=args.prune, dry_run=args.dry_run
        )
        started.extend(said)
        return plan, version

    plan, version = with_connection(settings, work)
    for text in started:
        print(escape_json(text), file=sys.stderr)
    if args.json:
        result = {
            "dryRun": args.dry_run,
            "configVersion": version,
            "counts": plan.counts(),
            "changes": [change.to_json() for change in plan.changes],
        }
        for text in json.dumps(result, indent=2, ensure_ascii=False).splitlines():
            print(escape_json(text))
        return 0
    for text in diff.render(plan.changes):
        print(text)
    counts = plan.counts()
    if args.dry_run:
        summary = f"{counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete"
        print(f"dry run: {summary}; nothing was changed (config version {version})", file=sys.stderr)
    elif plan.changes:
        summary = f"{counts['create']} created, {counts['update']} updated, {counts['delete']} deleted"
        print(f"{summary} (config version {version})", file=sys.stderr)
    else:
        print(f"nothing to change (config version {version})", file=sys.stderr)
    return 0


def export_file(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return await exported_document(conn)

    document = with_connection(settings, work)
    fmt = args.format or ("yaml" if args.output and args.output.endswith((".yaml", ".yml")) else "json")
    text = (
        yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        if fmt == "yaml"
        else json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    )
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(document['flags'])} flag(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
