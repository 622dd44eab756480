"""Health checks of an experiment's data: can the numbers be trusted? Pure verdicts over typed counts.

Broken tracking is the commonest reason results lie, so each check says what it found and what
to do. The phase reader gives the daily volumes and the counts (`flagd.results.phase_reader`);
judging them happens here, with no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import date

from flagd.results.model import Check, DataAlarm, NoEstimate, PhaseData, SampleRatio
from flagd.results.words import count, day, plural

MULTIPLE_VARIANT_SHARE = 0.01
"""More than this share of units seen in several variants fails the check."""
TRAILING_DAYS = 7
MIN_TRAILING_DAYS = 3
DROP_BELOW = 0.5
SPIKE_ABOVE = 2.0


def _unusual(daily: Mapping[date, int], today: date) -> tuple[list[tuple[date, int, float]], int]:
    """The complete days below half or above twice the median of the days before them (up to
    TRAILING_DAYS), as (day, count, median); and how many days could be judged."""
    days = sorted(d for d in daily if d < today)
    flagged, judged = [], 0
    for index, moment in enumerate(days):
        trailing = [daily[d] for d in days[max(0, index - TRAILING_DAYS) : index]]
        if len(trailing) < MIN_TRAILING_DAYS:
            continue
        judged += 1
        median = statistics.median(trailing)
        ratio = daily[moment] / median if median else float("inf")
        if ratio < DROP_BELOW or ratio > SPIKE_ABOVE:
            flagged.append((moment, daily[moment], median))
    return flagged, judged


def judge_volume(what: str, daily: Mapping[date, int], today: date, noun: str = "units") -> Check:
    """Each complete day against the median of the days before it. `what` is "exposures" or
    "<event> events"; `noun` what a unit is (users, sessions ...)."""
    flagged, judged = _unusual(daily, today)
    exposures = what == "exposures"
    event = what.removesuffix(" events")
    name = f"volume: {what}"
    if not judged:
        return Check(
            name,
            True,
            f"Too few days yet to spot an unusual one: that takes {MIN_TRAILING_DAYS + 1} complete days.",
        )
    if not flagged:
        subject = f"The number of {noun} exposed" if exposures else f"The number of “{event}” events"
        return Check(name, True, f"{subject} was steady: no day had under half or over twice the usual.")
    found = []
    for moment, seen, median in flagged:
        fewer = "Fewer" if seen < median else "More"
        subject = (
            f"{fewer} {noun} than usual were exposed"
            if exposures
            else f"{fewer} “{event}” events than usual arrived"
        )
        found.append(f"{subject} on {day(moment)} ({count(seen)}, against a typical {count(round(median))})")
    todo = (
        (
            "Check the rollout and the SDK logs for "
            if exposures
            else f"Check the app's tracking of “{event}” on "
        )
        + ("that day" if len(flagged) == 1 else "those days")
        + (" (a release, an outage, an SDK change): results that include them may be wrong.")
    )
    return Check(name, False, "; ".join(found) + ".", todo)


def judge_multiple(multiple: int, total: int, noun: tuple[str, str] = ("unit", "units")) -> Check:
    share = multiple / (multiple + total) if multiple + total else 0.0
    one, many = noun
    if not multiple:
        return Check("units in several variants", True, f"No {one} saw more than one variant.")
    found = (
        f"{plural(multiple, one, many)} ({share:.1%}) saw more than one variant and "
        f"{'is' if multiple == 1 else 'are'} left out of the results."
    )
    if share <= MULTIPLE_VARIANT_SHARE:
        return Check("units in several variants", True, found)
    return Check(
        "units in several variants",
        False,
        found,
        f"Make sure every evaluation uses the same {one} id (the targeting key) and that the flag did not change "
        "during the phase, then start a new phase.",
    )


def _odds(p_value: float) -> str:
    """How often a split this uneven happens by chance, in words."""
    if p_value < 0.001:
        return "fewer than 1 in 1,000"
    return f"about 1 in {count(round(1 / p_value))}" if p_value > 0 else "almost never"


def judge_srm(
    result: SampleRatio | NoEstimate,
    units: Mapping[str, int] | None = None,
    weights: Mapping[str, int] | None = None,
    noun: str = "units",
) -> Check:
    """Whether the units are split between variants as the weights planned (a chi-squared test)."""
    if isinstance(result, NoEstimate):
        return Check(
            "sample ratio",
            True,
            f"Too few {noun} yet to test whether the split between variants is as planned.",
        )
    split = ""
    if units is not None and weights:
        total = sum(weights.values())
        seen = " vs ".join(count(units.get(v, 0)) for v in weights)
        planned = "/".join(f"{100 * w / total:.0f}" for w in weights.values())
        split = f"{seen} where {planned} was planned"
    if not result.mismatch:
        return Check(
            "sample ratio",
            True,
            f"The {noun} are split between variants as planned" + (f" ({split})." if split else "."),
        )
    return Check(
        "sample ratio",
        False,
        f"The split of {noun} between variants is off"
        + (f" ({split})" if split else "")
        + f": a split this uneven happens by chance in {_odds(result.p_value)} experiments.",
        "Look for exposures logged in only some variants, redirects or crashes in one variant, or bots, "
        "and trust no result of this phase until the cause is found.",
    )


def judge_arrived(missing: Sequence[str]) -> Check:
    if not missing:
        return Check("metric events arrive", True, "Every metric's event has arrived at least once.")
    names = [f"“{m}”" for m in missing]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return Check(
        "metric events arrive",
        False,
        f"No {listed} event has arrived yet.",
        "Check the event name in the app's track call against the metric's definition "
        "(`flagd events tail` shows what arrives).",
    )


def judge_exposures_arrive(
    exposed: int, metric_events: int, noun: tuple[str, str] = ("unit", "units")
) -> Check:
    """Metric events since the phase started, but no exposure: exposures are not being logged."""
    if exposed or not metric_events:
        return Check("exposures arrive", True, f"{plural(exposed, *noun)} exposed in this phase so far.")
    return Check(
        "exposures arrive",
        False,
        f"{plural(metric_events, 'metric event')} arrived since the phase started, but no exposure.",
        "Log an exposure where the flag is evaluated (or evaluate through OFREP): without exposures there is "
        "nothing to compare.",
    )


def judge_data_alarms(alarms: Sequence[DataAlarm]) -> Check:
    """The data-health alarms open on the metrics' events (flagd.health): any fails the check."""
    if not alarms:
        return Check("data health", True, "No data-health alarm is open on the events the metrics read.")
    return Check(
        "data health",
        False,
        " ".join(a.summary for a in alarms),
        " ".join(dict.fromkeys(a.advice for a in alarms))
        + " Results that include these hours may be wrong (the data-health page lists the alarms).",
    )


def health_checks(
    data: PhaseData,
    sample_ratio: SampleRatio | NoEstimate,
    weights: Mapping[str, int] | None = None,
    noun: tuple[str, str] = ("unit", "units"),
) -> tuple[Check, ...]:
    """Every check of one phase, in the order the page shows them (the decision names the first failed).
    `weights` are the planned split, `noun` what a unit is (singular, plural)."""
    tally, today = data.tally, data.now.date()
    if data.started_at is not None:
        since_start = data.events_since_start
    else:  # a phase whose start was not recorded: the events of the days since its first exposure
        since_start = sum(
            n for days in data.volumes.values() for moment, n in days.items() if moment >= data.phase_start
        )
    return (
        judge_srm(sample_ratio, tally.units, weights, noun[1]),
        judge_multiple(tally.multiple, tally.total, noun),
        judge_volume("exposures", tally.daily, today, noun[1]),
        *(judge_volume(f"{name} events", data.volumes[name], today) for name in sorted(data.volumes)),
        judge_arrived(data.never_arrived),
        judge_exposures_arrive(tally.total + tally.multiple, since_start, noun),
        judge_data_alarms(data.data_alarms),
    )
