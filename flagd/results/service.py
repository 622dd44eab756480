"""An experiment's results: its stored definition, the reductions in the database, the analysis."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flagd.config.repository import StoredConfig
from flagd.errors import InvalidParameter, NotFound
from flagd.experiments.model import BASIS_POINTS, Experiment, Metric
from flagd.experiments.reading import read_sections
from flagd.experiments.serving import Lifecycle, with_lifecycle
from flagd.results.analysis import (
    Options,
    adjust,
    analyse_metric,
    impact,
    progress,
    series,
    srm,
    units_per_day,
)
from flagd.results.cache import ReductionCache
from flagd.results.days import day_reductions
from flagd.results.decision import decide, guardrail_verdicts
from flagd.results.health import (
    Check,
    daily_events,
    judge_arrived,
    judge_exposures_arrive,
    judge_multiple,
    judge_srm,
    judge_volume,
    never_arrived,
)
from flagd.results.reader import RollupReader
from flagd.results.reduce import (
    Reduction,
    VariantSums,
    exposure_tally,
    segment_population,
)
from flagd.results.rollup import RollupPolicy, catch_up, metric_sources
from flagd.storage.types import Connection


async def experiment_results(
    conn: Connection,
    stored: StoredConfig,
    key: str,
    phase: int | None,
    options: Options,
    now: datetime,
    policy: RollupPolicy,
    cache: ReductionCache | None = None,
    segment: str | None = None,
) -> dict[str, Any]:
    experiment, metrics, lifecycle, chosen = _resolve(stored, key, phase)
    options = _planned(options, experiment)
    names = [name for name, _ in experiment.variants]
    weights = dict(experiment.variants)
    control, treatments = names[0], names[1:]
    tally = await exposure_tally(conn, key, chosen, now)
    counts, multiple, daily = tally.units, tally.multiple, tally.daily
    per_day = units_per_day(daily, now.date())
    share = experiment.allocation_bp / BASIS_POINTS
    reader = await RollupReader.caught_up(
        conn, key, chosen, [r.metric for r in experiment.metrics], metrics, policy, cache
    )
    analysed = []
    progress_of_primary = None
    for role in experiment.metrics:
        metric = metrics[role.metric]
        rolled = await reader.reduce(role.metric, {"": counts})
        reduction = rolled.get("", Reduction(metric.key, {}, None))
        result = {"role": role.role, **analyse_metric(metric, reduction, control, treatments, options)}
        for comparison in result["comparisons"]:
            comparison["impact"] = impact(metric, comparison, per_day, share, reduction.variants.get(control))
        if role.role == "primary" and progress_of_primary is None:
            empty = VariantSums(control, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            progress_of_primary = progress(
                metric,
                reduction.variants.get(control, empty),
                weights,
                sum(counts.values()),
                per_day,
                options,
            )
        analysed.append(result)
    adjust(analysed, options.correction)
    segments = (
        None
        if segment is None
        else await _segments(conn, reader, experiment, segment, control, treatments, options)
    )
    sample_ratio = srm(counts, weights)
    checks = [judge_srm(sample_ratio)]
    checks += await _checks(conn, experiment, metrics, chosen, counts, multiple, daily, now, lifecycle)
    return {
        "experiment": key,
        "phase": chosen,
        "state": experiment.state,
        "asOf": now,
        "freshness": reader.freshness(),
        "control": control,
        "alpha": options.alpha,
        "correction": options.correction,
        "units": [{"variant": v, "units": counts.get(v, 0)} for v in names],
        "unitsInSeveralVariants": multiple,
        "sampleRatio": sample_ratio,
        "decision": decide(analysed, checks, progress_of_primary),
        "health": [c.to_json() for c in checks],
        "guardrails": guardrail_verdicts(analysed),
        "progress": progress_of_primary,
        "unitsPerDay": per_day,
        "metrics": analysed,
        "segments": segments,
    }


async def _segments(
    conn: Connection,
    reader: RollupReader,
    experiment: Experiment,
    attribute: str,
    control: str,
    treatments: list[str],
    options: Options,
) -> dict[str, Any]:
    """Every metric broken down by one exposure attribute, p-values adjusted across all the segments."""
    broken_down: dict[str, list[dict[str, Any]]] = {}
    population = await segment_population(conn, reader.experiment, reader.phase, attribute)
    for role in experiment.metrics:
        metric = reader.metrics[role.metric]
        by_value = await reader.reduce(role.metric, population, attribute)
        for value, reduction in by_value.items():
            result = {"role": role.role, **analyse_metric(metric, reduction, control, treatments, options)}
            broken_down.setdefault(value, []).append(result)
    every = [result for results in broken_down.values() for result in results]
    adjust(every, options.correction)
    values = [
        {"value": value, "units": sum(v["units"] for v in results[0]["variants"]), "metrics": results}
        for value, results in broken_down.items()
    ]
    values.sort(key=lambda v: -v["units"])
    return {
        "attribute": attribute,
        "warning": f"{len(values)} segments x {len(experiment.metrics)} metrics x {len(treatments)} variants are "
        f"{len(every) * len(treatments)} comparisons: some will look significant by chance. The adjusted p-values "
        f"({options.correction}) account for all of them; a segment result is a question to test, not a finding.",
        "values": values,
    }


def _planned(options: Options, experiment: Experiment) -> Options:
    """The options with the experiment's own plan: the sequential design's units, the MDE, and its alpha
    unless the request chose one."""
    return replace(
        options,
        design_units=experiment.expected_units,
        mde=experiment.mde,
        alpha=options.alpha if options.alpha_given else experiment.alpha,
    )


def _resolve(
    stored: StoredConfig, key: str, phase: int | None
) -> tuple[Experiment, dict[str, Metric], Lifecycle | None, int]:
    """The experiment (in its stored lifecycle), the metrics, its lifecycle and the phase to analyse."""
    sections = read_sections(stored.document(), [])
    experiment = sections.experiments.get(key)
    lifecycle = stored.lifecycles.get(key)
    if experiment is None:
        raise NotFound(f'experiment "{key}" does not exist (or its definition no longer reads cleanly)')
    if lifecycle is not None:
        experiment = with_lifecycle(experiment, lifecycle)
    chosen = experiment.phase if phase is None else phase
    if chosen < 1 or chosen > max(experiment.phase, 0):
        raise InvalidParameter(
            f"phase must be between 1 and {experiment.phase} (the experiment's phases so far), got {chosen}"
            if experiment.phase
            else f'experiment "{key}" has not started, so it has no results yet'
        )
    return experiment, sections.metrics, lifecycle, chosen


MAX_SERIES_DAYS = 92
DAYS_BUDGET_SECONDS = 2.0
"""How long a series request spends computing past days nobody stored yet (the keeper stores them for
running experiments); the days it leaves out are listed as pendingDays and appear on a later look."""


async def experiment_timeseries(
    conn: Connection,
    stored: StoredConfig,
    key: str,
    phase: int | None,
    metric_key: str | None,
    options: Options,
    now: datetime,
    policy: RollupPolicy,
    cache: ReductionCache | None = None,
) -> dict[str, Any]:
    """Per day since the phase began (at most MAX_SERIES_DAYS, the latest), the cumulative estimates:
    the past days as of their ends (flagd.results.days), today from the roll-ups."""
    experiment, metrics, lifecycle, chosen = _resolve(stored, key, phase)
    options = _planned(options, experiment)
    roles = {role.metric: role.role for role in experiment.metrics}
    if metric_key is None:
        metric_key = next((m for m, r in roles.items() if r == "primary"), next(iter(roles), None))
    if metric_key is None or metric_key not in roles:
        raise InvalidParameter(
            f"metric must be one of the experiment's metrics ({', '.join(roles) or 'none'}), got {metric_key!r}"
        )
    tally = await exposure_tally(conn, key, chosen, now)
    metric = metrics[metric_key]
    past = _series_days(lifecycle, tally.daily, now)
    stored_days = await day_reductions(
        conn,
        key,
        chosen,
        metric,
        metrics,
        past,
        now=now,
        pre_seconds=policy.pre_seconds,
        budget_seconds=DAYS_BUDGET_SECONDS,
    )
    reader = await RollupReader.caught_up(conn, key, chosen, [metric_key], metrics, policy, cache)
    today = await reader.reduce(metric_key, {"": tally.units})
    days = [(day, stored_days[day]) for day in past if day in stored_days]
    pending = [day.isoformat() for day in past if day not in stored_days]
    days.append((now.date(), today.get("", Reduction(metric.key, {}, None))))
    names = [name for name, _ in experiment.variants]
    return {
        "experiment": key,
        "phase": chosen,
        "metric": metric_key,
        "control": names[0],
        "days": series(metric, days, names[0], names[1:], options),
        "pendingDays": pending,
    }


MAX_HEADLINES = 50
"""The list computes the decision of at most this many started experiments (the most recently started)."""


async def list_experiments(
    conn: Connection, stored: StoredConfig, policy: RollupPolicy, cache: ReductionCache | None, now: datetime
) -> list[dict[str, Any]]:
    """Every experiment with its state, phase, flag, primary metric, units exposed in its current phase and
    headline: the decision of its current phase (None before it starts, or when it cannot be analysed)."""
    sections = read_sections(stored.document(), [])
    rows = await conn.fetch(
        "SELECT e.experiment, count(*) AS units FROM exposures e JOIN experiments x "
        "ON x.key = e.experiment AND x.phase = e.phase GROUP BY e.experiment"
    )
    units = {r["experiment"]: int(r["units"]) for r in rows}
    listed = []
    for key, definition in stored.experiments.items():
        lifecycle = stored.lifecycles.get(key)
        experiment = sections.experiments.get(key)
        primary = (
            next((r.metric for r in experiment.metrics if r.role == "primary"), None) if experiment else None
        )
        listed.append(
            {
                "key": key,
                "name": (definition.get("name") if isinstance(definition, dict) else None) or key,
                "flag": definition.get("flag") if isinstance(definition, dict) else None,
                "state": lifecycle.state if lifecycle else "draft",
                "phase": lifecycle.phase if lifecycle else 0,
                "primaryMetric": primary,
                "units": units.get(key, 0),
                "headline": None,
                "results": f"/v1/experiments/{key}/results",
            }
        )
    started = [(key, lifecycle) for key, lifecycle in stored.lifecycles.items() if lifecycle.phase >= 1]
    started.sort(key=lambda item: item[1].phase_started_at or "", reverse=True)
    by_key = {str(entry["key"]): entry for entry in listed}
    for key, _ in started[:MAX_HEADLINES]:
        if key not in by_key:
            continue
        try:
            results = await experiment_results(conn, stored, key, None, Options(), now, policy, cache)
        except (NotFound, InvalidParameter):
            continue  # its definition no longer reads cleanly: the results endpoint says why
        by_key[key]["headline"] = results["decision"]
    return listed


async def _checks(
    conn: Connection,
    experiment: Experiment,
    metrics: dict[str, Metric],
    phase: int,
    counts: dict[str, int],
    multiple: int,
    daily: dict[date, int],
    now: datetime,
    lifecycle: Lifecycle | None,
) -> list[Check]:
    names = sorted(_event_names(experiment, metrics))
    started = _phase_start(lifecycle, daily, now)
    volumes = await daily_events(conn, names, started)
    checks = [judge_multiple(multiple, sum(counts.values())), judge_volume("exposures", daily, now.date())]
    checks += [judge_volume(f"{name} events", volumes[name], now.date()) for name in names]
    checks.append(judge_arrived(await never_arrived(conn, names)))
    since_start = sum(n for days in volumes.values() for day, n in days.items() if day >= started)
    checks.append(judge_exposures_arrive(sum(counts.values()) + multiple, since_start))
    return checks


def _event_names(experiment: Experiment, metrics: dict[str, Metric]) -> set[str]:
    names: set[str] = set()
    for role in experiment.metrics:
        metric = metrics[role.metric]
        parts = (
            [metric]
            if metric.type != "ratio"
            else [metrics[str(metric.numerator)], metrics[str(metric.denominator)]]
        )
        names.update(p.event for p in parts if p.event)
    return names


def _series_days(lifecycle: Lifecycle | None, daily: dict[date, int], now: datetime) -> list[date]:
    """The past days of the series: from the phase's start, the latest MAX_SERIES_DAYS - 1 before today."""
    first = _phase_start(lifecycle, daily, now)
    count = min((now.date() - first).days, MAX_SERIES_DAYS - 1)
    return [now.date() - timedelta(days=offset) for offset in range(count, 0, -1)]


def _phase_start(lifecycle: Lifecycle | None, daily: dict[date, int], now: datetime) -> date:
    """The day the phase began, or its first exposure's day if that is earlier (events sent late, with
    their original timestamps, after a start)."""
    days = [min(daily)] if daily else []
    if lifecycle is not None and lifecycle.phase_started_at:
        days.append(datetime.fromisoformat(lifecycle.phase_started_at).astimezone(UTC).date())
    return min(days) if days else now.date()


async def keep_up(conn: Connection, stored: StoredConfig, policy: RollupPolicy, now: datetime) -> int:
    """For every running experiment's current phase: catch its roll-ups up and store its closed days, so
    that requests find little to do. Roll-ups another catch-up holds are skipped. Returns the number of
    experiments kept up."""
    kept = 0
    for key, lifecycle in stored.lifecycles.items():
        if lifecycle.state != "running" or lifecycle.phase < 1:
            continue
        try:
            experiment, metrics, _, phase = _resolve(stored, key, None)
        except (NotFound, InvalidParameter):
            continue  # its definition no longer reads cleanly: nothing to keep up
        names = [role.metric for role in experiment.metrics]
        per_metric = {name: metric_sources(metrics[name], metrics, policy.pre_seconds) for name in names}
        for source in {s.key: s for parts in per_metric.values() for s in parts}.values():
            await catch_up(conn, key, phase, source, wait=False)
        past = _series_days(lifecycle, (await exposure_tally(conn, key, phase, now)).daily, now)
        for name in names:
            await day_reductions(
                conn, key, phase, metrics[name], metrics, past, now=now, pre_seconds=policy.pre_seconds
            )
        kept += 1
    return kept
