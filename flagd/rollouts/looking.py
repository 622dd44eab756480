"""One look at a rollout's current stage: its exposures and guardrails read through the experiments'
results machinery (the stage is phase `row.phase` of experiment `rollout:<key>`), then the pure decision.

Run in a results process (flagd.results.jobs, kind "rollout_look"), so the reading and the statistics
never hold up the worker's event loop; the worker only makes the transition the answer asks for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flagd.experiments.catalog import AnalysedMetric, Catalog, ExperimentPlan
from flagd.experiments.model import BASIS_POINTS, Experiment
from flagd.results.analysis import statistic
from flagd.results.cache import ReductionCache
from flagd.results.phase_reader import PhaseReader
from flagd.results.replica import Replica
from flagd.results.sql.rollup import RollupPolicy
from flagd.rollouts.decision import Comparison, Decision, Look, decide
from flagd.rollouts.serving import RolloutState
from flagd.storage.types import Connection


def plan_of(row: RolloutState, catalog: Catalog) -> ExperimentPlan:
    """The rollout's stage as an experiment plan: replaced vs new at the stage's split, its guardrails."""
    rollout = row.rollout
    experiment = Experiment(
        key=rollout.experiment,
        flag=rollout.flag,
        variants=((rollout.replaces, BASIS_POINTS - row.share_bp), (rollout.variant, row.share_bp)),
        salt=rollout.salt,
        state="running",
        phase=row.phase,
        alpha=rollout.alpha,
    )
    metrics = tuple(
        AnalysedMetric("guardrail", catalog.metrics[g.metric])
        for g in rollout.guardrails
        if g.metric in catalog.metrics
    )
    return ExperimentPlan(experiment, None, metrics)


async def look_at(
    conn: Connection,
    catalog: Catalog,
    policy: RollupPolicy,
    cache: ReductionCache | None,
    row: RolloutState,
    now: datetime,
    clock: datetime,
    *,
    replica: Replica | None = None,
) -> tuple[Look, Decision]:
    """The stage's look as of `now` (what the data says) with `clock` timing the stage, and the decision."""
    rollout = row.rollout
    plan = plan_of(row, catalog)
    data = await PhaseReader(conn, plan, row.phase, policy, cache, now, replica=replica).read()
    directions = {g.metric: g for g in rollout.guardrails}
    comparisons = []
    for analysed in plan.metrics:
        reduction = data.reductions.get(analysed.metric.key)
        if reduction is None:
            continue
        comparisons.append(
            Comparison(
                directions[analysed.metric.key],
                statistic(analysed.metric, reduction.sums(rollout.replaces), cuped=False),
                statistic(analysed.metric, reduction.sums(rollout.variant), cuped=False),
            )
        )
    look = Look(
        stage=row.stage,
        elapsed_seconds=max((clock - row.stage_started_at).total_seconds(), 0.0),
        replaced_units=data.tally.units.get(rollout.replaces, 0),
        new_units=data.tally.units.get(rollout.variant, 0),
        multiple=data.tally.multiple,
        comparisons=tuple(comparisons),
    )
    return look, decide(rollout, look)


def answer(row: RolloutState, look: Look, decision: Decision) -> dict[str, Any]:
    """What a look sends back to the worker: the decision, and the statistics it logs."""
    return {
        "key": row.key,
        "version": row.version,
        "action": decision.action,
        "reason": decision.reason,
        "statistics": decision.statistics(look),
    }
