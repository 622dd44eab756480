"""What the server answered, in words: the sentence the SDK logs and returns when a request did not succeed.

    describe(401, b'{"error": {"code": "unauthorized", "message": "the API key is unknown"}}')
    -> 'the server refused the sdk key (401 unauthorized): the API key is unknown'

The server's own message is taken from flagd's error shape (`{"error": {"message"}}`) or OFREP's
(`{"errorDetails"}`), else from the body as text; it is shortened and any character that is not printable
becomes a space, so a body can neither flood a log nor forge a line of it.
"""

from __future__ import annotations

import http
import json
from typing import Any

MESSAGE_CHARS = 300


def describe(status: int, body: bytes) -> str:
    """One sentence: who refused what (for 401 and 403), the status in words, and the server's message."""
    try:
        phrase = http.HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "an unknown status"
    if status == 401:
        head = f"the server refused the sdk key ({status} {phrase})"
    elif status == 403:
        head = f"the server does not let this key do that ({status} {phrase})"
    else:
        head = f"the server answered {status} {phrase}"
    message = server_message(body)
    return f"{head}: {message}" if message else head


def server_message(body: bytes) -> str:
    """The message a body carries (flagd's or OFREP's error shape, else its text), printable and short."""
    text = body.decode("utf-8", errors="replace")
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(document.get("errorDetails"), str):
            text = document["errorDetails"]
    printable = "".join(ch if ch.isprintable() else " " for ch in text[: MESSAGE_CHARS * 2]).strip()
    return printable if len(printable) <= MESSAGE_CHARS else printable[: MESSAGE_CHARS - 1] + "…"
