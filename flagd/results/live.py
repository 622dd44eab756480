"""An additive metric's roll-up sums, kept live: a look after new events reads the changed units only.

Where a look starts from, first found first:

1. the sums this results process read last for the metric (flagd.results.cache.Kept);
2. the sums any process stored last (`results_sums`), so a new process does not reduce every unit again;
3. nothing: every unit's rows are reduced (flagd.results.sql.reduce.rolled_sums).

A start read at the roll-ups' current versions is the answer; one read at earlier versions still in the
change log is brought forward by the delta (flagd.results.sql.delta); an older one is dropped. The
versions, the start stored in the database, the rows and the change log are all read in one
repeatable-read snapshot, so the versions the answer is labelled with are the versions it was read at.
A new answer is stored for the other processes (the latest stored wins; an older one is still a start).
"""

from __future__ import annotations

from dataclasses import dataclass

from flagd.experiments.catalog import ResolvedMetric
from flagd.results.cache import Kept, ReductionCache
from flagd.results.model import Reduction
from flagd.results.sql.codec import decode, encode
from flagd.results.sql.delta import brought_forward, delta
from flagd.results.sql.reduce import rolled_sums
from flagd.storage.types import Connection


@dataclass(frozen=True, slots=True)
class LiveMetric:
    """Which metric of which experiment phase, read from which roll-ups (its sources' keys, in order)."""

    experiment: str
    phase: int
    metric: ResolvedMetric
    signature: str
    sources: tuple[str, ...]

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.experiment, self.phase, self.signature)


@dataclass(frozen=True, slots=True)
class _Versions:
    current: tuple[int, ...]
    changes_from: tuple[int | None, ...]

    def reaches(self, start: Kept) -> bool:
        """Whether the change log holds every change from `start`'s versions to the current ones."""
        if len(start.versions) != len(self.current):
            return False
        return all(
            seen == now or (logged is not None and logged <= seen < now)
            for seen, now, logged in zip(start.versions, self.current, self.changes_from, strict=True)
        )


async def live_rolled(conn: Connection, live: LiveMetric, cache: ReductionCache | None) -> Reduction | None:
    """The metric's sums over the units with roll-up rows at the roll-ups' current versions (None: no unit
    has a row); `flagd.results.sql.reduce.fill` adds the units without."""
    kept = cache.kept(live.key) if cache is not None else None
    remembered = kept
    stored = False
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        versions = await _versions(conn, live)
        if versions is None:  # a roll-up never built: nothing to keep
            found = await rolled_sums(
                conn, live.experiment, live.phase, live.metric, live.sources, attribute=None
            )
            return found.get("")
        if kept is None or not versions.reaches(kept):
            kept = await _stored(conn, live)
            stored = kept is not None
            if kept is not None and not versions.reaches(kept):
                kept = None
        if kept is None:
            found = await rolled_sums(
                conn, live.experiment, live.phase, live.metric, live.sources, attribute=None
            )
            answer = Kept(versions.current, found.get(""))
        elif kept.versions == versions.current:
            answer = kept
        else:
            sums, reached = await delta(
                conn, live.experiment, live.phase, live.metric, live.sources, kept.versions
            )
            base = kept.rolled or Reduction(live.metric.key, {}, _cap(live.metric))
            forward = brought_forward(base, sums, reached)
            answer = Kept(versions.current, forward if forward.variants else None)
            if cache is not None:
                cache.forwarded += 1
    if answer is not kept or not stored:
        await _store(conn, live, answer)
    if cache is not None:
        cache.keep(live.key, answer, hit=answer is remembered)
    return answer.rolled


def _cap(metric: ResolvedMetric) -> float | None:
    winsor = metric.metric.winsorisation
    return winsor.value if winsor is not None else None


async def _versions(conn: Connection, live: LiveMetric) -> _Versions | None:
    rows = await conn.fetch(
        "SELECT source, version, changes_from FROM results_rollups "
        "WHERE experiment = $1 AND phase = $2 AND source = ANY($3::text[])",
        live.experiment,
        live.phase,
        list(live.sources),
    )
    by_source = {r["source"]: (int(r["version"]), r["changes_from"]) for r in rows}
    if any(s not in by_source for s in live.sources):
        return None
    return _Versions(
        tuple(by_source[s][0] for s in live.sources), tuple(by_source[s][1] for s in live.sources)
    )


async def _stored(conn: Connection, live: LiveMetric) -> Kept | None:
    row = await conn.fetchrow(
        "SELECT versions, sums::text AS sums FROM results_sums WHERE experiment = $1 AND phase = $2 "
        "AND signature = $3",
        *live.key,
    )
    if row is None:
        return None
    raw = decode(live.metric.key, row["sums"])
    return Kept(tuple(int(v) for v in row["versions"]), raw if raw.variants else None)


async def _store(conn: Connection, live: LiveMetric, kept: Kept) -> None:
    rolled = kept.rolled or Reduction(live.metric.key, {}, _cap(live.metric))
    await conn.execute(
        "INSERT INTO results_sums AS s (experiment, phase, signature, versions, sums) "
        "VALUES ($1, $2, $3, $4, $5::text::jsonb) ON CONFLICT (experiment, phase, signature) DO UPDATE "
        "SET versions = EXCLUDED.versions, sums = EXCLUDED.sums WHERE s.versions <> EXCLUDED.versions",
        *live.key,
        list(kept.versions),
        encode(rolled),
    )
