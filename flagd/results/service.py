"""An experiment's results: its stored definition, the reductions in the database, the analysis."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flagd.config.repository import StoredConfig
from flagd.errors import InvalidParameter, NotFound
from flagd.experiments.reading import read_sections
from flagd.experiments.serving import with_lifecycle
from flagd.results.analysis import Options, adjust, analyse_metric, srm
from flagd.results.reduce import exposure_counts, reduce_metric
from flagd.storage.types import Connection

PRE_EXPOSURE_SECONDS = 14 * 86_400
"""CUPED's covariate: each unit's same metric in this long before its first exposure."""


async def experiment_results(
    conn: Connection, stored: StoredConfig, key: str, phase: int | None, options: Options, now: datetime
) -> dict[str, Any]:
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
    names = [name for name, _ in experiment.variants]
    control, treatments = names[0], names[1:]
    counts, multiple = await exposure_counts(conn, key, chosen, now)
    analysed = []
    for role in experiment.metrics:
        metric = sections.metrics[role.metric]
        reduction = await reduce_metric(
            conn, key, chosen, metric, sections.metrics, end=now, pre_seconds=PRE_EXPOSURE_SECONDS
        )
        analysed.append(
            {"role": role.role, **analyse_metric(metric, reduction, control, treatments, options)}
        )
    adjust(analysed, options.correction)
    return {
        "experiment": key,
        "phase": chosen,
        "state": experiment.state,
        "asOf": now,
        "control": control,
        "alpha": options.alpha,
        "correction": options.correction,
        "units": [{"variant": v, "units": counts.get(v, 0)} for v in names],
        "unitsInSeveralVariants": multiple,
        "sampleRatio": srm(counts, dict(experiment.variants)),
        "metrics": analysed,
    }
