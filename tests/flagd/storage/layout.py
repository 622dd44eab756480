"""The checks of the Citus layout (flagd.storage.distribution), as functions of plain values, so the test can
feed them the migrated schema and the code's SQL and also synthetic cases they must refuse.

- `key_problems`: a primary key, unique constraint or unique index of a distributed table without its
  distribution column (Citus refuses to create the table).
- `foreign_key_problems`: a foreign key from a reference or local table to a distributed one, from a
  reference table to a non-reference one, or between distributed tables without the distribution column on
  both sides.
- `join_problems`: a join between two distributed relations (tables, or subqueries and CTEs that pass a
  distribution column through) without an equality of their distribution columns in its ON, USING or
  WHERE; a correlated subquery over a distributed table counts as a join with the query around it.
- `sql_in_code`: the SQL string constants and f-strings of the flagd package, found with `ast`.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from flagd.storage.distribution import Kind, Placement

Schema = Mapping[str, Sequence[str]]
"""Each table's columns, in order."""


# -- keys and foreign keys ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UniqueKey:
    table: str
    name: str
    columns: tuple[str, ...]
    """Its columns; an expression of an index is given as its text, which names no column."""


@dataclass(frozen=True, slots=True)
class ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    referenced: str
    referenced_columns: tuple[str, ...]


def _kind(placements: Mapping[str, Placement], table: str) -> Kind | None:
    found = placements.get(table)
    return found.kind if found is not None else None


def key_problems(keys: Iterable[UniqueKey], placements: Mapping[str, Placement]) -> list[str]:
    problems = []
    for key in keys:
        found = placements.get(key.table)
        if found is not None and found.kind is Kind.DISTRIBUTED and found.column not in key.columns:
            problems.append(
                f"{key.name} on {key.table} {key.columns} lacks the distribution column {found.column!r}: "
                "Citus refuses unique keys without it"
            )
    return problems


def foreign_key_problems(keys: Iterable[ForeignKey], placements: Mapping[str, Placement]) -> list[str]:
    problems = []
    for key in keys:
        source, target = _kind(placements, key.table), _kind(placements, key.referenced)
        if source is Kind.REFERENCE and target is not Kind.REFERENCE:
            problems.append(
                f"{key.name}: reference table {key.table} references {target} table {key.referenced} "
                "(a reference table can only reference reference tables)"
            )
        elif target is Kind.DISTRIBUTED and source is not Kind.DISTRIBUTED:
            problems.append(
                f"{key.name}: {source} table {key.table} references distributed table {key.referenced}"
            )
        elif source is Kind.DISTRIBUTED and target is Kind.DISTRIBUTED:
            pairs = dict(zip(key.columns, key.referenced_columns, strict=True))
            mine, theirs = placements[key.table].column, placements[key.referenced].column
            if pairs.get(mine or "") != theirs:
                problems.append(
                    f"{key.name}: {key.table}.{mine} must reference {key.referenced}.{theirs} "
                    "(a foreign key between distributed tables includes the distribution column)"
                )
    return problems


# -- joins ----------------------------------------------------------------------------------------------


class _Classes:
    """Union-find over (relation alias, column): the columns a query's equalities make equal."""

    def __init__(self) -> None:
        self._parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(self, item: tuple[str, str]) -> tuple[str, str]:
        parent = self._parent.setdefault(item, item)
        if parent != item:
            parent = self._parent[item] = self.find(parent)
        return parent

    def union(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        self._parent[self.find(a)] = self.find(b)


@dataclass
class _Context:
    placements: Mapping[str, Placement]
    outputs: dict[int, frozenset[str]]
    """Per derived scope (by id of its expression): the output columns that carry a distribution column."""
    unknown: set[str]
    ctes: frozenset[str]
    """The names of the statement's CTEs (a data-modifying CTE is read as a table by sqlglot's scopes)."""


def _conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    if condition is None:
        return []
    if isinstance(condition, exp.And):
        return _conjuncts(condition.args.get("this")) + _conjuncts(condition.args.get("expression"))
    if isinstance(condition, exp.Paren):
        return _conjuncts(condition.this)
    return [condition]


def _own_conditions(select: exp.Expression) -> list[exp.Expression]:
    """The equalities a SELECT's joins and WHERE state at top level (not inside its subqueries)."""
    found = _conjuncts(select.args["where"].this) if select.args.get("where") else []
    for join in select.args.get("joins") or []:
        found += _conjuncts(join.args.get("on"))
    return found


def _dist_columns(scope: Scope, alias: str, ctx: _Context) -> frozenset[str]:
    source = scope.sources.get(alias)
    if isinstance(source, exp.Table):
        name = source.name
        placement = ctx.placements.get(name)
        if placement is None:
            if name and name not in ctx.ctes and not name.startswith(("pg_", "hole_")) and not source.db:
                ctx.unknown.add(name)
            return frozenset()
        return (
            frozenset({placement.column})
            if placement.kind is Kind.DISTRIBUTED and placement.column
            else frozenset()
        )
    if isinstance(source, Scope):
        return ctx.outputs.get(id(source.expression), frozenset())
    return frozenset()


def _source_of(column: exp.Column, scope: Scope) -> str:
    """The alias a column belongs to: its qualifier, or the only source of its SELECT."""
    if column.table or len(scope.selected_sources) != 1:
        return column.table
    return next(iter(scope.selected_sources))


def _derived_outputs(scope: Scope, ctx: _Context) -> frozenset[str]:
    """The output columns of a scope that are one of its distributed sources' distribution columns."""
    expression = scope.expression
    if isinstance(expression, exp.SetOperation):
        outs = [ctx.outputs.get(id(s.expression), frozenset()) for s in scope.set_operation_scopes]
        return frozenset.intersection(*outs) if outs else frozenset()
    if not isinstance(expression, exp.Select):
        return frozenset()
    carried: set[str] = set()
    for projection in expression.selects:
        column = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(projection, exp.Star) or (isinstance(column, exp.Column) and column.is_star):
            # * passes every source's columns through; t.* those of t
            named = column.table if isinstance(column, exp.Column) else ""
            for alias in scope.selected_sources:
                if not named or alias == named:
                    carried |= _dist_columns(scope, alias, ctx)
            continue
        if (
            isinstance(column, exp.Column)
            and (alias := _source_of(column, scope)) in scope.sources
            and column.name in _dist_columns(scope, alias, ctx)
        ):
            carried.add(projection.alias_or_name)
    return frozenset(carried)


def _check_scope(scope: Scope, ctx: _Context, problems: list[str], text: str) -> None:
    select = scope.expression
    if not isinstance(select, exp.Select):
        return
    own = {alias: _dist_columns(scope, alias, ctx) for alias in scope.selected_sources}
    own = {alias: cols for alias, cols in own.items() if cols}
    outer: dict[str, frozenset[str]] = {}
    if scope.is_correlated_subquery and scope.parent is not None:
        referenced = {c.table for c in scope.external_columns if c.table}
        outer = {
            alias: cols
            for alias in referenced
            if alias in scope.parent.sources and (cols := _dist_columns(scope.parent, alias, ctx))
        }
    if len(own) + (1 if own and outer else 0) < 2:
        return
    classes = _Classes()
    for condition in _own_conditions(select):
        left, right = condition.args.get("this"), condition.args.get("expression")
        if isinstance(condition, exp.EQ) and isinstance(left, exp.Column) and isinstance(right, exp.Column):
            classes.union((_source_of(left, scope), left.name), (_source_of(right, scope), right.name))
    for join in select.args.get("joins") or []:
        using = join.args.get("using") or []
        joined = join.this.alias_or_name
        for column in using:
            for alias in scope.selected_sources:
                if alias != joined:
                    classes.union((alias, column.name), (joined, column.name))

    def linked(a: str, a_cols: frozenset[str], b: str, b_cols: frozenset[str]) -> bool:
        return any(classes.find((a, x)) == classes.find((b, y)) for x in a_cols for y in b_cols)

    names = sorted(own)
    first = names[0]
    for other in names[1:]:
        if not linked(first, own[first], other, own[other]):
            problems.append(f"join of {first} and {other} without equal distribution columns: {_short(text)}")
    if outer:
        for alias in names:
            if not any(linked(alias, own[alias], o, cols) for o, cols in outer.items()):
                problems.append(
                    f"correlated subquery over {alias} not joined to {sorted(outer)} on the distribution "
                    f"column: {_short(text)}"
                )


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 160 else flat[:157] + "..."


_VALUES_NAME = re.compile(r"\bvalues\b(?!\s*\()")
"""A relation named `values` (a CTE of flagd.results.sql.reduce), which PostgreSQL reads and sqlglot only
when quoted; lowercase, so the keyword VALUES (...) is left alone."""


def join_problems(
    sql: str, placements: Mapping[str, Placement], schema: Schema | None = None, *, complete: bool = True
) -> list[str]:
    """The joins of one statement that are not co-located, and the tables it reads that have no placement
    (only for a `complete` statement: a fragment's names may be its template's CTEs). Raises SqlglotError
    when it does not parse."""
    tree = sqlglot.parse_one(_VALUES_NAME.sub('"values"', sql), read="postgres")
    if schema:
        with contextlib.suppress(SqlglotError):  # an unknown table or column: check what is written
            tree = qualify(
                tree,
                schema={t: dict.fromkeys(cols, "text") for t, cols in schema.items()},
                dialect="postgres",
                validate_qualify_columns=False,
                quote_identifiers=False,
                identify=False,
            )
    ctes = frozenset(c.alias_or_name for c in tree.find_all(exp.CTE))
    ctx = _Context(placements, {}, set(), ctes)
    problems: list[str] = []
    for scope in traverse_scope(tree):
        _check_scope(scope, ctx, problems, sql)
        ctx.outputs[id(scope.expression)] = _derived_outputs(scope, ctx)
    if complete:
        problems += [
            f"table {name} has no placement in flagd.storage.distribution" for name in sorted(ctx.unknown)
        ]
    return problems


# -- the SQL of the code --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SqlString:
    module: str
    """Its file, relative to the repository (flagd/results/sql/rollup.py)."""
    line: int
    text: str
    """The string with each hole (a format field or an f-string value) replaced by hole_<n>."""
    holes: int


_VERB = re.compile(r"^\s*\(?\s*(WITH|SELECT|INSERT\s+INTO|UPDATE\s+\w+|DELETE\s+FROM)\b")


def is_query(sql: str) -> bool:
    """A statement that can join (not BEGIN, SET, ANALYZE, CREATE ...)."""
    return _VERB.match(sql) is not None


_FRAGMENT = re.compile(
    r"\b(SELECT|INSERT INTO|DELETE FROM)\b.*\b(FROM|VALUES)\b|\bUPDATE \w+ .*\bSET\b", re.S
)
_FIELD = re.compile(r"\{[^{}]*\}")


def _holed(text: str, start: int = 0) -> tuple[str, int]:
    count = start

    def hole(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"hole_{count}"

    return _FIELD.sub(hole, text), count


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def sql_in_code(root: Path, package: str = "flagd", exclude: Iterable[str] = ()) -> list[SqlString]:
    """Every string constant and f-string of the package's modules that holds SQL (a statement, or a
    fragment with SELECT ... FROM), docstrings left out. Python joins adjacent literals into one constant;
    strings built with + or join are found piece by piece."""
    found = []
    left_out = set(exclude)
    for path in sorted((root / package).rglob("*.py")):
        if str(path.relative_to(root)) in left_out:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        inner = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                parts, holes = [], 0
                for value in node.values:
                    if isinstance(value, ast.Constant):
                        text, holes = _holed(str(value.value), holes)
                        parts.append(text)
                    else:
                        holes += 1
                        parts.append(f"hole_{holes}")
                text = "".join(parts)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in skip or id(node) in inner:
                    continue
                text, holes = _holed(node.value)
            else:
                continue
            if len(text.split()) > 1 and (_VERB.match(text) or _FRAGMENT.search(text)):  # not a lone "WITH "
                found.append(SqlString(str(path.relative_to(root)), node.lineno, text, holes))
    return found


_WRAPS = ("{}", "WITH {} SELECT 1", "SELECT 1 FROM hole_0 {}", "SELECT 1 WHERE {}", "SELECT {}")
_HOLE = re.compile(r"\bhole_\d+\b")


@dataclass(frozen=True, slots=True)
class Parsed:
    text: str
    """What was parsed: the string, or (a fragment, or a template with holes) a statement built around it."""
    complete: bool
    """The string itself is the whole statement, with no holes."""


def parsed(sql: SqlString) -> Parsed | None:
    """The first reading of the string that sqlglot parses: itself; else, for a template, its holes read as
    names, left out or read as TRUE, inside each statement shape a fragment fits. None when none parses."""
    body = sql.text.strip().rstrip(",").strip()
    if sql.holes == 0 and _VERB.match(body):
        return Parsed(body, True) if parses(body) else None
    for filler in (None, "", "TRUE"):
        filled = body if filler is None else _HOLE.sub(filler, body)
        for wrap in _WRAPS:
            candidate = wrap.format(filled)
            if parses(candidate):
                return Parsed(candidate, False)
    return None


def parses(text: str) -> bool:
    try:
        sqlglot.parse_one(text, read="postgres")
    except SqlglotError:
        return False
    return True
