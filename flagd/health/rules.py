"""The decision rules of the data-health alarms: pure functions over hourly counts, no I/O.

Each completed UTC hour of each event name is judged against a baseline:

- volume: the same hour of the week over the previous weeks (at most BASELINE_WEEKS, at least MIN_WEEKS since the
  event first arrived). The expected count is their median. An hour is a **drop** when it is below DROP_RATIO x
  expected and further below it than both Z x the noise of chance (the Poisson noise of the hour plus that of a
  median of k Poisson counts, sqrt(e * (1 + pi / (2k))): the median's variance is pi/2 * var / k) and
  Z_VARIATION x the weeks' own variation (1.4826 x their median absolute deviation, robust to an outlier week;
  Rousseeuw & Croux 1993), so an event whose weeks differ a lot does not alarm on its usual swings; a **spike**
  the same above SPIKE_RATIO x expected; on events whose expected hour holds at least MIN_EXPECTED events. An event **stopped** when the hours since its last event
  (up to STOP_LOOKBACK_HOURS) were expected to hold at least STOP_EXPECTED events together (Poisson chance of
  silence e^-12, about 6e-6).
- shares (null share and type share of each property, share of double-fired events): the hour against the
  previous BASELINE_DAYS days together. A share alarms when it rose by at least its jump (NULL_JUMP, TYPE_JUMP,
  DUPLICATE_JUMP) and the hour's count is beyond chance (an exact binomial tail under P_TAIL, 5 sigma), on an hour
  of at least MIN_EVENTS events.

An open alarm resolves on the first judged hour that is clearly usual (a share risen by less than half its jump,
a count within CLEAR_BAND of the expected one); hours in between leave it open, so it does not flap.

False alarms: bench/data_health.py simulates months of hourly traffic with a weekly pattern and overdispersed
noise and prints the rate these thresholds give (docs/data-health.md quotes it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from scipy.stats import binom

Kind = Literal["volume_anomaly", "schema_drift", "duplicate_burst"]
Rule = Literal["drop", "spike", "stopped", "null_share", "type_change", "duplicate_share"]

BASELINE_WEEKS: Final = 4
MIN_WEEKS: Final = 2
BASELINE_DAYS: Final = 7
Z: Final = 5.0
Z_VARIATION: Final = 3.0
DROP_RATIO: Final = 0.5
SPIKE_RATIO: Final = 2.0
MIN_EXPECTED: Final = 20.0
STOP_EXPECTED: Final = 12.0
STOP_LOOKBACK_HOURS: Final = 24
NULL_JUMP: Final = 0.2
TYPE_JUMP: Final = 0.2
DUPLICATE_JUMP: Final = 0.05
MIN_EVENTS: Final = 10
P_TAIL: Final = 2.9e-7
"""The one-sided chance of a share's count under which it alarms: that of 5 standard deviations of a normal."""
MAD_SCALE: Final = 1.4826
CLEAR_BAND: Final = (0.75, 1.5)
"""An open volume alarm resolves on an hour within this share of the expected count (or within Z/2 x the noise of chance)."""


@dataclass(frozen=True, slots=True)
class Baseline:
    expected: float
    noise: float
    """Chance alone: sqrt(e * (1 + pi / 2k)), at least 1."""
    variation: float
    """How much the weeks themselves differ: 1.4826 x their median absolute deviation."""
    weeks: int

    def beyond(self, observed: float) -> bool:
        """Further from the expected count than Z x the noise and Z_VARIATION x the variation."""
        gap = abs(observed - self.expected)
        return gap > Z * self.noise and gap > Z_VARIATION * self.variation


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fires for one event (and property) in the hour judged."""

    kind: Kind
    rule: Rule
    event: str
    subject: str
    """The property, for schema drift; "" otherwise."""
    expected: float
    observed: float
    since: datetime
    summary: str
    """What came against what was expected, in a sentence."""
    advice: str
    """What to check."""

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.kind, self.event, self.subject)


@dataclass(frozen=True, slots=True)
class Share:
    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0


def seasonal_baseline(weeks: Sequence[int]) -> Baseline | None:
    """The baseline of an hour from the same hour of the previous weeks (None under MIN_WEEKS of them)."""
    if len(weeks) < MIN_WEEKS:
        return None
    expected = float(statistics.median(weeks))
    mad = float(statistics.median(abs(w - expected) for w in weeks))
    poisson = math.sqrt(expected * (1 + math.pi / (2 * len(weeks))))
    return Baseline(expected, max(poisson, 1.0), MAD_SCALE * mad, len(weeks))


def judge_volume(event: str, hour: datetime, observed: int, baseline: Baseline | None) -> Finding | None:
    """A drop or a spike of the hour's count against its seasonal baseline."""
    if baseline is None or baseline.expected < MIN_EXPECTED:
        return None
    expected, beyond = baseline.expected, baseline.beyond(observed)
    if observed < DROP_RATIO * expected and beyond:
        rule: Rule = "drop"
        advice = (
            f"Check what sends “{event}”: a release, a broken form or page, an SDK or consent change, an outage "
            "of the app or of its path to flagd (rejections in GET /v1/admin/events/stats)."
        )
    elif observed > SPIKE_RATIO * expected and beyond:
        rule = "spike"
        advice = (
            f"Check for a client sending “{event}” more often than before (a loop, a retry without an event id), "
            "bots or a load test, or a real surge (a campaign)."
        )
    else:
        return None
    change = observed / expected - 1
    summary = (
        f"{observed} “{event}” events in the hour from {hour:%Y-%m-%d %H:00} UTC, against {expected:.0f} expected "
        f"for that hour of the week ({change:+.0%})."
    )
    return Finding("volume_anomaly", rule, event, "", expected, observed, hour, summary, advice)


def judge_stopped(event: str, silent: Sequence[tuple[datetime, float]]) -> Finding | None:
    """An event that stopped arriving: `silent` is the run of hours without it up to the hour judged, oldest
    first, each with its expected count (0 where no baseline)."""
    expected = sum(e for _, e in silent)
    if not silent or expected < STOP_EXPECTED:
        return None
    since = silent[0][0]
    summary = (
        f"No “{event}” event since {since:%Y-%m-%d %H:00} UTC ({len(silent)} h), where {expected:.0f} were "
        "expected."
    )
    advice = (
        f"Check that the app still sends “{event}” (its name in the track call, a release that removed it) "
        "and that its events reach flagd (rejections in GET /v1/admin/events/stats)."
    )
    return Finding("volume_anomaly", "stopped", event, "", expected, 0.0, since, summary, advice)


Verdict = Literal["fire", "clear", "unsure"]
"""A rule fires, is clearly quiet (an open alarm of it resolves), or neither (an open alarm stays open): the
gap between the two is the hysteresis that keeps an alarm from flapping on a noisy hour."""


def share_verdict(current: Share, baseline: Share, jump: float) -> Verdict:
    """Fires when the share rose by at least `jump` and the hour's count is beyond chance: the binomial tail
    P(X >= hits | events, baseline share) under P_TAIL (the baseline share smoothed, (hits + 1) / (events + 2),
    so a share never seen is not taken as impossible). Clear when it rose by less than half of `jump`; unsure
    on an hour under MIN_EVENTS events, and in between."""
    if current.total < MIN_EVENTS or baseline.total == 0:
        return "unsure"
    rise = current.value - baseline.value
    if rise < jump / 2:
        return "clear"
    usual = (baseline.hits + 1) / (baseline.total + 2)
    tail = float(binom.sf(current.hits - 1, current.total, usual))
    return "fire" if rise >= jump and tail < P_TAIL else "unsure"


def share_jumped(current: Share, baseline: Share, jump: float) -> bool:
    return share_verdict(current, baseline, jump) == "fire"


def volume_clear(observed: int, baseline: Baseline | None) -> bool:
    """The hour's count is clearly usual: within CLEAR_BAND of the expected count, or within Z/2 x the noise."""
    if baseline is None or baseline.expected < MIN_EXPECTED:
        return False
    low, high = CLEAR_BAND
    near = abs(observed - baseline.expected) < Z / 2 * baseline.noise
    return low * baseline.expected <= observed <= high * baseline.expected or near


@dataclass(frozen=True, slots=True)
class PropertyCounts:
    """One property of one event over an hour (or over the baseline days): events per JSON type of its value
    (jsonb_typeof; "null" for a JSON null), of `events` events of the name in all."""

    events: int
    types: Mapping[str, int]

    @property
    def null_or_absent(self) -> int:
        return max(0, self.events - sum(n for t, n in self.types.items() if t != "null"))


def judge_property(
    event: str, key: str, hour: datetime, current: PropertyCounts, baseline: PropertyCounts
) -> Finding | None:
    """A property whose null (or missing) share jumped, or whose values took a type they rarely had."""
    for kind, n in sorted(current.types.items(), key=lambda item: -item[1]):
        if kind == "null":
            continue
        now, before = Share(n, current.events), Share(baseline.types.get(kind, 0), baseline.events)
        if share_jumped(now, before, TYPE_JUMP):
            usual = max(
                (t for t in baseline.types if t != "null"), key=lambda t: baseline.types[t], default="absent"
            )
            summary = (
                f"“{key}” of “{event}” was a {kind} in {now.value:.0%} of the events in the hour from "
                f"{hour:%Y-%m-%d %H:00} UTC, against {before.value:.0%} in the previous {BASELINE_DAYS} days "
                f"(usually a {usual})."
            )
            advice = (
                f"Check the app's track call of “{event}”: a release that sends “{key}” as a {kind} (a number "
                "formatted as text, say). Metrics that read it may lose those events."
            )
            return Finding(
                "schema_drift", "type_change", event, key, before.value, now.value, hour, summary, advice
            )
    now = Share(current.null_or_absent, current.events)
    before = Share(baseline.null_or_absent, baseline.events)
    if share_jumped(now, before, NULL_JUMP):
        summary = (
            f"“{key}” of “{event}” was missing or null in {now.value:.0%} of the events in the hour from "
            f"{hour:%Y-%m-%d %H:00} UTC, against {before.value:.0%} in the previous {BASELINE_DAYS} days."
        )
        advice = f"Check the app's track call of “{event}”: a release that stopped setting “{key}”."
        return Finding(
            "schema_drift", "null_share", event, key, before.value, now.value, hour, summary, advice
        )
    return None


def property_clear(current: PropertyCounts, baseline: PropertyCounts) -> bool:
    """No type's share and not the null share rose by half its jump or more."""
    shares = [
        (Share(n, current.events), Share(baseline.types.get(kind, 0), baseline.events), TYPE_JUMP)
        for kind, n in current.types.items()
        if kind != "null"
    ]
    shares.append(
        (
            Share(current.null_or_absent, current.events),
            Share(baseline.null_or_absent, baseline.events),
            NULL_JUMP,
        )
    )
    return all(share_verdict(now, before, jump) == "clear" for now, before, jump in shares)


def judge_duplicates(event: str, hour: datetime, current: Share, baseline: Share) -> Finding | None:
    """Events fired again by the same unit within a second of the one before, more often than usual."""
    if not share_jumped(current, baseline, DUPLICATE_JUMP):
        return None
    summary = (
        f"{current.value:.0%} of the “{event}” events in the hour from {hour:%Y-%m-%d %H:00} UTC came within a "
        f"second of the same unit's previous one ({current.hits} of {current.total}), against "
        f"{baseline.value:.1%} in the previous {BASELINE_DAYS} days."
    )
    advice = (
        f"Check the app for “{event}” tracked twice (two handlers on one action, a re-render, a retry with a new "
        "event id); the units in the alarm's details fired most."
    )
    return Finding(
        "duplicate_burst", "duplicate_share", event, "", baseline.value, current.value, hour, summary, advice
    )
