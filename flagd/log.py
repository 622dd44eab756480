"""Logging for the server process and its workers, configured once from `Settings`.

The same dictConfig is handed to uvicorn, which applies it in every worker process. Text lines
are written by `EscapingFormatter`: a message may quote what a client sent (a path, a value in
an error), so each record is one line with its non-printable characters escaped (flagd.text);
JSON lines are escaped by the encoder (ASCII only).
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from flagd.settings import Settings
from flagd.text import escape

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


def logging_config(settings: Settings) -> dict[str, Any]:
    level = settings.log_level.upper()
    if settings.log_format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": _JSON_FIELDS,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    else:
        formatter = {"()": "flagd.log.EscapingFormatter", "fmt": _TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own access log is replaced by flagd.http.access_log (one line per request).
            "uvicorn.access": {"level": "WARNING", "propagate": False},
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            # pgserver narrates every pg_ctl call at INFO.
            "pgserver": {"level": "WARNING"},
        },
    }


class EscapingFormatter(logging.Formatter):
    """Text lines that nothing a message quotes can forge or turn into terminal control: the message is
    one line, escaped; a traceback keeps its line breaks, but each of its lines is escaped and indented,
    so only the first line of a record starts at the margin (an exception's text may hold a line break
    and a forged record after it)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message, backslashes=False)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("  " + escape(line, backslashes=False) for line in text.split("\n"))


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
