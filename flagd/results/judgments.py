"""Health checks of an experiment's data: can the numbers be trusted? Pure verdicts over typed counts.

Broken tracking is the commonest reason results lie, so each check says what it found and what
to do. The phase reader gives the daily volumes and the counts (`flagd.results.phase_reader`);
judging them happens here, with no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import date

from flagd.results.model import Check, NoEstimate, PhaseData, SampleRatio

MULTIPLE_VARIANT_SHARE = 0.01
"""More than this share of units seen in several variants fails the check."""
TRAILING_DAYS = 7
MIN_TRAILING_DAYS = 3
DROP_BELOW = 0.5
SPIKE_ABOVE = 2.0


def judge_volume(what: str, daily: Mapping[date, int], today: date) -> Check:
    """Each complete day against the median of the days before it (up to TRAILING_DAYS)."""
    days = sorted(d for d in daily if d < today)
    flagged = []
    for index, day in enumerate(days):
        trailing = [daily[d] for d in days[max(0, index - TRAILING_DAYS) : index]]
        if len(trailing) < MIN_TRAILING_DAYS:
            continue
        median = statistics.median(trailing)
        ratio = daily[day] / median if median else float("inf")
        if ratio < DROP_BELOW or ratio > SPIKE_ABOVE:
            kind = "dropped" if ratio < DROP_BELOW else "spiked"
            flagged.append(f"{day}: {daily[day]} ({kind} to {ratio:.0%} of the trailing median {median:g})")
    name = f"volume: {what}"
    if not flagged:
        return Check(name, True, f"no day's {what} is below half or above twice its trailing median")
    return Check(
        name,
        False,
        "; ".join(flagged),
        f"check the {what} tracking on those days (a release, an outage, an SDK change); results over them may lie",
    )


def judge_multiple(multiple: int, total: int) -> Check:
    share = multiple / (multiple + total) if multiple + total else 0.0
    found = f"{multiple} units ({share:.1%}) were seen in more than one variant and are left out"
    if share <= MULTIPLE_VARIANT_SHARE:
        return Check("units in several variants", True, found)
    return Check(
        "units in several variants",
        False,
        found,
        "make sure every evaluation uses the same unit id (targeting key) and that the flag was not changed "
        "mid-phase; start a new phase once fixed",
    )


def judge_srm(result: SampleRatio | NoEstimate) -> Check:
    if isinstance(result, NoEstimate):
        return Check("sample ratio", True, f"not testable yet: {result.problem.message}")
    found = f"chi-squared p = {result.p_value:.3g} against the designed weights"
    if not result.mismatch:
        return Check("sample ratio", True, found)
    return Check(
        "sample ratio",
        False,
        found + ": the units are not split as designed",
        "look for exposures logged only in some variants, redirects or crashes in one variant, or bots; "
        "do not trust any result of this phase until it is explained",
    )


def judge_arrived(missing: Sequence[str]) -> Check:
    if not missing:
        return Check("metric events arrive", True, "every metric's event has arrived at least once")
    return Check(
        "metric events arrive",
        False,
        f"no event named {', '.join(repr(m) for m in missing)} has ever arrived",
        "check the event name in the app's track call against the metric definition (`flagd events tail`)",
    )


def judge_exposures_arrive(exposed: int, metric_events: int) -> Check:
    """Metric events since the phase started, but no exposure: exposures are not being logged."""
    if exposed or not metric_events:
        return Check("exposures arrive", True, f"{exposed} units exposed in this phase")
    return Check(
        "exposures arrive",
        False,
        f"{metric_events} metric events arrived since the phase started, but no exposure",
        "log an exposure (or evaluate through OFREP) where the flag is evaluated; without exposures there is "
        "nothing to compare",
    )


def health_checks(data: PhaseData, sample_ratio: SampleRatio | NoEstimate) -> tuple[Check, ...]:
    """Every check of one phase, in the order the page shows them (the decision names the first failed)."""
    tally, today = data.tally, data.now.date()
    if data.started_at is not None:
        since_start = data.events_since_start
    else:  # a phase whose start was not recorded: the events of the days since its first exposure
        since_start = sum(
            n for days in data.volumes.values() for day, n in days.items() if day >= data.phase_start
        )
    return (
        judge_srm(sample_ratio),
        judge_multiple(tally.multiple, tally.total),
        judge_volume("exposures", tally.daily, today),
        *(judge_volume(f"{name} events", data.volumes[name], today) for name in sorted(data.volumes)),
        judge_arrived(data.never_arrived),
        judge_exposures_arrive(tally.total + tally.multiple, since_start),
    )
