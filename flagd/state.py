"""What the lifespan builds once and every handler reads from `request.state`."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from starlette.requests import Request

from flagd.auth.guard import Authenticator
from flagd.config.watcher import ConfigWatcher
from flagd.ingest.service import Ingest
from flagd.notify.deliverer import Deliverer
from flagd.results.pool import ResultsPool
from flagd.routes.stream_hub import StreamHub
from flagd.settings import Settings
from flagd.storage.migrations import Migration


@dataclass(frozen=True, slots=True)
class ServerState:
    settings: Settings
    pool: asyncpg.Pool
    migrations: tuple[Migration, ...]
    auth: Authenticator
    config: ConfigWatcher
    ingest: Ingest
    worker_id: str
    """An opaque id of this worker process, sent on long-lived streams to tell workers apart."""
    results: ResultsPool
    """Where results are computed and pages rendered: processes of their own, off this event loop."""
    webhooks: Deliverer
    """This worker's webhook deliverer (and the HTTP client of its attempts and tests)."""
    streams: StreamHub
    """This worker's open change streams: their events, heartbeats and key checks, for all at once."""
    results_replica: asyncpg.Pool | None = None
    """A pool of one connection to FLAGD_RESULTS_DATABASE_URL, for /readyz (results processes have their own)."""


def server_state(request: Request) -> ServerState:
    state: ServerState = request.scope["state"]["server"]
    return state
