"""Reading a flags file (JSON or YAML) for `flagd apply` and `flagd experiments new-phase --file`.

A syntax mistake is reported in plain words at the line and column where it is (1-based), with
that line quoted and a caret under the column:

    flagd: error: flags.yaml line 3, column 5: a key is missing its colon (":")
        3 |     state ENABLED
          |     ^

PyYAML's own wording ("expected <block end>, but found '<block mapping start>'") is translated,
and where it points past the mistake (a missing colon is noticed a line late, an unclosed
quote at the end of the file) the location is moved back to the mistake. A key given twice in
one YAML mapping is refused too (PyYAML would keep the last silently).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode
from yaml.reader import ReaderError

from flagd.cli.common import CommandError
from flagd.jsonio import MAX_DOCUMENT_NODES, count_nodes
from flagd.text import escape

EXCERPT_WIDTH = 100
"""The most characters of a line quoted under an error; longer lines are cut around the column."""

# YAML breaks lines at these (PyYAML counts its marks' lines the same way); str.splitlines() knows more.
_YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


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


@dataclass(frozen=True, slots=True)
class Location:
    line: int
    """0-based, as PyYAML counts."""
    column: int
    """0-based, in characters."""


def syntax_error(name: str, lines: list[str], where: Location | None, problem: str) -> CommandError:
    """`name line L, column C: problem`, with the line quoted and a caret under the column."""
    if where is None or not 0 <= where.line < len(lines):
        return CommandError(f"{name}: {problem}")
    return CommandError(
        f"{name} line {where.line + 1}, column {where.column + 1}: {problem}",
        excerpt=_excerpt(lines[where.line], where.line + 1, where.column),
    )


def _excerpt(line: str, number: int, column: int) -> tuple[str, str]:
    start = max(0, min(column - EXCERPT_WIDTH // 2, len(line) - EXCERPT_WIDTH))
    shown = line[start : start + EXCERPT_WIDTH]
    before = escape(line[start:column])  # escapes widen the text: the caret goes under the escaped column
    text = ("…" if start else "") + escape(shown) + ("…" if start + EXCERPT_WIDTH < len(line) else "")
    gutter = f"{number:>5} | "
    return gutter + text, " " * (len(gutter) - 2) + "| " + ("…" if start else "") + " " * len(before) + "^"


def _parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        lines = text.split("\n")  # json counts lines by "\n" only
        where = Location(exc.lineno - 1, exc.colno - 1)
        raise syntax_error(name, lines, where, f"this is not valid JSON: {exc.msg}") from None


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, ScalarNode] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merge keys (<<) may be overridden; complex keys are refused elsewhere
            key = self.construct_object(key_node)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise ConstructorError(None, None, f"duplicate:{first}:{key_node.value}", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, name: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as exc:
        lines = _YAML_LINE_BREAK.split(text)
        where, problem = explain(exc, lines)
        raise syntax_error(name, lines, where, problem) from None
    except ReaderError as exc:  # a character YAML does not allow, such as a control character
        lines = _YAML_LINE_BREAK.split(text)
        before = _YAML_LINE_BREAK.split(text[: exc.position])
        where = Location(len(before) - 1, len(before[-1]))
        shown = escape(chr(exc.character)) if isinstance(exc.character, int) else "a character"
        problem = f"{shown} is not allowed in YAML (a control character); remove it, or write it as an escape in a quoted string"
        raise syntax_error(name, lines, where, problem) from None
    except yaml.YAMLError as exc:
        raise CommandError(f"{name}: this is not valid YAML ({escape(str(exc))})") from None


def explain(exc: yaml.MarkedYAMLError, lines: list[str]) -> tuple[Location | None, str]:
    """Where the mistake PyYAML found is, and what it is, in plain words."""
    problem, context = exc.problem or "", exc.context or ""
    at = _location(exc.problem_mark)
    opened = _location(exc.context_mark)
    if problem.startswith("duplicate:"):
        _, first, key = problem.split(":", 2)
        return at, f'the key "{key}" is given twice in this mapping (first on line {first}); keep one'
    if problem == "could not find expected ':'" and opened is not None:
        return opened, 'a key is missing its colon (":")'
    if problem == "mapping values are not allowed here" and at is not None:
        return _misplaced_colon(at, lines)
    if "that cannot start any token" in problem and "\\t" in problem:
        return at, "a tab: YAML is indented with spaces only; replace the tab with spaces"
    if context == "while scanning a quoted scalar" and opened is not None:
        quote = _char(lines, opened)
        return opened, f"this quoted text is never closed: add its closing quote ({quote})"
    if context in ("while parsing a flow sequence", "while parsing a flow mapping") and opened is not None:
        kind, close = ("list", "]") if context.endswith("sequence") else ("mapping", "}")
        return opened, (
            f'this "{_char(lines, opened)}" opens a {kind} that is not closed where it should be: add its '
            f'"{close}" (or the "," missing between two of its entries)'
        )
    if problem.startswith("expected <block end>") or context.startswith("while parsing a block"):
        return at, (
            "this line is not indented like the lines around it: line it up with the keys (or the list "
            "items) it belongs with"
        )
    if context == "expected a single document in the stream":
        return at, 'a second YAML document starts here ("---"); a flags file holds one'
    if problem.startswith("found undefined alias"):
        return at, "this alias (*name) refers to no anchor (&name) defined before it"
    if "while scanning" in context and problem == "found unexpected end of stream":
        return opened or at, "the file ends in the middle of this value"
    return at, f"this is not valid YAML: {problem or context or 'it cannot be parsed'}"


def _misplaced_colon(at: Location, lines: list[str]) -> tuple[Location, str]:
    """PyYAML's "mapping values are not allowed here": a colon where a key cannot start. Either the line
    before lacks its colon (and this line reads as the rest of its text), or this line is indented under
    a `key: value`, or a value holds ": " unquoted."""
    line = lines[at.line]
    indent = len(line) - len(line.lstrip(" "))
    if line[indent : at.column].find(": ") >= 0 or line[indent : at.column].rstrip().endswith(":"):
        return (
            at,
            'a value cannot hold ": " unless it is quoted: quote it, or put the mapping on its own lines',
        )
    previous = _previous_content_line(lines, at.line)
    if previous is not None and indent > 0:
        text = lines[previous]
        start = len(text) - len(text.lstrip(" "))
        if ":" not in text and not text.lstrip().startswith(("-", "#")):
            return Location(previous, start), 'a key is missing its colon (":")'
        if indent > start:
            return Location(at.line, indent), (
                f"this line is indented more than the line above it (line {previous + 1}), so it reads as "
                "the rest of that line's value: line it up with that line's key, or quote the value"
            )
    return at, 'a colon (":") cannot be here: quote the value that holds it, or check the indentation'


def _previous_content_line(lines: list[str], number: int) -> int | None:
    for index in range(number - 1, -1, -1):
        stripped = lines[index].strip()
        if stripped and not stripped.startswith("#"):
            return index
    return None


def _location(mark: Any) -> Location | None:
    return None if mark is None else Location(mark.line, mark.column)


def _char(lines: list[str], where: Location) -> str:
    line = lines[where.line] if where.line < len(lines) else ""
    return escape(line[where.column]) if where.column < len(line) else "?"
