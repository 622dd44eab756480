"""Every experiment and metric of one config version, parsed once: what results are computed from.

The stored definitions are read (`flagd.experiments.reading`) and combined with each experiment's
lifecycle columns once per config version, when the snapshot is built; every results request,
page and keeper round reads this instead of parsing the document again. A ratio metric's parts
are resolved here, so nothing downstream looks its numerator and denominator up again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagd.experiments.model import Experiment, Metric, Role
from flagd.experiments.reading import read_sections
from flagd.experiments.serving import Lifecycle, with_lifecycle


@dataclass(frozen=True, slots=True)
class ResolvedMetric:
    """A metric with the metrics it reads events through: itself, or a ratio's numerator and denominator."""

    metric: Metric
    parts: tuple[Metric, ...]

    @property
    def key(self) -> str:
        return self.metric.key

    @property
    def event_names(self) -> frozenset[str]:
        return frozenset(name for p in self.parts for name in p.event_names)


@dataclass(frozen=True, slots=True)
class AnalysedMetric:
    """One of an experiment's metrics, in the role the experiment gives it."""

    role: Role
    resolved: ResolvedMetric

    @property
    def metric(self) -> Metric:
        return self.resolved.metric


@dataclass(frozen=True, slots=True)
class ExperimentPlan:
    """A readable experiment in its stored lifecycle, with its metrics resolved: all results need of it."""

    experiment: Experiment
    lifecycle: Lifecycle | None
    metrics: tuple[AnalysedMetric, ...]

    @property
    def key(self) -> str:
        return self.experiment.key

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.experiment.variants)

    @property
    def control(self) -> str:
        return self.variant_names[0]

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.variant_names[1:]

    @property
    def weights(self) -> dict[str, int]:
        return dict(self.experiment.variants)

    @property
    def primary(self) -> AnalysedMetric | None:
        return next((m for m in self.metrics if m.role == "primary"), None)

    def analysed(self, key: str) -> AnalysedMetric | None:
        return next((m for m in self.metrics if m.metric.key == key), None)

    @property
    def event_names(self) -> frozenset[str]:
        return frozenset(name for m in self.metrics for name in m.resolved.event_names)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """An experiment as listed: its plan when its definition reads cleanly (else None)."""

    key: str
    name: str
    flag: str | None
    state: str
    phase: int
    phase_started_at: str | None
    plan: ExperimentPlan | None


@dataclass(frozen=True, slots=True)
class Catalog:
    version: int
    entries: dict[str, CatalogEntry]
    metrics: dict[str, ResolvedMetric]

    def plan(self, key: str) -> ExperimentPlan | None:
        entry = self.entries.get(key)
        return entry.plan if entry is not None else None

    @classmethod
    def empty(cls) -> Catalog:
        return cls(-1, {}, {})

    @classmethod
    def build(
        cls,
        version: int,
        document: Mapping[str, Any],
        definitions: Mapping[str, Any],
        lifecycles: Mapping[str, Lifecycle],
    ) -> Catalog:
        """From the stored document (flags, metrics, layers, experiments), the authors' experiment
        definitions as stored and the lifecycle columns."""
        sections = read_sections(document, [])
        resolved = {key: _resolve(metric, sections.metrics) for key, metric in sections.metrics.items()}
        metrics = {key: value for key, value in resolved.items() if value is not None}
        entries = {}
        for key, definition in definitions.items():
            lifecycle = lifecycles.get(key)
            experiment = sections.experiments.get(key)
            plan = None
            if experiment is not None and all(r.metric in metrics for r in experiment.metrics):
                if lifecycle is not None:
                    experiment = with_lifecycle(experiment, lifecycle)
                plan = ExperimentPlan(
                    experiment,
                    lifecycle,
                    tuple(AnalysedMetric(r.role, metrics[r.metric]) for r in experiment.metrics),
                )
            written = definition if isinstance(definition, dict) else {}
            entries[key] = CatalogEntry(
                key=key,
                name=str(written.get("name") or key),
                flag=written.get("flag") if isinstance(written.get("flag"), str) else None,
                state=lifecycle.state if lifecycle else "draft",
                phase=lifecycle.phase if lifecycle else 0,
                phase_started_at=lifecycle.phase_started_at if lifecycle else None,
                plan=plan,
            )
        return cls(version, entries, metrics)


def _resolve(metric: Metric, metrics: Mapping[str, Metric]) -> ResolvedMetric | None:
    """The metric with its parts; None for a ratio whose parts are gone (reading reports it)."""
    if metric.type != "ratio":
        return ResolvedMetric(metric, (metric,))
    numerator, denominator = metrics.get(str(metric.numerator)), metrics.get(str(metric.denominator))
    if numerator is None or denominator is None:
        return None
    return ResolvedMetric(metric, (numerator, denominator))
