"""An experiment's results: the plan from the catalog, the phase's data from the reader, the pure analysis."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from flagd.errors import Conflict, InvalidParameter, NotFound
from flagd.experiments.catalog import Catalog, ExperimentPlan
from flagd.results.analysis import Method, Options, series
from flagd.results.cache import ReductionCache
from flagd.results.journey import Funnel, JourneyQuery, funnel
from flagd.results.looks import daily_looks, record_look, stored_looks
from flagd.results.model import ExperimentResults, ExperimentSummary, Timeseries
from flagd.results.phase_reader import Connections, PhaseReader
from flagd.results.preparing import Preparing
from flagd.results.replica import Replica
from flagd.results.report import analyse_phase, method_of, planned
from flagd.results.sql.exposures import units_per_experiment
from flagd.results.sql.funnel import read_funnel
from flagd.results.sql.rollup import RollupPolicy
from flagd.storage.types import Connection
from flagd_sdk.evaluation.problems import given

MAX_HEADLINES = 50
"""The list computes the decision of at most this many started experiments (the most recently started)."""


def resolve(catalog: Catalog, key: str, phase: int | None) -> tuple[ExperimentPlan, int]:
    """The experiment's plan and the phase to analyse, or the error that says why there is none."""
    plan = catalog.plan(key)
    if plan is None:
        raise NotFound(
            f'experiment "{key}" does not exist (or its definition no longer reads cleanly)',
            code="experiment_not_found",
        )
    current = plan.experiment.phase
    if current < 1:
        raise Conflict(not_started(key), code="experiment_not_started")
    # A key deleted and created again continues its phase numbering: its earlier phases are not its own.
    first = max(min(plan.lifecycle.first_phase or 1, current) if plan.lifecycle else 1, 1)
    chosen = current if phase is None else phase
    if not first <= chosen <= current:
        ran = f"phase {current}" if first == current else f"phases {first} to {current}"
        raise InvalidParameter(
            f"experiment {key} has no phase {chosen}: it has run {ran}; "
            "give one of them as ?phase=, or leave it out for the current one"
        )
    return plan, chosen


def checked_method(plan: ExperimentPlan, options: Options) -> Method:
    """The method the results use; method=planned for an experiment without a planned reach is refused."""
    if options.method == "planned" and not plan.experiment.planned:
        raise InvalidParameter(
            f"experiment {plan.key} has no planned reach, so method=planned cannot apply: set expected_units "
            "in its definition (the units it is planned to reach), or ask for method=mixture",
            code="no_planned_reach",
        )
    return method_of(options, plan)


def not_started(key: str) -> str:
    """Why a draft has no results, and how to start it."""
    return (
        f"Experiment {key} is a draft and has not started, so it has no results yet; start it with "
        f"`flagd experiments start {key}` or POST /v1/admin/experiments/{key}/start."
    )


class ResultsService:
    """Results of the experiments of one catalog, read over one connection to the primary, or, with a
    replica, read there once it has replayed the primary's writes (flagd.results.replica)."""

    def __init__(
        self,
        conn: Connection,
        catalog: Catalog,
        policy: RollupPolicy,
        cache: ReductionCache | None = None,
        *,
        statement_seconds: float = 120.0,
        connections: Connections | None = None,
        replica: Replica | None = None,
    ) -> None:
        self._conn = conn
        self._connections = connections
        """A second connection a request's catch-ups may use beside `conn`."""
        self._replica = replica
        self._statement_seconds = statement_seconds
        self._catalog = catalog
        self._policy = policy
        self._cache = cache

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def _reader(self, plan: ExperimentPlan, phase: int, now: datetime) -> PhaseReader:
        entry = self._catalog.entries.get(plan.key)
        # The keeper builds the roll-ups of running experiments' current phases (flagd.results.preparing).
        background = entry is not None and entry.state == "running" and phase == entry.phase
        return PhaseReader(
            self._conn,
            plan,
            phase,
            self._policy,
            self._cache,
            now,
            built_in_background=background,
            connections=self._connections,
            replica=self._replica,
        )

    async def _reads(self) -> Connection:
        """Where a read with no catch-up before it goes: the replica once it is as current as the primary."""
        return self._conn if self._replica is None else await self._replica.reads_after_writes(self._conn)

    async def results(
        self, key: str, phase: int | None, options: Options, now: datetime, segment: str | None = None
    ) -> ExperimentResults:
        """The phase's results; with the planned design, this request is one of its looks (flagd.results.looks)."""
        plan, chosen = resolve(self._catalog, key, phase)
        method = checked_method(plan, options)
        data = await self._reader(plan, chosen, now).read(segment)
        if method == "planned":
            reach = plan.experiment.expected_units
            earlier = await stored_looks(self._conn, key, chosen)
            options = replace(options, earlier_looks=(*earlier, *daily_looks(data.tally, reach, now.date())))
        results = analyse_phase(plan, data, options)
        design = results.design
        if design is not None and design.method == "planned" and design.boundary is not None:
            await record_look(self._conn, key, chosen, design.information_fraction, design.boundary)
        return results

    async def timeseries(
        self, key: str, phase: int | None, metric_key: str | None, options: Options, now: datetime
    ) -> Timeseries:
        """Per day since the phase began (at most MAX_SERIES_DAYS, the latest), the cumulative estimates:
        the past days as of their ends, today from the roll-ups."""
        plan, chosen = resolve(self._catalog, key, phase)
        if metric_key is None:
            chosen_metric = plan.primary or (plan.metrics[0] if plan.metrics else None)
        else:
            chosen_metric = plan.analysed(metric_key)
        if chosen_metric is None:
            names = ", ".join(m.metric.key for m in plan.metrics) or "none"
            raise InvalidParameter(
                f"metric must be one of the experiment's metrics ({names}); got {given(metric_key)}"
            )
        if checked_method(plan, options) == "planned":
            options = replace(options, earlier_looks=await stored_looks(self._conn, key, chosen))
        days, pending = await self._reader(plan, chosen, now).series(chosen_metric.resolved)
        return Timeseries(
            experiment=key,
            phase=chosen,
            metric=chosen_metric.metric.key,
            control=plan.control,
            days=series(chosen_metric.metric, days, plan.control, plan.treatments, planned(options, plan)),
            pending_days=tuple(pending),
        )

    async def experiments(self, now: datetime) -> list[ExperimentSummary]:
        """Every experiment with its state, phase, flag, primary metric, units exposed in its current phase and
        headline: the decision of its current phase (None before it starts, or when it cannot be analysed)."""
        units = await units_per_experiment(await self._reads())
        started = [e for e in self._catalog.entries.values() if e.phase >= 1 and e.plan is not None]
        started.sort(key=lambda e: e.phase_started_at or "", reverse=True)
        headlines = {}
        for entry in started[:MAX_HEADLINES]:
            try:
                headlines[entry.key] = (await self.results(entry.key, None, Options(), now)).decision
            except Preparing:
                continue  # its first roll-ups are still being built: no headline yet
        return [
            ExperimentSummary(
                key=entry.key,
                name=entry.name,
                flag=entry.flag,
                state=entry.state,
                phase=entry.phase,
                primary_metric=entry.plan.primary.metric.key if entry.plan and entry.plan.primary else None,
                units=units.get(entry.key, 0),
                headline=headlines.get(entry.key),
                results=f"/v1/experiments/{entry.key}/results" if entry.phase >= 1 else None,
            )
            for entry in self._catalog.entries.values()
        ]

    async def journey(self, query: JourneyQuery, now: datetime) -> Funnel:
        """The funnel of a journey over every unit (outside experiments), within the statement time."""
        experiment = query.breakdown.experiment if query.breakdown else ""
        conn = await self._reads()
        if experiment and experiment not in self._catalog.entries:
            seen = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM exposures WHERE experiment = $1)", experiment
            )
            if not seen:
                raise InvalidParameter(
                    f"breakdown names experiment {experiment}, which does not exist and has no exposures; "
                    "check the key (GET /v1/experiments lists them)"
                )
        rows, distinct = await read_funnel(conn, query, self._statement_seconds)
        return funnel(query, rows, distinct, now)

    async def keep_up(self, now: datetime, connections: Connections | None = None) -> int:
        """For every running experiment's current phase: catch its roll-ups up (building the missing ones
        first, on `connections` when given) and store its closed days, so that requests find little to do.
        Roll-ups another catch-up holds are skipped. Returns the number of experiments kept up."""
        kept = 0
        for plan, phase in self._running():
            await self._reader(plan, phase, now).keep_up(connections)
            kept += 1
        return kept

    async def build_missing(self, now: datetime, connections: Connections) -> int:
        """Only build the roll-ups never built of running experiments' current phases (what a request that
        found one missing wakes the keeper for); the number built."""
        built = 0
        for plan, phase in self._running():
            built += await self._reader(plan, phase, now).build_missing(connections)
        return built

    def _running(self) -> list[tuple[ExperimentPlan, int]]:
        return [
            (entry.plan, entry.phase)
            for entry in self._catalog.entries.values()
            if entry.plan is not None and entry.state == "running" and entry.phase >= 1
        ]
