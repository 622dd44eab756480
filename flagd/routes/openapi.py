"""GET /openapi.json: the OpenAPI 3.1 document of every endpoint (flagd/routes/openapi.yaml).

The document is written by hand, next to the routes, and read once when the app is built.
tests/flagd/test_openapi.py checks it against the app's routes, so neither can change
without the other, and runs schemathesis against a live server with it.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagd import jsonio


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(files("flagd.routes").joinpath("openapi.yaml").read_text("utf-8"))
    return loaded


@lru_cache(maxsize=1)
def _rendered() -> bytes:
    return jsonio.dumps(document())


async def openapi(request: Request) -> Response:
    return Response(_rendered(), media_type="application/json")


routes = [Route("/openapi.json", openapi, methods=["GET"])]
