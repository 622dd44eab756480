"""Flags as code: `flagd apply FILE` makes the server's flags equal to a file; `flagd export` writes them out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from flagd.cli.common import CommandError, cli_actor, database_options, with_connection
from flagd.config.plan import Plan
from flagd.config.repository import ConfigRepository
from flagd.config.service import FlagService
from flagd.jsonio import MAX_DOCUMENT_NODES, count_nodes
from flagd.settings import Settings
from flagd.text import escape_json


def register(commands: Any) -> None:
    apply = commands.add_parser(
        "apply",
        help="make the server's flags equal to a flags file (JSON or YAML)",
        description="Create and update the flags, $evaluators and metadata of FILE, in one transaction. "
        "With --prune, also delete what FILE does not define. Applying the same file twice changes nothing.",
    )
    apply.add_argument(
        "file",
        help="flagd flag-definition file: JSON (*.json) or YAML (anything else); - reads standard input",
    )
    apply.add_argument(
        "--prune", action="store_true", help="delete flags and evaluators that FILE does not define"
    )
    apply.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    apply.add_argument("--actor", help="who to name in the audit log (default: cli:<user>@<host>)")
    database_options(apply)
    apply.set_defaults(command=apply_file)

    export = commands.add_parser("export", help="write the server's flags in the flagd definition format")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.add_argument("--format", choices=["json", "yaml"], help="default: from the file name, else json")
    database_options(export)
    export.set_defaults(command=export_file)


def read_document(source: str) -> Any:
    """The document in a flags file: JSON for *.json, YAML (a superset of JSON) for the rest and stdin."""
    if source == "-":
        text, name = sys.stdin.read(), "<stdin>"
    else:
        path = Path(source)
        try:
            text, name = path.read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise CommandError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise CommandError(f"{source}: is a directory; give a flags file") from None
        except UnicodeDecodeError:
            raise CommandError(f"{source}: is not UTF-8 text") from None
        except OSError as exc:
            raise CommandError(f"{source}: cannot be read ({exc.strerror})") from None
    try:
        document = _parse_json(text, name) if name.lower().endswith(".json") else _parse_yaml(text, name)
    except RecursionError:
        raise CommandError(f"{name}: the document is nested too deeply") from None
    # YAML aliases can make a small file stand for a huge document: refuse it before walking it.
    if count_nodes(document, MAX_DOCUMENT_NODES) > MAX_DOCUMENT_NODES:
        raise CommandError(f"{name}: the document has more than {MAX_DOCUMENT_NODES} values; split it")
    return document


def _parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


def _parse_yaml(text: str, name: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "it cannot be parsed"
        raise CommandError(f"{name} is not valid YAML: {problem}{where}") from None


def apply_file(settings: Settings, args: argparse.Namespace) -> int:
    document = read_document(args.file)

    async def work(conn: asyncpg.Connection) -> tuple[Plan, int]:
        return await FlagService(conn, cli_actor(args)).apply(
            document, prune=args.prune, dry_run=args.dry_run
        )

    plan, version = with_connection(settings, work)
    for change in plan.changes:
        # A diff of JSON lines (keys are ASCII by rule): printed with every invisible character escaped.
        for line in change.render().splitlines():
            print(escape_json(line))
    counts = plan.counts()
    summary = f"{counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete"
    if args.dry_run:
        print(f"dry run: {summary}; nothing was changed (config version {version})", file=sys.stderr)
    elif plan.changes:
        print(f"applied: {summary.replace('to ', '')}; config version is now {version}", file=sys.stderr)
    else:
        print(f"nothing to change; config version is {version}", file=sys.stderr)
    return 0


def export_file(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        return (await ConfigRepository(conn).load()).document()

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
