"""What a results process does with a request: read, analyse, serialise or render, and return bytes.

A results process (flagd.results.pool) runs one job at a time, each to the end, on an event loop
of its own with a database connection of its own, and sends back only the finished body. Every
CPU-heavy step of a results request (the statistics, segment breakdowns, JSON encoding of large
answers, page rendering) happens here, so the worker's event loop that answers evaluations only
forwards bytes. The process runs at a lower scheduling priority than the worker.

State: a process pool calls `start` once in each new process; the `_Process` it keeps (connection,
catalog, reduction cache) lives as long as the process and is used by no one else, which is why it
is a module global here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import asyncpg
import orjson

from flagd.config.repository import ConfigRepository
from flagd.errors import FlagdError
from flagd.experiments.catalog import Catalog
from flagd.results import wire
from flagd.results.analysis import Options
from flagd.results.cache import ReductionCache
from flagd.results.journey import JourneyQuery
from flagd.results.preparing import Preparing
from flagd.results.replica import REPLICA_READ_ERRORS, Replica
from flagd.results.service import ResultsService
from flagd.results.sql.rollup import RollupPolicy
from flagd.results.watch import Observation, observe
from flagd.rollouts.looking import answer, look_at
from flagd.rollouts.serving import RolloutState
from flagd.settings import Settings
from flagd.storage.pool import DATABASE_UNAVAILABLE_ERRORS, connect

logger = logging.getLogger(__name__)

NICENESS = 10
"""How much lower than the worker's the results process's CPU priority is."""
JSON = "application/json"
PREPARING_STATUS = 202
"""A results answer still being prepared (flagd.results.preparing): its progress, not the results."""
PREPARING_CODE = "results_preparing"
HTML = "text/html; charset=utf-8"

Kind = Literal[
    "results",
    "timeseries",
    "experiments",
    "journey",
    "page",
    "index",
    "journey_page",
    "ping",
    "rollout_look",
    "rollouts_page",
    "rollout_page",
    "watch",
]


@dataclass(frozen=True, slots=True)
class PageSession:
    key_name: str
    csrf: str


@dataclass(frozen=True, slots=True)
class Job:
    kind: Kind
    now: datetime
    config_version: int
    """The worker's config version: the process reads a catalog at least this new."""
    key: str = ""
    phase: int | None = None
    metric: str | None = None
    segment: str | None = None
    options: Options = field(default_factory=Options)
    session: PageSession | None = None
    journey: JourneyQuery | None = None
    rollout: RolloutState | None = None
    """A rollout look: the rollout's row as the monitor read it (`now` times its stage)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    media_type: str
    replica_reads: dict[str, int] = field(default_factory=dict)
    """Where the job's reads went, by outcome (flagd.results.replica), for the worker's metrics."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A FlagdError raised by the job, to be raised again by the worker (exceptions do not travel well)."""

    status: int
    code: str
    message: str
    replica_reads: dict[str, int] = field(default_factory=dict)

    def error(self) -> FlagdError:
        return FlagdError(self.message, code=self.code, status=self.status)


@dataclass(frozen=True, slots=True)
class Observed:
    """A watch job's answer: what the results watcher compares of the experiment's current phase."""

    observation: Observation
    replica_reads: dict[str, int] = field(default_factory=dict)


Outcome = Answer | Observed | Failure


class _Process:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.policy = RollupPolicy.from_settings(settings)
        self.cache = ReductionCache()
        self.catalog = Catalog.empty()
        self.conn: asyncpg.Connection | None = None
        self.second: asyncpg.Connection | None = None
        """The connection a request's catch-ups use beside `conn` (opened when first needed)."""
        self.replica = (
            Replica(settings.results_database_url, settings.db_connect_timeout)
            if settings.results_database_url
            else None
        )
        """Where results reads go once it has replayed the primary's writes (FLAGD_RESULTS_DATABASE_URL)."""

    async def connection(self) -> asyncpg.Connection:
        if self.conn is None or self.conn.is_closed():
            self.conn = await connect(self.settings)
        return self.conn

    @contextlib.asynccontextmanager
    async def beside(self) -> AsyncIterator[asyncpg.Connection]:
        if self.second is None or self.second.is_closed():
            self.second = await connect(self.settings)
        yield self.second

    async def current_catalog(self, conn: asyncpg.Connection, version: int) -> Catalog:
        if self.catalog.version < 0 or self.catalog.version < version:
            stored = await ConfigRepository(conn).load()
            self.catalog = Catalog.build(
                stored.version, stored.document(), stored.experiments, stored.lifecycles
            )
        return self.catalog

    async def handle(self, job: Job) -> Outcome:
        if job.kind == "ping":
            return Answer(200, b"", JSON)
        try:
            if self.replica is None:
                return await self.outcome(job, None)
            self.replica.begin_job()
            try:
                return await self.outcome(job, self.replica)
            except REPLICA_READ_ERRORS as exc:
                if not self.replica.failed(exc):
                    raise
            return await self.outcome(job, None)  # the replica failed it (logged and counted): the primary
        except FlagdError as exc:
            return Failure(exc.status, exc.code, exc.message)
        except Preparing as exc:
            if job.kind in ("results", "timeseries"):
                return Answer(PREPARING_STATUS, wire.preparing(exc.progress), JSON)
            return Failure(503, PREPARING_CODE, exc.progress.message)
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            logger.warning("results process: database unavailable: %r", exc)
            await self.forget_connection()
            return Failure(
                503, "database_unavailable", "the database is not reachable right now; retry shortly"
            )

    async def outcome(self, job: Job, replica: Replica | None) -> Outcome:
        """The job's outcome, its reads on `replica` once it has replayed the primary's writes (None: the
        primary)."""
        conn = await self.connection()
        if job.kind == "rollout_look":
            assert job.rollout is not None, "a rollout look carries its rollout"
            catalog = await self.current_catalog(conn, job.config_version)
            look, decision = await look_at(
                conn,
                catalog,
                self.policy,
                self.cache,
                job.rollout,
                datetime.now(UTC),
                job.now,
                replica=replica,
            )
            return Answer(200, orjson.dumps(answer(job.rollout, look, decision)), JSON)
        if job.kind in ("rollouts_page", "rollout_page"):
            from flagd.web import rollout_pages  # only pages need the templates

            return await rollout_pages.answer(conn, job)
        service = ResultsService(
            conn,
            await self.current_catalog(conn, job.config_version),
            self.policy,
            self.cache,
            statement_seconds=self.settings.results_timeout_seconds,
            connections=self.beside,
            replica=replica,
        )
        if job.kind in ("page", "index", "journey_page"):
            from flagd.web import render  # only pages need the templates

            return await render.page_answer(service, job)
        if job.kind == "watch":
            return Observed(observe(await service.results(job.key, None, Options(), job.now)))
        return Answer(200, await _json(service, job), JSON)

    async def forget_connection(self) -> None:
        for conn in (self.conn, self.second):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
        self.conn = None
        self.second = None


async def _json(service: ResultsService, job: Job) -> bytes:
    if job.kind == "results":
        return wire.dumps(await service.results(job.key, job.phase, job.options, job.now, job.segment))
    if job.kind == "timeseries":
        return wire.dumps(await service.timeseries(job.key, job.phase, job.metric, job.options, job.now))
    if job.kind == "journey":
        assert job.journey is not None, "a journey job carries its query"
        return wire.dumps(await service.journey(job.journey, job.now))
    return wire.dumps({"experiments": await service.experiments(job.now)})


_PROCESS: _Process | None = None


def start(settings: Settings) -> None:
    """The pool's initializer, once per new results process."""
    global _PROCESS
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    _PROCESS = _Process(settings)


def run(job: Job) -> Outcome:
    """Run one job to its end (the pool calls this in the results process)."""
    assert _PROCESS is not None, "start() runs first in every results process"
    outcome = _PROCESS.loop.run_until_complete(_PROCESS.handle(job))
    if _PROCESS.replica is None:
        return outcome
    return replace(outcome, replica_reads=_PROCESS.replica.drain_counts())
