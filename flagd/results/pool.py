"""Results work off the event loop that answers evaluations: a bounded pool of results processes.

Why processes: the statistics, segment breakdowns, JSON encoding of large answers and page rendering
are CPU work in Python; on the worker's event loop they held every evaluation behind them for seconds,
and in a thread they would still contend for the GIL. A results process (flagd.results.jobs) does the
whole request, its database reads included, and returns the finished body; the worker only awaits it.
Processes run at a lower priority, so evaluations win the CPU when both want it.

Bounds: FLAGD_RESULTS_PROCESSES processes run one job each; at most FLAGD_RESULTS_MAX_WAITING more
wait for one. Past that a request is answered at once with 503 `results_busy` and Retry-After, never
queued. A job that takes longer than FLAGD_RESULTS_TIMEOUT_SECONDS is answered with 503
`results_timeout` (its process finishes it and its place is freed then, so the bound holds). A process
that dies is replaced; its requests get 503 `results_unavailable`.

Processes are forked from a forkserver that has imported the results code, so they start in
milliseconds after the first; the first request of a worker starts them.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

from flagd.errors import ServiceUnavailable
from flagd.metrics import RESULTS_REPLICA_READS
from flagd.results import jobs
from flagd.results.watch import Observation
from flagd.settings import Settings

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
STOP_SECONDS = 5.0


class ResultsPool:
    def __init__(self, settings: Settings, on_preparing: Callable[[], None] | None = None) -> None:
        self._settings = settings
        self._on_preparing = on_preparing
        """Called when a job found roll-ups never built (the keeper's wake: it builds them now)."""
        self._processes = settings.results_processes
        self._capacity = settings.results_processes + settings.results_max_waiting
        self._timeout = settings.results_timeout_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        """`warm_off_loop` makes the executor in a thread while the loop may want it too."""
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is not None:
                return self._executor
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["flagd.results.jobs"])
            self._executor = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=context,
                initializer=jobs.start,
                initargs=(self._settings,),
            )
            return self._executor

    async def run(self, job: jobs.Job) -> jobs.Answer:
        """The job's answer; a job's own error is raised again here as the FlagdError it was."""
        outcome = await self._outcome(job)
        assert isinstance(outcome, jobs.Answer), f"a {job.kind} job answers with a body"
        return outcome

    async def observe(self, job: jobs.Job) -> Observation:
        """A watch job's observation (flagd.results.watcher), bounded and refused like any other job."""
        outcome = await self._outcome(job)
        assert isinstance(outcome, jobs.Observed), "a watch job answers with an observation"
        return outcome.observation

    async def _outcome(self, job: jobs.Job) -> jobs.Answer | jobs.Observed:
        if self._in_flight >= self._capacity:
            raise ServiceUnavailable(
                f"every results process is busy and {self._settings.results_max_waiting} requests are waiting; "
                f"retry in {RETRY_AFTER_SECONDS} s (FLAGD_RESULTS_PROCESSES sets how many run at once)",
                code="results_busy",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        try:
            future = asyncio.wrap_future(self._pool().submit(jobs.run, job))
        except (BrokenProcessPool, RuntimeError) as exc:
            self._replace(exc)
            raise _unavailable() from exc
        self._in_flight += 1
        future.add_done_callback(self._release)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            raise ServiceUnavailable(
                f"the results took longer than {self._timeout:g} s (FLAGD_RESULTS_TIMEOUT_SECONDS); retry later, "
                "when the keeper has caught the experiment's roll-ups up",
                code="results_timeout",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        except BrokenProcessPool as exc:
            self._replace(exc)
            raise _unavailable() from exc
        for where, count in outcome.replica_reads.items():
            RESULTS_REPLICA_READS.labels(where).inc(count)
        preparing = (isinstance(outcome, jobs.Answer) and outcome.status == jobs.PREPARING_STATUS) or (
            isinstance(outcome, jobs.Failure) and outcome.code == jobs.PREPARING_CODE
        )
        if preparing and self._on_preparing is not None:
            self._on_preparing()
        if isinstance(outcome, jobs.Failure):
            raise outcome.error()
        return outcome

    def _release(self, future: asyncio.Future[jobs.Outcome]) -> None:
        self._in_flight -= 1
        if not future.cancelled():
            future.exception()  # retrieved, so an abandoned (timed-out) failure is not logged as unhandled

    def _replace(self, exc: BaseException) -> None:
        logger.error("a results process died (%r); starting a new pool", exc)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def warm(self) -> None:
        """Start the processes now (the first results request would otherwise wait for them)."""
        for _ in range(self._processes):
            self._pool().submit(jobs.run, jobs.Job("ping", now=_epoch(), config_version=-1))

    async def warm_off_loop(self) -> None:
        """`warm` in a thread: starting the forkserver and forking from it blocks for a second or more (its
        imports), and a background task (the results watcher) must not hold evaluations for that long."""
        await asyncio.to_thread(self.warm)

    async def stop(self) -> None:
        """Stop the processes: waiting jobs are cancelled, a running one has STOP_SECONDS to end."""
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        try:
            await asyncio.wait_for(
                asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True), STOP_SECONDS
            )
        except TimeoutError:
            logger.warning(
                "a results process was still busy %g s after shutdown began; leaving it", STOP_SECONDS
            )


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the results process stopped unexpectedly and is being replaced; retry shortly",
        code="results_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _epoch() -> datetime:
    return datetime.fromtimestamp(0, UTC)
