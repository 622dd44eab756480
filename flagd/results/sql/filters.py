"""A metric's event filter and value property as SQL over `{alias}.properties`: parameters, never text.

Every property name and operand is appended to the caller's parameter list and referenced as `$N`,
so nothing a definition holds is ever spliced into a query. Each condition is a boolean that is never
NULL (an event without `properties`, or without the property, fails `equals`, `in`, the comparisons
and `exists: true`, and passes `not_in` and `exists: false`), so the conjunction can sit in a join's
ON clause or be negated safely.

A property read as a number (comparisons, `value_property`) counts only when it is a JSON number of
float8's range; any other value is no value: NULL, never an error that stops the query.
"""

from __future__ import annotations

import orjson

from flagd.experiments.filters import Condition, EventFilter

FLOAT_LIMIT = "1e300"
"""JSON numbers beyond this magnitude are no value (float8 could not hold them)."""


def _param(params: list[object], value: object, cast: str) -> str:
    params.append(value)
    return f"${len(params)}::{cast}"


def number_sql(alias: str, key: str) -> str:
    """`{alias}.properties -> key` as float8 when it is a number of float8's range, else NULL."""
    item = f"({alias}.properties -> {key})"
    # Nested CASEs: SQL does not promise to test an AND's sides in order, a CASE does.
    return (
        f"(CASE WHEN jsonb_typeof({item}) = 'number' THEN CASE WHEN abs({item}::numeric) < {FLOAT_LIMIT} "
        f"THEN {item}::numeric::float8 END END)"
    )


_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _condition(condition: Condition, alias: str, params: list[object]) -> str:
    key = _param(params, condition.property, "text")
    item = f"({alias}.properties -> {key})"
    op, operand = condition.op, condition.operand
    if op == "equals":
        return f"coalesce({item} = {_param(params, orjson.dumps(operand).decode(), 'text::jsonb')}, false)"
    if op in ("in", "not_in"):
        assert isinstance(operand, tuple)
        listed = _param(params, orjson.dumps(list(operand)).decode(), "text::jsonb")
        found = f"coalesce({listed} @> jsonb_build_array({item}), false)"
        return found if op == "in" else f"NOT {found}"
    if op in _COMPARE:
        bound = _param(params, operand, "float8")
        return f"coalesce({number_sql(alias, key)} {_COMPARE[op]} {bound}, false)"
    present = f"coalesce(jsonb_typeof({item}) <> 'null', false)"
    return present if operand else f"NOT {present}"


def filter_sql(where: EventFilter | None, alias: str, params: list[object]) -> str:
    """`TRUE`, or a boolean over `{alias}.properties` that holds when every condition does; its operands
    are appended to `params` and referenced by number after the ones already there."""
    if where is None or not where.conditions:
        return "TRUE"
    return "(" + " AND ".join(_condition(c, alias, params) for c in where.conditions) + ")"


def value_sql(value_property: str | None, alias: str, params: list[object]) -> str:
    """The event's value: `{alias}.value`, or the numeric property (anything else in it is NULL)."""
    if value_property is None:
        return f"{alias}.value"
    return number_sql(alias, _param(params, value_property, "text"))
