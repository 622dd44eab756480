"""One list of error codes (flagd.error_codes): complete, used, documented, and agreeing with the OpenAPI.

The source of the flagd package is read as Python (ast): every code a raise site names (`code="..."`,
an f-string such as `code=f"{what}_exists"`, a class's `default_code`, a refusal's second argument, the
connection guard's `error_body`) must be registered, and every registered code must be named somewhere.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from flagd import error_codes, errors
from flagd.error_codes import ERRORS, EVENT_REFUSALS
from flagd.experiments.phases import REFUSALS
from flagd.routes.openapi import document

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "flagd"
CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# Calls that take a code as a positional argument, and its position.
POSITIONAL = {"Failure": 1, "Rejection": 1, "Invalid": 1, "FieldProblem": 1, "error_body": 0}
# What an f-string's placeholders stand for where codes are built (f"{what}_exists", f"invalid_{name}").
PLACEHOLDER = "[a-z]+"


def _pattern(node: ast.expr) -> str | None:
    """The code a node names, as a regular expression; None when it is not a code."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.fullmatch(node.value):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = [re.escape(str(v.value)) if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values]
        return "".join(parts)
    return None


def _named(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "code" and (found := _pattern(keyword.value)) is not None:
                    yield found, node.lineno
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            position = POSITIONAL.get(name)
            argument = node.args[position] if position is not None and len(node.args) > position else None
            if argument is not None and (found := _pattern(argument)) is not None:
                yield found, node.lineno
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            is_default = any(isinstance(t, ast.Name) and t.id == "default_code" for t in targets)
            if is_default and (found := _pattern(node.value)) is not None:
                yield found, node.lineno


def named_codes() -> dict[str, str]:
    """Every code pattern the package names, with where (file:line)."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "error_codes.py":
            continue
        for pattern, line in _named(ast.parse(path.read_text(encoding="utf-8"))):
            found.setdefault(pattern, f"{path.relative_to(ROOT)}:{line}")
    for refusal in REFUSALS:  # returned by flagd.experiments.phases.refusal as (code, message)
        found.setdefault(re.escape(refusal), "flagd/experiments/phases.py")
    return found


REGISTERED = {e.code for e in ERRORS} | {r.code for r in EVENT_REFUSALS}


def test_should_register_every_code_the_server_names() -> None:
    unregistered = [
        f"{where}: {pattern}"
        for pattern, where in named_codes().items()
        if not any(re.fullmatch(pattern, code) for code in REGISTERED)
    ]
    assert not unregistered, "register these codes in flagd/error_codes.py:\n" + "\n".join(unregistered)


def test_should_name_every_registered_code_somewhere() -> None:
    patterns = list(named_codes())
    unused = sorted(code for code in REGISTERED if not any(re.fullmatch(p, code) for p in patterns))
    assert not unused, f"registered in flagd/error_codes.py but answered nowhere: {unused}"


def test_should_list_each_code_once_with_a_sentence() -> None:
    for table in ([e.code for e in ERRORS], [r.code for r in EVENT_REFUSALS]):
        assert len(table) == len(set(table))
    for code, meaning in [(e.code, e.meaning) for e in ERRORS] + [
        (r.code, r.meaning) for r in EVENT_REFUSALS
    ]:
        assert meaning.endswith("."), code
        assert len(meaning) > 20, code


def test_should_give_each_default_code_the_status_of_its_class() -> None:
    classes: list[type[errors.FlagdError]] = [errors.FlagdError, *_subclasses(errors.FlagdError)]
    for cls in classes:
        assert error_codes.status_of(cls.default_code) == cls.default_status, cls.__name__
        assert error_codes.generic(cls.default_status) in {c.default_code for c in classes}


def _subclasses(cls: type[errors.FlagdError]) -> list[type[errors.FlagdError]]:
    return [s for c in cls.__subclasses__() for s in (c, *_subclasses(c))]


def test_should_keep_docs_errors_md_as_the_registry_renders_it() -> None:
    written = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert written == error_codes.markdown(), (
        "docs/errors.md differs from flagd/error_codes.py; regenerate it: .venv/bin/python -m flagd.reference --write"
    )


def test_should_register_every_code_the_openapi_document_names() -> None:
    spec = document()
    named = set()
    for response in spec["components"]["responses"].values():
        named |= set(re.findall(r"`([a-z]+(?:_[a-z0-9]+)+)`", str(response.get("description", ""))))
    assert named
    assert named <= REGISTERED, named - REGISTERED
