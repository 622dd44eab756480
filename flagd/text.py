r"""Text that came from a client, made safe to print on a terminal or in a log line.

Anything a client sent (a unit, a variant, a path, properties) may hold escape sequences
(ESC [2J clears the screen, OSC sets the window title), carriage returns and line feeds
(which forge lines), or other invisible characters. Everything the server's logs and the
`flagd` commands print of it goes through `escape` (plain text) or `escape_json` (one-line
JSON text), so such characters are shown as visible escapes instead of being obeyed:

    escape("a\x1b[2J\r\nforged")   ->  a\x1b[2J\r\nforged      (as printed: backslashes, no ESC, no CR LF)
    escape_json('{"u":"\x9b31m"}') ->  {"u":"\u009b31m"}       (the same JSON document)
"""

from __future__ import annotations


def escape(text: str, *, quotes: bool = False, backslashes: bool = True) -> str:
    r"""`text` with every character that is not printable (control, format, separator other than the space,
    unassigned) written as a Python-style escape (`\n`, `\x1b`, `\u2028`) and the backslash as `\\`, so
    an escape is never ambiguous; with `quotes`, `"` as `\x22` too (for quoted fields). Messages that
    quote values with repr() (whose backslashes are escapes already) pass `backslashes=False`."""
    if text.isprintable() and not (backslashes and "\\" in text) and not (quotes and '"' in text):
        return text  # the usual case, checked in C
    return "".join(_escape_char(ch, quotes, backslashes) for ch in text)


def _escape_char(ch: str, quotes: bool, backslashes: bool) -> str:
    if ch == '"' and quotes:
        return "\\x22"
    if ch.isprintable() and (ch != "\\" or not backslashes):
        return ch
    return ch.encode("unicode_escape").decode("ascii")  # \n, \x1b, \u2028, and \\ for a backslash


def escape_json(text: str) -> str:
    r"""One-line JSON text with every non-printable character written as a `\uXXXX` escape: the same
    document, safe to print. (Encoders escape U+0000..U+001F already, but not DEL, the C1 controls such
    as U+009B, which terminals may obey as CSI, or bidirectional overrides.)"""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _json_escape(ch) for ch in text)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
