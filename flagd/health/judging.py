"""One event name's hour judged by every rule (flagd.health.rules): pure, over the counts the detector read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flagd.health.rules import (
    BASELINE_WEEKS,
    DUPLICATE_JUMP,
    STOP_LOOKBACK_HOURS,
    Finding,
    PropertyCounts,
    Share,
    judge_duplicates,
    judge_property,
    judge_stopped,
    judge_volume,
    property_clear,
    seasonal_baseline,
    share_verdict,
    volume_clear,
)

HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class EventHistory:
    """What the rules need of one event name for the hour judged."""

    name: str
    first_hour: datetime
    """The first hour the detector has of it: earlier weeks are not part of its baseline."""
    counts: Mapping[datetime, int]
    """Events per hour, for the hours `hours_needed` lists (absent: none)."""
    repeats: Share = field(default_factory=lambda: Share(0, 0))
    """The hour's events fired within a second of the same unit's previous one."""
    baseline_repeats: Share = field(default_factory=lambda: Share(0, 0))
    properties: Mapping[str, tuple[PropertyCounts, PropertyCounts]] = field(default_factory=dict)
    """Per property: (the hour, the baseline days)."""


def hours_needed(hour: datetime) -> list[datetime]:
    """The hours whose counts judge `hour`: it and the hours before it that a stop could span, each with the
    same hour of the BASELINE_WEEKS weeks before."""
    return [
        hour - back * HOUR - weeks * WEEK
        for back in range(STOP_LOOKBACK_HOURS)
        for weeks in range(BASELINE_WEEKS + 1)
    ]


def _baseline(history: EventHistory, hour: datetime) -> list[int]:
    earlier = (hour - k * WEEK for k in range(1, BASELINE_WEEKS + 1))
    return [history.counts.get(h, 0) for h in earlier if h >= history.first_hour]


@dataclass(frozen=True, slots=True)
class Judged:
    findings: list[Finding]
    undecided: set[tuple[str, str, str]]
    """The (kind, event, subject) the hour had too few events to judge: an open alarm of them stays open."""


def judge_event(history: EventHistory, hour: datetime) -> Judged:
    """Every finding of `hour` (at most one per kind and subject), and what it could not judge."""
    findings: list[Finding] = []
    undecided: set[tuple[str, str, str]] = set()
    name = history.name
    silent: list[tuple[datetime, float]] = []
    moment = hour
    while (
        len(silent) < STOP_LOOKBACK_HOURS
        and moment >= history.first_hour
        and history.counts.get(moment, 0) == 0
    ):
        baseline = seasonal_baseline(_baseline(history, moment))
        silent.append((moment, baseline.expected if baseline else 0.0))
        moment -= HOUR
    stopped = judge_stopped(history.name, silent[::-1])
    if stopped is not None:
        findings.append(stopped)
    else:
        observed = history.counts.get(hour, 0)
        baseline = seasonal_baseline(_baseline(history, hour))
        volume = judge_volume(name, hour, observed, baseline)
        if volume is not None:
            findings.append(volume)
        elif not volume_clear(observed, baseline):
            undecided.add(("volume_anomaly", name, ""))
    duplicates = judge_duplicates(name, hour, history.repeats, history.baseline_repeats)
    if duplicates is not None:
        findings.append(duplicates)
    elif share_verdict(history.repeats, history.baseline_repeats, DUPLICATE_JUMP) != "clear":
        undecided.add(("duplicate_burst", name, ""))
    for key in sorted(history.properties):
        current, baseline_counts = history.properties[key]
        drift = judge_property(name, key, hour, current, baseline_counts)
        if drift is not None:
            findings.append(drift)
        elif not property_clear(current, baseline_counts):
            undecided.add(("schema_drift", name, key))
    return Judged(findings, undecided)
