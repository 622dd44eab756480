"""Reading an experiment phase's metrics from its roll-ups: catch them up, then reduce, through the cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flagd.experiments.model import Metric
from flagd.results.cache import ReductionCache
from flagd.results.days import signature
from flagd.results.reduce import Reduction, reduce_rolled_by
from flagd.results.rollup import RollupPolicy, RollupState, catch_up, metric_sources, rollup_states
from flagd.storage.types import Connection


@dataclass(frozen=True, slots=True)
class RollupReader:
    conn: Connection
    experiment: str
    phase: int
    metrics: dict[str, Metric]
    policy: RollupPolicy
    sources: dict[str, tuple[str, ...]]
    """Per metric read, the keys of its sources."""
    states: dict[str, RollupState]
    cache: ReductionCache | None

    @classmethod
    async def caught_up(
        cls,
        conn: Connection,
        experiment: str,
        phase: int,
        names: Sequence[str],
        metrics: dict[str, Metric],
        policy: RollupPolicy,
        cache: ReductionCache | None,
    ) -> RollupReader:
        """A reader of these metrics, their roll-ups brought up to date first.

        A roll-up another catch-up holds is read as of its last one (the freshness says when)
        rather than waited for, unless it has never been built."""
        per_metric = {name: metric_sources(metrics[name], metrics, policy.pre_seconds) for name in names}
        unique = list({s.key: s for parts in per_metric.values() for s in parts}.values())
        built = await rollup_states(conn, experiment, phase, (s.key for s in unique))
        for source in unique:
            await catch_up(conn, experiment, phase, source, wait=source.key not in built)
        states = await rollup_states(conn, experiment, phase, (s.key for s in unique))
        sources = {name: tuple(s.key for s in parts) for name, parts in per_metric.items()}
        return cls(conn, experiment, phase, metrics, policy, sources, states, cache)

    async def reduce(
        self, name: str, population: dict[str, dict[str, int]], attribute: str | None = None
    ) -> dict[str, Reduction]:
        """Metric `name` per segment of `attribute` (one, "", without), filled with `population`."""
        metric = self.metrics[name]
        key = (
            self.experiment,
            self.phase,
            signature(metric, self.metrics, self.policy.pre_seconds),
            tuple((k, self.states[k].version if k in self.states else 0) for k in self.sources[name]),
            attribute,
            tuple(sorted((segment, tuple(sorted(counts.items()))) for segment, counts in population.items())),
        )
        found = self.cache.get(key) if self.cache is not None else None
        if found is None:
            found = await reduce_rolled_by(
                self.conn,
                self.experiment,
                self.phase,
                metric,
                self.metrics,
                self.sources[name],
                attribute=attribute,
                population=population,
            )
            if self.cache is not None:
                self.cache.put(key, found)
        return found

    def freshness(self) -> dict[str, Any]:
        """When the roll-ups read were last caught up (the oldest), and the newest event they hold."""
        caught_up = [s.caught_up_at for s in self.states.values()]
        latest = [s.latest_event_at for s in self.states.values() if s.latest_event_at is not None]
        through: datetime | None = min(caught_up) if caught_up else None
        return {"dataThrough": through, "latestEventReceived": max(latest) if latest else None}
