"""All the I/O of one experiment phase's results, returned as typed values (`PhaseData`).

The reader catches the phase's roll-ups up on the primary (a roll-up another catch-up holds is read as of
its last one, unless it was never built), then reads on the results replica once it has replayed that
catch-up (flagd.results.replica; the primary without one or when it lags): it reduces each metric from them through the per-process reduction
cache, and reads the exposure tally, the metric events' daily volumes and the names never seen.
Everything it returns is plain data: the analysis (`flagd.results.report`) needs no connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta

from flagd.experiments.catalog import ExperimentPlan, ResolvedMetric
from flagd.health.alarms import open_for_events
from flagd.results.cache import ReductionCache
from flagd.results.live import LiveMetric, live_rolled
from flagd.results.model import DataAlarm, ExposureTally, Freshness, PhaseData, Reduction, SegmentData
from flagd.results.preparing import Preparing, Progress
from flagd.results.replica import Replica
from flagd.results.sql.days import day_reductions, signature
from flagd.results.sql.delta import additive
from flagd.results.sql.exposures import exposure_tally, phase_window, refused_exposures
from flagd.results.sql.quantile import QuantileQuery, reduce_quantile
from flagd.results.sql.reduce import fill, reduce_rolled_by, segment_population
from flagd.results.sql.retention import exposure_rows, matured_before, reduce_retention_rolled
from flagd.results.sql.rollup import (
    RollupPolicy,
    RollupState,
    Source,
    catch_up,
    metric_sources,
    rollup_states,
)
from flagd.results.sql.stored import key_text, store_reductions, stored_reductions
from flagd.results.sql.volumes import daily_events, events_since, never_arrived
from flagd.storage.types import Connection

MAX_SERIES_DAYS = 92
BUILD_CONCURRENCY = 2
"""Roll-ups the keeper builds at once (the machine's cores, at least two, are what a build waits on)."""
Connections = Callable[[], AbstractAsyncContextManager[Connection]]
"""Where the keeper's builds take connections of their own from (a pool's acquire)."""
DAYS_BUDGET_SECONDS = 2.0
"""How long a series request spends computing past days nobody stored yet (the keeper stores them for
running experiments); the days it leaves out are listed as pendingDays and appear on a later look."""


class PhaseReader:
    def __init__(
        self,
        conn: Connection,
        plan: ExperimentPlan,
        phase: int,
        policy: RollupPolicy,
        cache: ReductionCache | None,
        now: datetime,
        *,
        built_in_background: bool = False,
        connections: Connections | None = None,
        replica: Replica | None = None,
    ) -> None:
        self._conn = conn
        """The primary: catch-ups and the closed days stored are written here."""
        self._connections = connections
        """A second connection for catch-ups to run beside this one's (None: one after the other)."""
        self._background = built_in_background
        """Whether the keeper builds this phase's missing roll-ups (flagd.results.preparing): a read that
        finds one missing raises Preparing instead of building it."""
        self._replica = replica
        self._reading: Connection = conn
        """Where the reads go: the primary until `_reads_after_catch_up` picks the replica."""
        self._plan = plan
        self._phase = phase
        self._policy = policy
        self._cache = cache
        self._now = now
        self._states: dict[str, RollupState] = {}
        self._end = now
        """The analysis end: now, or the phase's end once it ended (retention's units mature by it)."""

    async def read(self, segment: str | None = None) -> PhaseData:
        """The phase's tally, every metric's reduction, the volumes; and the breakdown by `segment`."""
        plan = self._plan
        metrics = [m.resolved for m in plan.metrics]
        await self._catch_up(metrics)
        conn = await self._reads_after_catch_up(metrics)
        window = await self._window()
        started = window[0] if window else None
        self._end = min(self._now, window[1]) if window and window[1] else self._now
        tally = await exposure_tally(conn, plan.key, self._phase, self._now, started)
        reductions = await self._reduce_all(metrics, {"": tally.units})
        segments = None
        if segment is not None:
            population = await segment_population(conn, plan.key, self._phase, segment)
            segments = SegmentData(
                segment, population, {m.key: await self._reduce(m, population, segment) for m in metrics}
            )
        start = phase_start(started, tally.daily, self._now)
        return PhaseData(
            phase=self._phase,
            now=self._now,
            tally=tally,
            reductions=reductions,
            volumes=await daily_events(conn, plan.event_names, start),
            never_arrived=await never_arrived(conn, plan.event_names),
            phase_start=start,
            freshness=self._freshness(),
            segments=segments,
            started_at=started,
            ended_at=window[1] if window else None,
            events_since_start=await events_since(conn, plan.event_names, started) if started else 0,
            refused=await refused_exposures(conn, plan.key, start),
            data_alarms=tuple(
                DataAlarm(a.event, a.kind, a.subject, a.summary, a.advice)
                for a in await open_for_events(conn, plan.event_names)
            ),
        )

    async def _window(self) -> tuple[datetime, datetime | None] | None:
        """The phase's start and end as recorded; for a current phase recorded before phases were, its
        lifecycle's start."""
        window = await phase_window(self._reading, self._plan.key, self._phase)
        lifecycle = self._plan.lifecycle
        if (
            window is None
            and lifecycle is not None
            and lifecycle.phase == self._phase
            and lifecycle.phase_started_at
        ):
            return datetime.fromisoformat(lifecycle.phase_started_at), None
        return window

    async def series(self, metric: ResolvedMetric) -> tuple[list[tuple[date, Reduction]], list[date]]:
        """The metric's sums as of each day's end since the phase began (today from the roll-ups), and the
        past days left out because computing them would exceed DAYS_BUDGET_SECONDS."""
        await self._catch_up([metric])
        await self._reads_after_catch_up([metric])
        tally, past = await self._past_days()
        stored = await self._days(metric, past, DAYS_BUDGET_SECONDS)
        today = (await self._reduce(metric, {"": tally.units})).get("", Reduction(metric.key, {}))
        days = [(day, stored[day]) for day in past if day in stored]
        days.append((self._now.date(), today))
        return days, [day for day in past if day not in stored]

    async def keep_up(self, connections: Connections | None = None) -> None:
        """Catch every roll-up of the phase up without waiting for one another holds, and store its closed
        days: what the keeper does for running experiments so that requests find little to do. Roll-ups
        never built are built first, BUILD_CONCURRENCY at a time on `connections` when given (each build is
        one statement that PostgreSQL runs on one core)."""
        metrics = [m.resolved for m in self._plan.metrics]
        sources = _unique_sources(metrics, self._policy.pre_seconds)
        if connections is not None:
            await self.build_missing(connections)
        for source in sources:
            await catch_up(self._conn, self._plan.key, self._phase, source, wait=False)
        _, past = await self._past_days()
        for metric in metrics:
            await self._days(metric, past, None)

    async def build_missing(self, connections: Connections) -> int:
        """Build the phase's roll-ups never built, BUILD_CONCURRENCY at a time; how many were missing."""
        sources = _unique_sources([m.resolved for m in self._plan.metrics], self._policy.pre_seconds)
        built = await rollup_states(self._conn, self._plan.key, self._phase, [s.key for s in sources])
        queue = [s for s in sources if s.key not in built]
        missing = len(queue)

        async def builder() -> None:
            async with connections() as conn:
                while queue:
                    await catch_up(conn, self._plan.key, self._phase, queue.pop(0), wait=False)

        await asyncio.gather(*(builder() for _ in range(min(BUILD_CONCURRENCY, len(queue)))))
        return missing

    async def _past_days(self) -> tuple[ExposureTally, list[date]]:
        """The phase's tally, and the past days of its series."""
        window = await self._window()
        self._end = min(self._now, window[1]) if window and window[1] else self._now
        tally = await exposure_tally(self._reading, self._plan.key, self._phase, self._now)
        return tally, series_days(window[0] if window else None, tally.daily, self._now)

    async def _days(
        self, metric: ResolvedMetric, days: list[date], budget: float | None
    ) -> dict[date, Reduction]:
        return await day_reductions(
            self._conn,
            self._plan.key,
            self._phase,
            metric,
            days,
            now=self._now,
            pre_seconds=self._policy.pre_seconds,
            budget_seconds=budget,
        )

    async def _catch_up(self, metrics: Sequence[ResolvedMetric]) -> None:
        """Bring the metrics' roll-ups up to date first, on the primary. A roll-up another catch-up holds is
        read as of its last one (the freshness says when) rather than waited for, and so is one caught up
        less than the policy's fresh_seconds ago. One never built is built here and waited for, unless the
        keeper builds it in the background: a running experiment's current phase whose exposed units reach
        the policy's inline_build_units (then Preparing says how far it got)."""
        unique = _unique_sources(metrics, self._policy.pre_seconds)
        keys = [s.key for s in unique]
        built = await rollup_states(self._conn, self._plan.key, self._phase, keys)
        missing = [s for s in unique if s.key not in built]
        inline = self._policy.inline_build_units
        if missing and self._background and inline is not None and await self._exposed_units() >= inline:
            raise Preparing(Progress(self._plan.key, self._phase, len(unique) - len(missing), len(unique)))
        fresh = timedelta(seconds=self._policy.fresh_seconds)
        todo = [
            (source, built.get(source.key) is None)
            for source in unique
            if not (source.key in built and fresh and self._now - built[source.key].caught_up_at < fresh)
        ]

        async def catching_up(conn: Connection) -> None:
            while todo:
                source, wait = todo.pop(0)
                await catch_up(conn, self._plan.key, self._phase, source, wait=wait)

        if self._connections is not None and len(todo) > 1:
            # Each catch-up is statements PostgreSQL runs on one core: two at once on two connections.
            async def beside() -> None:
                assert self._connections is not None
                async with self._connections() as other:
                    await catching_up(other)

            await asyncio.gather(catching_up(self._conn), beside())
        else:
            await catching_up(self._conn)

    async def _exposed_units(self) -> int:
        """The phase's exposed units (counting those with more than one variant), on the primary."""
        window = await self._window()
        tally = await exposure_tally(
            self._conn, self._plan.key, self._phase, self._now, window[0] if window else None
        )
        return tally.total + tally.multiple

    async def _reads_after_catch_up(self, metrics: Sequence[ResolvedMetric]) -> Connection:
        """Choose where the reads go (the replica once it has replayed the catch-up), and read the roll-ups'
        states there: the versions the reductions are cached under are those of the data read."""
        if self._replica is not None:
            self._reading = await self._replica.reads_after_writes(self._conn)
        keys = [s.key for s in _unique_sources(metrics, self._policy.pre_seconds)]
        self._states.update(await rollup_states(self._reading, self._plan.key, self._phase, keys))
        return self._reading

    async def _reduce_all(
        self, metrics: Sequence[ResolvedMetric], population: dict[str, dict[str, int]]
    ) -> dict[str, Reduction]:
        """Every metric's reduction (no breakdown). Reading on the primary with a second connection at hand,
        two at once, those reduced from every unit first (each reduction is a statement PostgreSQL runs on
        one core); on a replica, one after the other on the connection that has replayed the catch-ups."""
        found: dict[str, Reduction] = {}
        queue = sorted(metrics, key=lambda m: additive(m))

        async def reducing(conn: Connection | None) -> None:
            while queue:
                metric = queue.pop(0)
                reduced = await self._reduce(metric, population, on=conn)
                found[metric.key] = reduced.get("", Reduction(metric.key, {}))

        if self._connections is None or self._reading is not self._conn or len(metrics) < 2:
            await reducing(None)
        else:
            async with self._connections() as other, asyncio.TaskGroup() as group:
                group.create_task(reducing(None))
                group.create_task(reducing(other))
        return {m.key: found[m.key] for m in metrics}

    async def _reduce(
        self,
        metric: ResolvedMetric,
        population: dict[str, dict[str, int]],
        attribute: str | None = None,
        *,
        on: Connection | None = None,
    ) -> dict[str, Reduction]:
        """The metric per segment of `attribute` (one, "", without), filled with `population`; `on`: a
        second connection to the primary to read and store on instead of this reader's."""
        reading = on or self._reading
        primary = on or self._conn
        sources = tuple(s.key for s in metric_sources(metric, self._policy.pre_seconds))
        metric_signature = signature(metric, self._policy.pre_seconds)
        if attribute is None and additive(metric):
            live = LiveMetric(self._plan.key, self._phase, metric, metric_signature, sources)
            rolled = await live_rolled(primary, live, self._cache)
            return {segment: fill(metric, rolled, counts) for segment, counts in population.items()}
        key: tuple[object, ...] = (
            self._plan.key,
            self._phase,
            metric_signature,
            tuple((k, self._states[k].version if k in self._states else 0) for k in sources),
            attribute,
            tuple(sorted((segment, tuple(sorted(counts.items()))) for segment, counts in population.items())),
        )
        retention = metric.metric.type == "retention"
        if retention:
            # Which units count moves with the clock: the exposure rows matured by now pin it down.
            before = matured_before(metric.metric, self._end)
            key += (await exposure_rows(reading, self._plan.key, self._phase, before),)
        found = self._cache.get(key) if self._cache is not None else None
        # Without a breakdown, what any process reduced under this key is stored (a breakdown's attribute
        # is the request's to choose: those stay in this process's cache only).
        shared = key_text(key) if attribute is None and all(k in self._states for k in sources) else None
        if found is None and shared is not None:
            found = await stored_reductions(
                reading, self._plan.key, self._phase, metric_signature, metric.key, shared
            )
            if found is not None and self._cache is not None:
                self._cache.put(key, found)
        if found is None:
            if metric.metric.type == "quantile":
                found = await reduce_quantile(
                    reading,
                    self._plan.key,
                    self._phase,
                    QuantileQuery(metric.metric, source=sources[0]),
                    population,
                    attribute=attribute,
                )
            elif retention:
                found = await reduce_retention_rolled(
                    reading,
                    self._plan.key,
                    self._phase,
                    metric.metric,
                    sources,
                    end=self._end,
                    attribute=attribute,
                    population=population,
                )
            else:
                found = await reduce_rolled_by(
                    reading,
                    self._plan.key,
                    self._phase,
                    metric,
                    sources,
                    attribute=attribute,
                    population=population,
                )
            if shared is not None:
                await store_reductions(primary, self._plan.key, self._phase, metric_signature, shared, found)
            if self._cache is not None:
                self._cache.put(key, found)
        return found

    def _freshness(self) -> Freshness:
        """When the roll-ups read were last caught up (the oldest), and the newest event they hold."""
        caught_up = [s.caught_up_at for s in self._states.values()]
        latest = [s.latest_event_at for s in self._states.values() if s.latest_event_at is not None]
        return Freshness(min(caught_up) if caught_up else None, max(latest) if latest else None)


def _unique_sources(metrics: Sequence[ResolvedMetric], pre_seconds: int) -> list[Source]:
    return list({s.key: s for m in metrics for s in metric_sources(m, pre_seconds)}.values())


def series_days(started: datetime | None, daily: dict[date, int], now: datetime) -> list[date]:
    """The past days of the series: from the phase's start, the latest MAX_SERIES_DAYS - 1 before today."""
    first = phase_start(started, daily, now)
    count = min((now.date() - first).days, MAX_SERIES_DAYS - 1)
    return [now.date() - timedelta(days=offset) for offset in range(count, 0, -1)]


def phase_start(started: datetime | None, daily: dict[date, int], now: datetime) -> date:
    """The day the phase began; for a phase whose start was not recorded, its first exposure's day."""
    if started is not None:
        return started.astimezone(UTC).date()
    return min(daily) if daily else now.date()
