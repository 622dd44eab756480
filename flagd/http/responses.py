"""JSON responses (flagd.jsonio), and the one shape every error takes on the wire."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from flagd import jsonio
from flagd.errors import FlagdError


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return jsonio.dumps(content)


def error_body(code: str, message: str, details: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(error: FlagdError) -> OrjsonResponse:
    return OrjsonResponse(
        error_body(error.code, error.message, error.details), status_code=error.status, headers=error.headers
    )
