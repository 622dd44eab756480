"""Liveness and readiness probes.

`/healthz` says the process is serving requests and touches nothing else.
`/readyz` says this instance can do its work: the database answers and its schema is
the one this server expects. Otherwise it answers 503 with the reason. With FLAGD_RESULTS_DATABASE_URL
it also reports the results replica (reachable, how far behind), which never makes it unready: results
read on the primary meanwhile (flagd.results.replica).
"""

from __future__ import annotations

import asyncio

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flagd.errors import DatabaseUnavailable, ServiceUnavailable
from flagd.http.responses import OrjsonResponse
from flagd.results.replica import replica_status
from flagd.state import server_state
from flagd.storage.instance import instance_id
from flagd.storage.migrations import schema_status

# A probe must answer quickly even when the database hangs.
READINESS_TIMEOUT_SECONDS = 2.0
MAX_REPORTED_PROBLEMS = 100


async def healthz(request: Request) -> Response:
    return OrjsonResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = server_state(request)
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            async with state.pool.acquire() as conn:
                status = await schema_status(conn, state.migrations)
                identity = await instance_id(conn) if status.current else None
                replica = (
                    await replica_status(conn, state.results_replica)
                    if state.results_replica is not None
                    else None
                )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"the database is not reachable: {exc or type(exc).__name__}") from exc
    if not status.up_to_date:
        raise ServiceUnavailable(
            f"the database schema is at version {status.current} but this server needs {status.latest}; "
            "run `flagd migrate`",
            code="schema_out_of_date",
        )
    if not state.config.loaded:
        raise ServiceUnavailable(
            "the flag configuration has not been loaded from the database yet; see the server log",
            code="config_not_loaded",
        )
    snapshot = state.config.snapshot
    # A stored flag that cannot be served costs that flag only: the server stays ready and names it.
    return OrjsonResponse(
        {
            "status": "ready",
            "schemaVersion": status.current,
            "instanceId": identity,
            "configVersion": snapshot.version,
            "brokenFlags": snapshot.broken_flags(),
            "problems": [
                {"path": p.path, "message": p.message} for p in snapshot.problems[:MAX_REPORTED_PROBLEMS]
            ],
            "resultsReplica": None
            if replica is None
            else {
                "reachable": replica.reachable,
                "standby": replica.standby,
                "lagBytes": replica.lag_bytes,
                "error": replica.error,
            },
        }
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
