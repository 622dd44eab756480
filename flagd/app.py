"""The Starlette application: `create_app(settings)` builds it; nothing is global."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from flagd.auth.client import ClientAccess, ClientPolicy
from flagd.auth.guard import Authenticator
from flagd.config.watcher import ConfigWatcher
from flagd.health.detector import DataHealthDetector
from flagd.http.access_log import AccessLogMiddleware, AccessLogWriter
from flagd.http.cors import CorsMiddleware
from flagd.http.fast_lane import FastLane
from flagd.http.handlers import EXCEPTION_HANDLERS
from flagd.http.metrics_middleware import MetricsMiddleware
from flagd.http.transport import raise_descriptor_limit
from flagd.ingest.service import Ingest
from flagd.metrics import CONFIG_UPDATED, CONFIG_VERSION, POOL_IN_USE, POOL_SIZE, QUEUE_DEPTH, worker_exited
from flagd.notify.deliverer import Deliverer
from flagd.results.keeper import ResultsKeeper
from flagd.results.pool import ResultsPool
from flagd.results.replica import open_status_pool
from flagd.results.watcher import ResultsWatcher
from flagd.rollouts.monitor import RolloutMonitor, results_looker
from flagd.routes import (
    admin,
    client_stream,
    config_stream,
    data_health,
    events,
    experiments,
    health,
    journeys,
    live_events,
    metrics,
    ofrep,
    openapi,
    results,
    rollouts,
    schedules,
    webhooks,
)
from flagd.routes import tracking as tracking_routes
from flagd.routes.stream_hub import StreamHub
from flagd.schedules.executor import ScheduleExecutor
from flagd.settings import Settings
from flagd.state import ServerState
from flagd.storage import lost_connections
from flagd.storage.migrations import apply_migrations, load_migrations
from flagd.storage.pool import open_pool
from flagd.web import pages

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> Starlette:
    access_log = (
        AccessLogWriter(json_lines=settings.log_format == "json")
        if settings.access_log and settings.log_level in ("debug", "info")
        else None
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        flusher = asyncio.create_task(access_log.run()) if access_log is not None else None
        try:
            async with _serving(settings) as state:
                yield {"server": state}
        finally:
            if flusher is not None:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher

    middleware = [Middleware(MetricsMiddleware)]
    if access_log is not None:
        middleware.append(Middleware(AccessLogMiddleware, writer=access_log))
    # Innermost, so the metrics and the access log count the preflights it answers.
    middleware.append(Middleware(CorsMiddleware))
    return _FlagdApp(
        access_log,
        # Starlette tries routes in order: the hot evaluation paths come first.
        routes=[
            *ofrep.routes,
            *events.routes,
            *config_stream.routes,
            *client_stream.routes,
            *health.routes,
            *admin.routes,
            *experiments.routes,
            *results.routes,
            *journeys.routes,
            *rollouts.routes,
            *openapi.routes,
            *metrics.routes,
            *pages.routes,
            *schedules.routes,
            *webhooks.routes,
            *tracking_routes.routes,
            *data_health.routes,
            *live_events.routes,
        ],
        middleware=middleware,
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )


class _FlagdApp(Starlette):
    """Starlette, with the single-flag evaluation answered in front of its middleware (flagd.http.fast_lane)."""

    def __init__(self, access_log: AccessLogWriter | None, **kwargs: Any) -> None:
        self._access_log = access_log
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return FastLane(super().build_middleware_stack(), self._access_log)


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[ServerState]:
    """The pool, the migrations, the key cache and the config watcher, for the life of the app."""
    migrations = load_migrations()
    lost_connections.install(asyncio.get_running_loop())
    pool = await open_pool(settings)
    try:
        if settings.migrate_on_start:
            async with pool.acquire() as conn:
                await apply_migrations(conn, migrations)
        client = ClientAccess(pool, ClientPolicy.from_settings(settings))
        auth = Authenticator(pool, client=client)
        config = ConfigWatcher(pool, settings, on_keys_changed=auth.forget)
        await config.start()
        ingest = Ingest(settings, pool)
        keeper = ResultsKeeper(settings, pool, lambda: config.snapshot.catalog)
        results = ResultsPool(settings, on_preparing=keeper.wake)
        deliverer = Deliverer(settings, pool)
        executor = ScheduleExecutor(settings, pool, config.refresh_after_write)
        monitor = RolloutMonitor(
            pool,
            results_looker(results, lambda: config.snapshot.version),
            interval=settings.rollouts_monitor_seconds,
            on_moved=config.refresh_after_write,
        )
        worker_id = secrets.token_hex(4)
        watcher = ResultsWatcher(settings, pool, lambda: config.snapshot.catalog, results, worker_id)
        detector = DataHealthDetector(settings, pool)
        streams = StreamHub(config, settings.sse_heartbeat_seconds)
        sampler: asyncio.Task[None] | None = None
        replica = (
            await open_status_pool(settings.results_database_url, settings.db_connect_timeout)
            if settings.results_database_url
            else None
        )
        try:
            await client.start()
            await ingest.start()
            await keeper.start()
            await executor.start()
            await deliverer.start()
            await monitor.start()
            await watcher.start()
            await detector.start()
            await streams.start()
            state = ServerState(
                settings=settings,
                pool=pool,
                migrations=migrations,
                auth=auth,
                config=config,
                ingest=ingest,
                worker_id=worker_id,
                results=results,
                webhooks=deliverer,
                streams=streams,
                results_replica=replica,
            )
            sampler = asyncio.create_task(_sample(state), name="flagd-metrics-sampler")
            yield state
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            worker_exited()
            await streams.stop()
            await deliverer.stop()
            await monitor.stop()
            await watcher.stop()
            await results.stop()
            await executor.stop()
            await detector.stop()
            await keeper.stop()
            await ingest.stop()
            await client.stop()
            await config.stop()
            if replica is not None:
                await replica.close()
    finally:
        await pool.close()


SAMPLE_SECONDS = 2.0


async def _sample(state: ServerState) -> None:
    """The gauges of /metrics that are states rather than events, every SAMPLE_SECONDS."""
    while True:
        snapshot = state.config.snapshot
        QUEUE_DEPTH.set(state.ingest.writer.queued)
        POOL_SIZE.set(state.pool.get_size())
        POOL_IN_USE.set(state.pool.get_size() - state.pool.get_idle_size())
        CONFIG_VERSION.set(snapshot.version)
        CONFIG_UPDATED.set(snapshot.updated_at)
        await asyncio.sleep(SAMPLE_SECONDS)


def create_app_from_env() -> Starlette:
    """Factory for uvicorn workers (`uvicorn --factory flagd.app:create_app_from_env`); each raises its
    open-file limit to the hard limit (a supervisor other than `flagd serve` may not have)."""
    before, after = raise_descriptor_limit()
    if after != before:
        logger.info("raised the open-file limit from %d to %d", before, after)
    return create_app(Settings.from_env())
