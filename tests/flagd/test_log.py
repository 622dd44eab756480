"""The server's own log lines: one line per record, whatever a message quotes of what a client sent."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator

import pytest

from flagd.log import EscapingFormatter, logging_config
from flagd.settings import Settings


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """The text format's formatter on a logger of its own (the process's logging is left as it is)."""
    (formatter,) = logging_config(Settings(log_format="text"))["formatters"].values()
    assert formatter["()"] == "flagd.log.EscapingFormatter"
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(EscapingFormatter(formatter["fmt"]))
    logger = logging.getLogger("flagd.test")
    logger.addHandler(handler)
    logger.propagate = False
    yield sink
    logger.removeHandler(handler)
    logger.propagate = True


def test_should_escape_client_text_quoted_in_a_log_message(text_log: io.StringIO) -> None:
    path = "/v1/x\x1b[2J\x1b]0;title\x07\r\n2026-12-01 00:00:00,000 ERROR   [1] flagd: forged\x9b"
    logging.getLogger("flagd.test").warning("database unavailable during GET %s", path)
    try:
        raise ValueError(f"bad value {path}")
    except ValueError:
        logging.getLogger("flagd.test").exception("failed")
    first, *traceback = text_log.getvalue().splitlines()
    assert first.isprintable()
    assert first.endswith(
        "GET /v1/x\\x1b[2J\\x1b]0;title\\x07\\r\\n2026-12-01 00:00:00,000 ERROR   [1] flagd: forged\\x9b"
    )
    # The exception's text breaks its line, but every line of a traceback is indented and escaped.
    assert traceback[0].endswith(f" ERROR   [{os.getpid()}] flagd.test: failed")
    assert traceback[1] == "  Traceback (most recent call last):"
    assert traceback[2].startswith(f'    File "{__file__}", line ')
    assert traceback[-2:] == [
        "  ValueError: bad value /v1/x\\x1b[2J\\x1b]0;title\\x07\\r",
        "  2026-12-01 00:00:00,000 ERROR   [1] flagd: forged\\x9b",
    ]
    assert all(line.isprintable() for line in traceback)
