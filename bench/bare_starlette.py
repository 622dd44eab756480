"""The baseline for bench/ofrep.py: a bare Starlette endpoint that parses the same JSON body.

It does what any JSON endpoint must (read the body, parse it, answer in JSON) and nothing
flagd adds (authentication, evaluation, logging), on the same uvicorn, uvloop and httptools.
"""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def evaluate(request: Request) -> Response:
    body = orjson.loads(await request.body())
    context = body.get("context", {})
    answer = {"key": request.path_params["key"], "reason": "STATIC", "variant": "on", "value": bool(context)}
    return Response(orjson.dumps(answer), media_type="application/json")


app = Starlette(routes=[Route("/ofrep/v1/evaluate/flags/{key}", evaluate, methods=["POST"])])
