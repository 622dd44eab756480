"""JavaScript's truthiness, number and string conversions, as JsonLogic (json-logic-js) uses them.

JsonLogic is specified by its JavaScript reference implementation, so a rule means the
same thing here as in every other flagd evaluator only if these conversions follow
ECMAScript: ToBoolean (with JsonLogic's one change, `[]` is false), ToNumber,
ToString, Abstract Equality (==), Strict Equality (===) and the Abstract Relational
Comparison behind < and >.

Every conversion runs in time linear in its input: the number patterns below have no
ambiguous repetition (a digit run can end in only one way), so a failed match costs one
pass, and no string of digits is handed to int(), whose cost is quadratic in its length.
"""

from __future__ import annotations

import math
import re
from typing import Any, cast

NAN = float("nan")
# ECMAScript StrDecimalLiteral without Infinity; `\.[0-9]*` can only follow the whole digit run.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NON_DECIMAL = {
    "0x": (re.compile(r"0[xX][0-9a-fA-F]+", re.ASCII), 16),
    "0o": (re.compile(r"0[oO][0-7]+", re.ASCII), 8),
    "0b": (re.compile(r"0[bB][01]+", re.ASCII), 2),
}
_EXPONENT_ZEROS = re.compile(r"e([+-])0+(?=\d)")
_SAFE_INTEGER = 2**53


def is_number(value: Any) -> bool:
    return (type(value) is int) or (type(value) is float)


def truthy(value: Any) -> bool:
    """JsonLogic truthiness: JavaScript's, except that an empty array is false."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, int | float):
        return value == value and value != 0  # NaN and 0 are false
    if isinstance(value, str | list | tuple):
        return len(value) > 0
    return True


def to_number(value: Any) -> int | float:
    """ECMAScript ToNumber (Number(x))."""
    if value is None or value is False:
        return 0
    if value is True:
        return 1
    if is_number(value):
        return cast(int | float, value)
    if isinstance(value, str):
        return _string_to_number(value)
    if isinstance(value, list | tuple):
        return to_number(to_string(value)) if value else 0
    return NAN


def parse_float(value: Any) -> int | float:
    """ECMAScript parseFloat: the longest numeric prefix of the string form, else NaN."""
    if is_number(value):
        return cast(int | float, value)
    text = to_string(value).strip()
    if text.startswith(("Infinity", "+Infinity")):
        return math.inf
    if text.startswith("-Infinity"):
        return -math.inf
    match = _DECIMAL.match(text)
    return _decimal(match.group(0)) if match else NAN


def _string_to_number(text: str) -> int | float:
    stripped = text.strip()
    if not stripped:
        return 0
    if _DECIMAL.fullmatch(stripped):
        return _decimal(stripped)
    if stripped in ("Infinity", "+Infinity"):
        return math.inf
    if stripped == "-Infinity":
        return -math.inf
    non_decimal = _NON_DECIMAL.get(stripped[:2].lower())
    if non_decimal is not None and non_decimal[0].fullmatch(stripped):
        # int() in a power-of-two base is linear; JavaScript numbers are doubles beyond 2**53.
        number = int(stripped[2:], non_decimal[1])
        return number if number < _SAFE_INTEGER else to_double(number)
    return NAN


def _decimal(text: str) -> int | float:
    """A matched decimal literal as a number: an int when it is a safe integer written without . or e."""
    number = float(text)  # float() reads any length in linear time; int() would not
    if number.is_integer() and abs(number) < _SAFE_INTEGER and "." not in text and "e" not in text.lower():
        return int(number)
    return number


def to_double(number: int) -> float:
    try:
        return float(number)
    except OverflowError:
        return math.inf


def to_string(value: Any) -> str:
    """ECMAScript ToString (String(x)), with arrays joined by commas as JavaScript does."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return _float_to_string(value)
    if isinstance(value, list | tuple):
        return ",".join("" if item is None else to_string(item) for item in value)
    return "[object Object]"


def _float_to_string(value: float) -> str:
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    # Python writes 1e-07 where JavaScript writes 1e-7.
    return _EXPONENT_ZEROS.sub(r"e\1", repr(value))


def loose_equals(a: Any, b: Any) -> bool:
    """ECMAScript Abstract Equality (==)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool):
        return loose_equals(int(a), b)
    if isinstance(b, bool):
        return loose_equals(a, int(b))
    a_container, b_container = isinstance(a, list | dict), isinstance(b, list | dict)
    if a_container and b_container:
        return a is b
    if a_container:
        return loose_equals(to_string(a) if isinstance(a, list) else "[object Object]", b)
    if b_container:
        return loose_equals(a, to_string(b) if isinstance(b, list) else "[object Object]")
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return bool(to_number(a) == to_number(b))


def strict_equals(a: Any, b: Any) -> bool:
    """ECMAScript Strict Equality (===)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return a is b
    return type(a) is type(b) and bool(a == b)


def less_than(a: Any, b: Any) -> bool:
    """ECMAScript Abstract Relational Comparison: strings compare as strings, all else as numbers."""
    a, b = _to_primitive(a), _to_primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return a < b
    x, y = to_number(a), to_number(b)
    return x < y  # NaN compares false, as in JavaScript


def less_or_equal(a: Any, b: Any) -> bool:
    a, b = _to_primitive(a), _to_primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return a <= b
    x, y = to_number(a), to_number(b)
    return x <= y


def _to_primitive(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return to_string(value)
    if isinstance(value, dict):
        return "[object Object]"
    return value
