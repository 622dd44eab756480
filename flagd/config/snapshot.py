"""The configuration a worker serves: the stored set at one version, compiled, with its wire forms."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flagd import jsonio
from flagd.config.repository import StoredConfig
from flagd.experiments.catalog import Catalog
from flagd.experiments.phases import PhaseRecord, registry
from flagd.tracking.check import CompiledPlan
from flagd.tracking.plan import TrackingPlan, read_plan
from flagd_sdk.evaluation import FlagSet, Problem, ResolutionDetails, load_flag_set
from flagd_sdk.evaluation.exposure import Exposure, ServedExperiment, exposure, served_experiments

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    version: int
    etag: str
    document: dict[str, Any]
    body: bytes
    """`document` as JSON, rendered once: GET /v1/flags sends these bytes as they are."""
    flag_set: FlagSet
    float_flags: frozenset[str] = field(default_factory=frozenset)
    """Flags with a fractional number among their variants: their numbers are sent as floats."""
    updated_at: float = 0.0
    placeholder: bool = False
    """True for the empty set served before the database could be read."""
    catalog: Catalog = field(default_factory=Catalog.empty)
    """The experiments and metrics of this version, parsed once (what results are computed from)."""
    phases: dict[str, dict[int, PhaseRecord]] = field(default_factory=dict)
    """Every phase each experiment key ran, by key and phase: what exposures are checked against."""
    problems: tuple[Problem, ...] = ()
    """What is wrong with the stored set (flags that resolve with PARSE_ERROR, or were left out)."""
    ofrep_bodies: dict[tuple[str, str | None, str, bool | None], bytes] = field(default_factory=dict)
    """OFREP success bodies by (flag, variant, reason, exposure): they depend on nothing else, so each is
    rendered once."""
    experiments: dict[str, ServedExperiment] = field(default_factory=dict)
    """The running experiment of each experiment flag, as its served definition carries it."""
    tracking: CompiledPlan = field(default_factory=lambda: CompiledPlan.compile(TrackingPlan.empty()))
    """The tracking plan of this version, compiled once: what track events are checked against."""

    def exposure(self, key: str, details: ResolutionDetails, context: Mapping[str, Any]) -> Exposure | None:
        """The exposure the evaluation `details` of flag `key` in `context` is, or None when it is not one."""
        return exposure(self.experiments.get(key), details, context)

    @classmethod
    def placeholder_snapshot(cls) -> ConfigSnapshot:
        document: dict[str, Any] = {"flags": {}}
        return cls(
            version=-1,
            etag='"cfg-none"',
            document=document,
            body=jsonio.dumps(document),
            flag_set=load_flag_set(document),
            placeholder=True,
        )

    @classmethod
    def build(cls, stored: StoredConfig) -> ConfigSnapshot:
        # Served: running experiments are compiled into their flags (what an author wrote stays in the
        # database and in exports). Writes are validated, so the set loads cleanly; leniently all the
        # same, so a flaw that predates a stricter rule (or a row written by hand) degrades one flag.
        document, served = stored.served()
        flag_set = load_flag_set(document, strict=False)
        problems = (*stored.unreadable, *served.problems, *flag_set.problems)
        for problem in problems:
            logger.warning("stored flag set at version %d: %s", stored.version, problem)
        return cls(
            version=stored.version,
            etag=f'"cfg-{stored.version}"',
            document=document,
            body=jsonio.dumps(document),
            flag_set=flag_set,
            float_flags=frozenset(key for key, flag in document["flags"].items() if _has_float(flag)),
            updated_at=stored.updated_at.timestamp(),
            problems=problems,
            catalog=Catalog.build(stored.version, stored.document(), stored.experiments, stored.lifecycles),
            phases=registry(stored.phases),
            experiments=served_experiments(document),
            tracking=CompiledPlan.compile(read_plan(stored.document(), [])),
        )

    def broken_flags(self) -> list[str]:
        """Flags that cannot serve their variants: they resolve with PARSE_ERROR, or were left out."""
        keys = {key for key, flag in self.flag_set.flags.items() if flag.broken is not None}
        keys.update(_flag_key(problem.path) for problem in self.problems if problem.path.startswith("flags"))
        keys.discard("")
        return sorted(keys)


def _flag_key(path: str) -> str:
    """The flag a problem path is under: `flags.a.targeting` -> a, `flags["a b"].x` -> a b."""
    rest = path.removeprefix("flags")
    if rest.startswith("."):
        return rest[1:].split(".", 1)[0].split("[", 1)[0]
    if rest.startswith('["'):
        return rest[2:].split('"]', 1)[0]
    return ""


def _has_float(flag: Any) -> bool:
    variants = flag.get("variants") if isinstance(flag, dict) else None
    return isinstance(variants, dict) and any(type(v) is float for v in variants.values())
