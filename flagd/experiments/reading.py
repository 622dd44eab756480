"""Metrics, layers and experiments read from a flags-as-code document, every problem located.

They live beside `flags` at the top of a flagd flag-definition document, which the flagd
schema allows (its root takes members it does not name), so the file stays a valid flagd
file that other flagd tools read for its flags alone:

    flags: {...}
    metrics:
      checkout-rate: {name: Checkout rate, type: conversion, event: checkout, direction: increase}
      revenue-per-order: {type: ratio, numerator: revenue, denominator: orders, direction: increase}
      week-2-retention: {type: retention, events: [app_opened, order_paid], from_day: 7, to_day: 14,
                         direction: increase}
    layers:
      checkout: {holdout_bp: 500}
    experiments:
      one-page-checkout:
        flag: new-checkout
        hypothesis: One page lifts checkout by 2% without hurting revenue per order.
        variants: {"off": 50, "on": 50}
        allocation_bp: 5000
        eligibility: {"==": [{"var": "country"}, "NL"]}
        unit: targetingKey
        layer: checkout
        metrics:
          - {metric: checkout-rate, role: primary}
          - {metric: revenue-per-order, role: guardrail}

Each `read_*` returns the values it could read and appends a Problem for everything else,
so a file with five mistakes gets five located messages.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from flagd.experiments.filters import EventFilter, read_filter, read_value_property
from flagd.experiments.funnels import read_funnel
from flagd.experiments.model import (
    BASIS_POINTS,
    METRIC_TYPES,
    QUANTILE_LEVELS,
    RETENTION_MAX_DAY,
    RETENTION_MAX_EVENTS,
    Experiment,
    FunnelStep,
    Layer,
    Metric,
    MetricRole,
    RetentionEvent,
    Winsorisation,
)
from flagd.identifiers import KEY_RULE, is_key
from flagd_sdk.evaluation import FlagSetError, Problem, compile_rule
from flagd_sdk.evaluation.problems import child, given

_DIRECTIONS = ("increase", "decrease")
_ROLES = ("primary", "secondary", "guardrail")
_METRIC_MEMBERS = {
    "name",
    "description",
    "type",
    "direction",
    "event",
    "numerator",
    "denominator",
    "window_seconds",
    "winsorisation",
    "quantile",
    "level",
    "events",
    "from_day",
    "to_day",
    "where",
    "value_property",
    "steps",
    "decide_on",
}
_RETENTION_ONLY = ("events", "from_day", "to_day")
_NOT_RETENTION = ("event", "window_seconds", "winsorisation")
_NOT_PARTS = {
    "ratio": "a ratio metric itself",
    "funnel": "a funnel",
    "quantile": "a quantile metric",
    "retention": "a retention metric",
}
"""The metric types a ratio cannot divide: they have no per-unit total."""
_VALUED = ("sum", "mean", "nps", "csat", "ces", "quantile")
"""The types that read each event's value (the others count events)."""
_EXPERIMENT_MEMBERS = {
    "name",
    "hypothesis",
    "flag",
    "variants",
    "allocation_bp",
    "eligibility",
    "unit",
    "layer",
    "salt",
    "metrics",
    "alpha",
    "expected_units",
    "mde",
    "owner",
    "tags",
}


def _unknown(entry: Mapping[str, Any], known: set[str], path: str, problems: list[Problem]) -> None:
    for member in entry:
        if member not in known:
            problems.append(Problem(child(path, member), f"unknown member; use {', '.join(sorted(known))}"))


def _entries(
    document: Mapping[str, Any], section: str, problems: list[Problem]
) -> list[tuple[str, Any, str]]:
    raw = document.get(section, {})
    if not isinstance(raw, dict):
        problems.append(Problem(section, "must be an object mapping keys to definitions"))
        return []
    entries = []
    for key, entry in raw.items():
        path = child(section, key)
        if not is_key(key):
            problems.append(Problem(path, f"the key must {KEY_RULE}"))
        elif not isinstance(entry, dict):
            problems.append(Problem(path, "must be an object"))
        else:
            entries.append((key, entry, path))
    return entries


def _not_one(value: Any, what: str, fix: str) -> str:
    """Why `value` names nothing: `"x" is not a flag of this set; name ...`, or `name ...; got nothing`."""
    if isinstance(value, str) and value:
        return f"{given(value)} is not {what}; {fix}"
    return f"{fix}; got {given(value)}"


def _whole(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def read_metrics(document: Mapping[str, Any], problems: list[Problem]) -> dict[str, Metric]:
    metrics: dict[str, Metric] = {}
    entries = _entries(document, "metrics", problems)
    keys = {key for key, _, _ in entries}
    for key, entry, path in entries:
        before = len(problems)
        events: tuple[RetentionEvent, ...] = ()
        _unknown(entry, _METRIC_MEMBERS, path, problems)
        kind, direction = entry.get("type"), entry.get("direction")
        if kind not in METRIC_TYPES:
            problems.append(
                Problem(child(path, "type"), f"must be one of {', '.join(METRIC_TYPES)}; got {given(kind)}")
            )
        if direction not in _DIRECTIONS:
            problems.append(
                Problem(
                    child(path, "direction"),
                    f"must be increase or decrease (whichever is better); got {given(direction)}",
                )
            )
        if kind != "retention":
            for member in _RETENTION_ONLY:
                if member in entry:
                    problems.append(Problem(child(path, member), "only a retention metric has this member"))
        steps: tuple[FunnelStep, ...] = ()
        decide_on = None
        if kind == "ratio":
            _check_ratio(key, entry, path, keys, document.get("metrics", {}), problems)
        elif kind == "retention":
            events = _check_retention(entry, path, problems)
        elif kind == "funnel":
            steps, decide_on = read_funnel(entry, path, problems)
        elif not isinstance(entry.get("event"), str) or not entry.get("event"):
            problems.append(Problem(child(path, "event"), "name the event this metric reads"))
        if kind != "funnel" and {"steps", "decide_on"} & set(entry):
            problems.append(Problem(path, "steps and decide_on are for funnel metrics (type: funnel)"))
        window = entry.get("window_seconds")
        if window is not None and not _whole(window, 1, 10 * 365 * 86400):
            problems.append(
                Problem(child(path, "window_seconds"), "must be a whole number of seconds, 1 to 10 years")
            )
        winsorisation = _winsorisation(entry.get("winsorisation"), child(path, "winsorisation"), problems)
        _check_quantile(kind, entry, path, problems)
        where, value_property = _event_reading(entry, kind, path, problems)
        for text in ("name", "description"):
            if text in entry and not isinstance(entry[text], str):
                problems.append(Problem(child(path, text), "must be text"))
        if len(problems) == before:
            metrics[key] = Metric(
                key=key,
                name=entry.get("name", key),
                type=kind,
                direction=direction,
                event=entry.get("event"),
                description=entry.get("description", ""),
                numerator=entry.get("numerator"),
                denominator=entry.get("denominator"),
                window_seconds=window,
                winsorisation=winsorisation,
                quantile=float(entry["quantile"]) if kind == "quantile" else None,
                level=entry.get("level", "unit"),
                where=where,
                value_property=value_property,
                events=events,
                from_day=entry.get("from_day", 0),
                to_day=entry.get("to_day", 0),
                steps=steps,
                decide_on=decide_on,
            )
    return metrics


def _check_quantile(kind: Any, entry: Mapping[str, Any], path: str, problems: list[Problem]) -> None:
    """A quantile metric's p and level; the members only a quantile metric has, on no other type."""
    if kind != "quantile":
        for member in ("quantile", "level"):
            if member in entry:
                problems.append(
                    Problem(child(path, member), "only a metric of type quantile has this member")
                )
        return
    p = entry.get("quantile")
    if not isinstance(p, int | float) or isinstance(p, bool) or not 0.01 <= p <= 0.99:
        problems.append(
            Problem(
                child(path, "quantile"),
                f"must be a number from 0.01 to 0.99, e.g. 0.9 for the p90; got {given(p)}",
            )
        )
    level = entry.get("level", "unit")
    if level not in QUANTILE_LEVELS:
        problems.append(
            Problem(
                child(path, "level"),
                "must be unit (the quantile of each unit's summed value) or event (of the events' values, "
                f"clustered by unit); got {given(level)}",
            )
        )
    if "winsorisation" in entry:
        problems.append(
            Problem(
                child(path, "winsorisation"),
                "a quantile is not moved by a few extreme values; remove winsorisation from a quantile metric",
            )
        )


def _check_retention(
    entry: Mapping[str, Any], path: str, problems: list[Problem]
) -> tuple[RetentionEvent, ...]:
    """`events` (any of them makes a unit active; each a name or {event, where}), `from_day` < `to_day`
    (days after exposure)."""
    for member in _NOT_RETENTION:
        if member in entry:
            fix = "list the events under events" if member == "event" else "a retention metric has none"
            problems.append(Problem(child(path, member), f"not a member of a retention metric; {fix}"))
    raw = entry.get("events")
    at = child(path, "events")
    events: list[RetentionEvent] = []
    if not isinstance(raw, list) or not 1 <= len(raw) <= RETENTION_MAX_EVENTS:
        problems.append(
            Problem(
                at,
                f"list 1 to {RETENTION_MAX_EVENTS} events: a unit is active on any of them, e.g. "
                "[app_opened, {event: order_paid, where: {currency: {equals: EUR}}}]",
            )
        )
    else:
        for index, item in enumerate(raw):
            event = _retention_event(item, child(at, index), problems)
            if event is not None and event in events:
                problems.append(Problem(child(at, index), f"{given(event.event)} is listed twice"))
            elif event is not None:
                events.append(event)
    start, end = entry.get("from_day"), entry.get("to_day")
    if not _whole(start, 0, RETENTION_MAX_DAY - 1):
        problems.append(
            Problem(
                child(path, "from_day"),
                f"must be a whole number of days after exposure, 0 to {RETENTION_MAX_DAY - 1}; got {given(start)}",
            )
        )
    if not _whole(end, 1, RETENTION_MAX_DAY):
        problems.append(
            Problem(
                child(path, "to_day"),
                f"must be a whole number of days after exposure, 1 to {RETENTION_MAX_DAY}; got {given(end)}",
            )
        )
    elif (
        isinstance(start, int)
        and isinstance(end, int)
        and _whole(start, 0, RETENTION_MAX_DAY - 1)
        and start >= end
    ):
        problems.append(
            Problem(
                child(path, "to_day"),
                f"must be after from_day ({start}): a unit is active in [from_day, to_day) days after exposure",
            )
        )
    return tuple(events)


def _retention_event(item: Any, path: str, problems: list[Problem]) -> RetentionEvent | None:
    """An event name, or {event: <name>, where: <filter>}."""
    if isinstance(item, str) and item:
        return RetentionEvent(item)
    if not isinstance(item, dict) or not isinstance(item.get("event"), str) or not item["event"]:
        problems.append(Problem(path, "must be an event name, or {event: <name>, where: <filter>}"))
        return None
    _unknown(item, {"event", "where"}, path, problems)
    where = read_filter(item["where"], child(path, "where"), problems) if "where" in item else None
    return RetentionEvent(item["event"], where)


def _event_reading(
    entry: Mapping[str, Any], kind: Any, path: str, problems: list[Problem]
) -> tuple[EventFilter | None, str | None]:
    """The metric's event filter and value property, where its type reads them."""
    where = value_property = None
    if "where" in entry:
        if kind == "retention":
            problems.append(
                Problem(
                    child(path, "where"),
                    "a retention metric filters each of its events: events: [{event: <name>, where: {...}}]",
                )
            )
        elif kind in ("ratio", "funnel"):
            problems.append(
                Problem(
                    child(path, "where"),
                    f"a {kind} reads its {'two metrics' if kind == 'ratio' else 'steps'}; filter their events there",
                )
            )
        else:
            where = read_filter(entry["where"], child(path, "where"), problems)
    if "value_property" in entry:
        at = child(path, "value_property")
        if kind in _VALUED:
            value_property = read_value_property(entry["value_property"], at, problems)
        elif kind in METRIC_TYPES:
            problems.append(
                Problem(
                    at,
                    f"a {kind} metric reads no value; value_property is for {', '.join(_VALUED)} metrics",
                )
            )
    return where, value_property


def _names(value: Any, known: Collection[str]) -> bool:
    """Whether `value` is one of the `known` keys (a list or object given instead is not, and is no error)."""
    return isinstance(value, str) and value in known


def _type_of(raw: Any, name: Any) -> str:
    """The type the document gives metric `name`, as text ("" when it gives none, or not as text)."""
    entry = raw.get(name) if isinstance(raw, dict) else None
    kind = entry.get("type") if isinstance(entry, dict) else None
    return kind if isinstance(kind, str) else ""


def _check_ratio(
    key: str, entry: Mapping[str, Any], path: str, keys: set[str], raw: Any, problems: list[Problem]
) -> None:
    numerator, denominator = entry.get("numerator"), entry.get("denominator")
    for side, name in (("numerator", numerator), ("denominator", denominator)):
        if not _names(name, keys):
            problems.append(
                Problem(child(path, side), _not_one(name, "a metric of this file", "name one of its metrics"))
            )
        elif name == key or _type_of(raw, name) in _NOT_PARTS:
            what = "a ratio metric itself" if name == key else _NOT_PARTS[_type_of(raw, name)]
            problems.append(
                Problem(child(path, side), f"{given(name)} is {what}; a ratio divides two plain metrics")
            )
    if isinstance(numerator, str) and numerator == denominator:
        problems.append(
            Problem(
                path, f"a ratio of {given(numerator)} over itself is always 1; choose two different metrics"
            )
        )


def _winsorisation(raw: Any, path: str, problems: list[Problem]) -> Winsorisation | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or len(raw) != 1 or not ({"percentile", "value"} & set(raw)):
        problems.append(Problem(path, 'give one of {"percentile": 99} or {"value": 1000}'))
        return None
    if "percentile" in raw:
        percentile = raw["percentile"]
        if (
            not isinstance(percentile, int | float)
            or isinstance(percentile, bool)
            or not 50 <= percentile < 100
        ):
            problems.append(Problem(child(path, "percentile"), "must be a number from 50 to below 100"))
            return None
        return Winsorisation(percentile=float(percentile))
    value = raw["value"]
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        problems.append(Problem(child(path, "value"), "must be a finite number"))
        return None
    return Winsorisation(value=float(value))


def read_layers(document: Mapping[str, Any], problems: list[Problem]) -> dict[str, Layer]:
    layers = {}
    for key, entry, path in _entries(document, "layers", problems):
        before = len(problems)
        _unknown(entry, {"holdout_bp", "salt"}, path, problems)
        holdout = entry.get("holdout_bp", 0)
        if not _whole(holdout, 0, BASIS_POINTS - 1):
            problems.append(
                Problem(
                    child(path, "holdout_bp"),
                    f"must be a whole number of basis points, 0 to {BASIS_POINTS - 1}",
                )
            )
        salt = entry.get("salt", f"layer:{key}")
        if not isinstance(salt, str) or not salt:
            problems.append(Problem(child(path, "salt"), "must be non-empty text"))
        if len(problems) == before:
            layers[key] = Layer(key=key, salt=salt, holdout_bp=holdout)
    return layers


def read_experiments(
    document: Mapping[str, Any],
    flags: Mapping[str, Any],
    metrics: Mapping[str, Metric],
    layers: Mapping[str, Layer],
    problems: list[Problem],
) -> dict[str, Experiment]:
    experiments = {}
    for key, entry, path in _entries(document, "experiments", problems):
        before = len(problems)
        _unknown(entry, _EXPERIMENT_MEMBERS, path, problems)
        flag_key = entry.get("flag")
        flag = flags.get(flag_key) if isinstance(flag_key, str) else None
        if not isinstance(flag, dict):
            problems.append(
                Problem(
                    child(path, "flag"), _not_one(flag_key, "a flag of this set", "name the flag to run on")
                )
            )
        variants = _variants(entry.get("variants"), flag, child(path, "variants"), problems)
        allocation = entry.get("allocation_bp", BASIS_POINTS)
        if not _whole(allocation, 1, BASIS_POINTS):
            problems.append(
                Problem(
                    child(path, "allocation_bp"),
                    f"must be a whole number of basis points, 1 to {BASIS_POINTS}",
                )
            )
        eligibility = entry.get("eligibility")
        if eligibility is not None:
            try:
                compile_rule(eligibility, evaluators=document.get("$evaluators") or {})
            except FlagSetError as exc:
                for problem in exc.problems:
                    problems.append(
                        Problem(
                            child(path, "eligibility") + problem.path.removeprefix("rule"), problem.message
                        )
                    )
        unit = entry.get("unit", "targetingKey")
        if not isinstance(unit, str) or not unit or ("." in unit and not all(unit.split("."))):
            problems.append(
                Problem(
                    child(path, "unit"),
                    "name the context attribute that identifies a unit, e.g. targetingKey",
                )
            )
        layer = entry.get("layer")
        if layer is not None and not _names(layer, layers):
            problems.append(
                Problem(
                    child(path, "layer"),
                    _not_one(layer, "a layer of this file", "name a layer defined under layers"),
                )
            )
        roles = _roles(entry.get("metrics", []), metrics, child(path, "metrics"), problems)
        alpha = entry.get("alpha", 0.05)
        if not isinstance(alpha, float | int) or isinstance(alpha, bool) or not 0 < alpha < 0.5:
            problems.append(Problem(child(path, "alpha"), "must be a number between 0 and 0.5, e.g. 0.05"))
        expected_units = entry.get("expected_units", 100_000)
        if type(expected_units) is not int or not 100 <= expected_units <= 10**12:
            problems.append(
                Problem(
                    child(path, "expected_units"),
                    "must be a whole number of units from 100 to 10^12: how many the experiment is planned to reach",
                )
            )
        mde = entry.get("mde", 0.05)
        if not isinstance(mde, float | int) or isinstance(mde, bool) or not 0 < mde <= 10:
            problems.append(
                Problem(
                    child(path, "mde"), "must be a relative change above 0 and at most 10, e.g. 0.05 for 5%"
                )
            )
        for text in ("name", "hypothesis", "owner", "salt"):
            if text in entry and not isinstance(entry[text], str):
                problems.append(Problem(child(path, text), "must be text"))
        tags = entry.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            problems.append(Problem(child(path, "tags"), "must be a list of text"))
        if len(problems) == before:
            experiments[key] = Experiment(
                key=key,
                flag=flag_key,
                variants=variants,
                salt=entry.get("salt", ""),
                allocation_bp=allocation,
                eligibility=eligibility,
                unit=unit,
                layer=layer,
                name=entry.get("name", key),
                hypothesis=entry.get("hypothesis", ""),
                metrics=roles,
                alpha=float(alpha),
                expected_units=expected_units,
                planned="expected_units" in entry,
                mde=float(mde),
                owner=entry.get("owner", ""),
                tags=tuple(tags),
            )
    return experiments


def _variants(raw: Any, flag: Any, path: str, problems: list[Problem]) -> tuple[tuple[str, int], ...]:
    if not isinstance(raw, dict) or len(raw) < 2:
        problems.append(
            Problem(
                path, 'give at least two flag variants with whole-number weights, e.g. {"off": 50, "on": 50}'
            )
        )
        return ()
    known = flag.get("variants") if isinstance(flag, dict) else None
    for name, weight in raw.items():
        if isinstance(known, dict) and name not in known:
            problems.append(
                Problem(
                    child(path, name),
                    f"is not a variant of the flag (variants: {', '.join(str(k) for k in known)})",
                )
            )
        if not _whole(weight, 1, 1_000_000):
            problems.append(
                Problem(child(path, name), "the weight must be a whole number from 1 to 1,000,000")
            )
    return tuple(raw.items())


def _roles(
    raw: Any, metrics: Mapping[str, Metric], path: str, problems: list[Problem]
) -> tuple[MetricRole, ...]:
    if not isinstance(raw, list):
        problems.append(Problem(path, "must be a list of {metric, role}"))
        return ()
    roles = []
    for index, item in enumerate(raw):
        at = child(path, index)
        if not isinstance(item, dict) or set(item) != {"metric", "role"}:
            problems.append(Problem(at, "must be {metric: <key>, role: primary|secondary|guardrail}"))
            continue
        if not _names(item["metric"], metrics):
            problems.append(
                Problem(
                    child(at, "metric"),
                    _not_one(item["metric"], "a metric", "name a metric defined under metrics"),
                )
            )
        if item["role"] not in _ROLES:
            problems.append(
                Problem(
                    child(at, "role"), f"must be primary, secondary or guardrail; got {given(item['role'])}"
                )
            )
        roles.append(MetricRole(item["metric"], item["role"]))
    if roles and sum(r.role == "primary" for r in roles) != 1:
        problems.append(Problem(path, "name exactly one primary metric: the one the decision is made on"))
    return tuple(roles)


@dataclass(frozen=True, slots=True)
class Sections:
    metrics: dict[str, Metric]
    layers: dict[str, Layer]
    experiments: dict[str, Experiment]


def read_sections(
    document: Mapping[str, Any], problems: list[Problem], flags: Mapping[str, Any] | None = None
) -> Sections:
    """Metrics, layers and experiments of a document, experiments checked against `flags` (default: its own)."""
    metrics = read_metrics(document, problems)
    layers = read_layers(document, problems)
    known_flags = flags if flags is not None else document.get("flags", {})
    return Sections(metrics, layers, read_experiments(document, known_flags, metrics, layers, problems))
