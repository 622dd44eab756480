"""The phases experiments really ran, and whether an exposure belongs to one: pure.

Every start and new phase records the phase (its variants and start) in `experiment_phases`, and
every stop, launch or new phase its end. An exposure reaches an analysis only when its experiment
ran, its phase is one the experiment ran, its variant one the phase split between, and its
timestamp within the phase (allowing the clients' clock skew, FLAGD_EVENTS_MAX_FUTURE_SKEW_SECONDS,
on either side). Each other exposure is refused with the code that says which it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Refusal = Literal["unknown_experiment", "unknown_phase", "unknown_variant", "outside_phase"]
REFUSALS: tuple[Refusal, ...] = ("unknown_experiment", "unknown_phase", "unknown_variant", "outside_phase")


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    experiment: str
    phase: int
    variants: frozenset[str]
    started_at: datetime
    ended_at: datetime | None
    """None while the phase runs."""

    @classmethod
    def from_row(
        cls, experiment: str, phase: int, variants: Iterable[str], started_at: str, ended_at: str | None
    ) -> PhaseRecord:
        """From the stored row as JSON gives it (times in ISO 8601)."""
        return cls(
            experiment,
            int(phase),
            frozenset(variants),
            datetime.fromisoformat(started_at),
            datetime.fromisoformat(ended_at) if ended_at is not None else None,
        )


PhaseRegistry = Mapping[str, Mapping[int, PhaseRecord]]
"""By experiment key, by phase."""


def registry(records: Iterable[PhaseRecord]) -> dict[str, dict[int, PhaseRecord]]:
    by_key: dict[str, dict[int, PhaseRecord]] = {}
    for record in records:
        by_key.setdefault(record.experiment, {})[record.phase] = record
    return by_key


def refusal(
    phases: PhaseRegistry, experiment: str, phase: int, variant: str, at: datetime, skew: timedelta
) -> tuple[Refusal, str] | None:
    """Why an exposure of `experiment` phase `phase` to `variant` at `at` cannot be analysed, or None."""
    ran = phases.get(experiment)
    if not ran:
        return "unknown_experiment", (
            f"experiment {experiment!r} has never run: check the key (a served flag's metadata names its "
            "experiment as experimentKey), and start the experiment before logging its exposures"
        )
    record = ran.get(phase)
    if record is None:
        return "unknown_phase", (
            f"experiment {experiment!r} has no phase {phase} (it ran {_listed(sorted(ran))}); log the phase "
            "the served flag names (experimentPhase)"
        )
    if variant not in record.variants:
        return "unknown_variant", (
            f"variant {variant!r} is not one of phase {phase}'s variants ({', '.join(sorted(record.variants))})"
        )
    if at < record.started_at - skew or (record.ended_at is not None and at > record.ended_at + skew):
        end = record.ended_at.isoformat() if record.ended_at is not None else "now"
        return "outside_phase", (
            f"the exposure's timestamp {at.isoformat()} is outside phase {phase} ({record.started_at.isoformat()} "
            f"to {end}, {skew.total_seconds():g} s of clock skew allowed)"
        )
    return None


def _listed(phases: list[int]) -> str:
    return f"phase {phases[0]}" if len(phases) == 1 else f"phases {phases[0]} to {phases[-1]}"
