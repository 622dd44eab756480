"""The rollout model: frozen values read once from a definition, with every problem located by its path.

A definition, as flags as code (`rollouts:` beside `experiments:`) or the body of POST /v1/rollouts:

    flag: checkout-page          # the flag whose variant is released
    variant: one-page            # the new variant
    replaces: classic            # the variant it replaces (default: the flag's defaultVariant)
    eligibility: {...}           # JsonLogic: who is in the rollout (default everyone); others keep the flag's rule
    stages:                      # default 1, 5, 10, 25, 50, 100 percent, each 1 hour and 100 units
      - {percent: 1, min_duration_seconds: 3600, min_units: 100}
    guardrails: [{metric: error-rate, direction: decrease}]   # direction defaults to the metric's
    on_harm: rollback            # or hold
    alpha: 0.05                  # split over the stages and guardrails
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from flagd.experiments.model import BASIS_POINTS, Direction, Metric
from flagd_sdk.evaluation import FlagSetError
from flagd_sdk.evaluation.loader import compile_rule
from flagd_sdk.evaluation.problems import Problem, child, given

OnHarm = Literal["rollback", "hold"]
State = Literal["running", "paused", "held", "rolled_back", "completed"]
ACTIVE: tuple[State, ...] = ("running", "paused", "held")
"""States in which the rollout is compiled into its flag with its current share."""
EXPERIMENT_PREFIX = "rollout:"
"""A rollout's exposures are recorded as experiment `rollout:<key>`, one phase per stage."""
MAX_STAGES = 20
MAX_GUARDRAILS = 10
MAX_DURATION_SECONDS = 90 * 86_400
_MEMBERS = {"flag", "variant", "replaces", "eligibility", "stages", "guardrails", "on_harm", "alpha", "salt"}
_STAGE_MEMBERS = {"percent", "min_duration_seconds", "min_units"}


@dataclass(frozen=True, slots=True)
class Stage:
    share_bp: int
    """The share of eligible units on the new variant, in basis points."""
    min_duration_seconds: float = 3600.0
    min_units: int = 100


DEFAULT_STAGES = tuple(Stage(bp) for bp in (100, 500, 1000, 2500, 5000, BASIS_POINTS))


@dataclass(frozen=True, slots=True)
class Guardrail:
    metric: str
    direction: Direction
    """The metric's good direction: harm is a change the other way."""


@dataclass(frozen=True, slots=True)
class Rollout:
    key: str
    flag: str
    variant: str
    replaces: str
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    guardrails: tuple[Guardrail, ...] = ()
    eligibility: Any = None
    on_harm: OnHarm = "rollback"
    alpha: float = 0.05
    salt: str = ""

    @property
    def experiment(self) -> str:
        return EXPERIMENT_PREFIX + self.key

    @property
    def looks(self) -> int:
        """How many always-valid tests share alpha: each monitored stage (all but 100%) x each guardrail."""
        monitored = sum(1 for s in self.stages if s.share_bp < BASIS_POINTS)
        return max(monitored, 1) * max(len(self.guardrails), 1)


def read_rollout(
    key: str,
    entry: Any,
    flags: Mapping[str, Any],
    metrics: Mapping[str, Metric],
    path: str,
    problems: list[Problem],
    evaluators: Mapping[str, Any] | None = None,
) -> Rollout | None:
    """The rollout `entry` defines, or None with its problems appended (each located under `path`)."""
    if not isinstance(entry, dict):
        problems.append(Problem(path, "a rollout must be an object with flag, variant and stages"))
        return None
    before = len(problems)
    for member in entry:
        if member not in _MEMBERS:
            problems.append(
                Problem(child(path, member), f"unknown member; use {', '.join(sorted(_MEMBERS))}")
            )
    flag_key = entry.get("flag")
    flag = flags.get(flag_key) if isinstance(flag_key, str) else None
    variants: Mapping[str, Any] = {}
    if not isinstance(flag, dict):
        problems.append(Problem(child(path, "flag"), f"name a flag of this set; got {given(flag_key)}"))
    else:
        raw_variants = flag.get("variants")
        variants = raw_variants if isinstance(raw_variants, dict) else {}
    variant = entry.get("variant")
    if flag is not None and variant not in variants:
        problems.append(
            Problem(
                child(path, "variant"),
                f"name one of the flag's variants ({', '.join(variants)}); got {given(variant)}",
            )
        )
    replaces = entry.get("replaces", flag.get("defaultVariant") if isinstance(flag, dict) else None)
    if flag is not None and (replaces not in variants or replaces == variant):
        problems.append(
            Problem(
                child(path, "replaces"),
                f"name the variant the new one replaces, another of the flag's variants; got {given(replaces)}",
            )
        )
    eligibility = entry.get("eligibility")
    if eligibility is not None:
        try:
            compile_rule(eligibility, evaluators=evaluators or {})
        except FlagSetError as exc:
            problems.extend(
                Problem(child(path, "eligibility") + p.path.removeprefix("rule"), p.message)
                for p in exc.problems
            )
    stages = _stages(entry.get("stages"), child(path, "stages"), problems)
    guardrails = _guardrails(entry.get("guardrails", []), metrics, child(path, "guardrails"), problems)
    on_harm = entry.get("on_harm", "rollback")
    if on_harm not in ("rollback", "hold"):
        problems.append(Problem(child(path, "on_harm"), f"must be rollback or hold; got {given(on_harm)}"))
    alpha = entry.get("alpha", 0.05)
    if not isinstance(alpha, float | int) or isinstance(alpha, bool) or not 0 < alpha < 0.5:
        problems.append(Problem(child(path, "alpha"), "must be a number between 0 and 0.5, e.g. 0.05"))
    salt = entry.get("salt", "")
    if not isinstance(salt, str) or len(salt) > 64:
        problems.append(Problem(child(path, "salt"), "must be text of at most 64 characters"))
    if len(problems) != before:
        return None
    return Rollout(
        key=key,
        flag=str(flag_key),
        variant=str(variant),
        replaces=str(replaces),
        stages=stages,
        guardrails=guardrails,
        eligibility=eligibility,
        on_harm=on_harm,
        alpha=float(alpha),
        salt=salt,
    )


def _stages(raw: Any, path: str, problems: list[Problem]) -> tuple[Stage, ...]:
    if raw is None:
        return DEFAULT_STAGES
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STAGES:
        problems.append(
            Problem(
                path, f"must be a list of 1 to {MAX_STAGES} stages, e.g. [{{percent: 1}}, {{percent: 100}}]"
            )
        )
        return ()
    stages: list[Stage] = []
    for index, item in enumerate(raw):
        at = f"{path}[{index}]"
        if not isinstance(item, dict):
            problems.append(Problem(at, "a stage must be an object with percent"))
            continue
        for member in item:
            if member not in _STAGE_MEMBERS:
                problems.append(
                    Problem(child(at, member), f"unknown member; use {', '.join(sorted(_STAGE_MEMBERS))}")
                )
        percent: Any = item.get("percent")
        share = round(percent * 100) if _number(percent) else -1
        if not _number(percent) or not 0 < share <= BASIS_POINTS or abs(share - percent * 100) > 1e-6:
            problems.append(
                Problem(
                    child(at, "percent"),
                    f"must be a percentage above 0 and at most 100, in steps of 0.01; got {given(percent)}",
                )
            )
            continue
        if stages and share <= stages[-1].share_bp:
            problems.append(
                Problem(child(at, "percent"), "must be larger than the stage before: a stage only widens")
            )
        duration = item.get("min_duration_seconds", 3600)
        if not _number(duration) or not 0 <= duration <= MAX_DURATION_SECONDS:
            problems.append(
                Problem(
                    child(at, "min_duration_seconds"),
                    f"must be a number of seconds from 0 to {MAX_DURATION_SECONDS}",
                )
            )
        units = item.get("min_units", 100)
        if type(units) is not int or not 0 <= units <= 10**12:
            problems.append(
                Problem(child(at, "min_units"), "must be a whole number of units from 0 to 10^12")
            )
        if _number(duration) and type(units) is int:
            stages.append(Stage(share, float(duration), units))
    if stages and stages[-1].share_bp != BASIS_POINTS and len(stages) == len(raw):
        problems.append(
            Problem(
                f"{path}[{len(raw) - 1}]", "the last stage must be 100 percent: a rollout ends with everyone"
            )
        )
    return tuple(stages)


def _guardrails(
    raw: Any, metrics: Mapping[str, Metric], path: str, problems: list[Problem]
) -> tuple[Guardrail, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_GUARDRAILS:
        problems.append(
            Problem(path, f"must be a list of at most {MAX_GUARDRAILS} guardrails, each {{metric: KEY}}")
        )
        return ()
    found: list[Guardrail] = []
    for index, item in enumerate(raw):
        at = f"{path}[{index}]"
        name = item.get("metric") if isinstance(item, dict) else item
        metric = metrics.get(name) if isinstance(name, str) else None
        if metric is None:
            problems.append(Problem(at, f"name a metric defined under metrics; got {given(name)}"))
            continue
        if metric.type in ("quantile", "funnel", "retention"):
            problems.append(
                Problem(
                    at,
                    f"metric {name} is a {metric.type}; a guardrail is a conversion, count, sum, mean or ratio metric",
                )
            )
            continue
        direction = item.get("direction", metric.direction) if isinstance(item, dict) else metric.direction
        if direction not in ("increase", "decrease"):
            problems.append(
                Problem(child(at, "direction"), f"must be increase or decrease; got {given(direction)}")
            )
            continue
        if isinstance(item, dict) and set(item) - {"metric", "direction"}:
            problems.append(Problem(at, "a guardrail has metric and direction only"))
            continue
        found.append(Guardrail(metric.key, direction))
    return tuple(found)


def _number(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value)
