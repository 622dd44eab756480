"""Simulated traffic for the rollout tests: units assigned by the served flags as an SDK assigns them,
their exposures and error events sent through POST /v1/events, and a monitor on a clock the test moves."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from uuid_utils.compat import uuid7

from flagd.rollouts.monitor import RolloutMonitor, direct_looker
from flagd.settings import Settings
from flagd.storage.pool import open_pool
from flagd_sdk.evaluation import FlagType, load_flag_set
from flagd_sdk.evaluation.exposure import exposure, served_experiments

FLAG_SET: dict[str, Any] = {
    "flags": {
        "checkout": {
            "state": "ENABLED",
            "variants": {"old": "old", "new": "new"},
            "defaultVariant": "old",
        }
    },
    "metrics": {"errors": {"type": "conversion", "event": "error", "direction": "decrease"}},
}


def definition(*percents: float, min_units: int, seconds: float = 3600) -> dict[str, Any]:
    return {
        "flag": "checkout",
        "variant": "new",
        "stages": [{"percent": p, "min_duration_seconds": seconds, "min_units": min_units} for p in percents],
        "guardrails": [{"metric": "errors"}],
    }


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@asynccontextmanager
async def monitor(settings: Settings, clock: Clock) -> AsyncIterator[RolloutMonitor]:
    """A monitor of the test's own (the server's is off), looking on the test's loop, timed by `clock`."""
    pool = await open_pool(settings)
    try:
        yield RolloutMonitor(pool, direct_looker(pool, settings), interval=0, clock=clock)
    finally:
        await pool.close()


class Traffic:
    def __init__(self, sdk: httpx.AsyncClient, error_rates: dict[str, float], seed: int = 7) -> None:
        self._sdk = sdk
        self._rates = error_rates
        self._random = random.Random(seed)
        self.sent = 0

    async def served(self, at_least: int = 0) -> dict[str, Any]:
        """The served flag set (GET /v1/flags, as an SDK fetches it), once at config version `at_least`."""
        for _ in range(200):
            response = await self._sdk.get("/v1/flags")
            version = int(response.headers["ETag"].strip('"').removeprefix("cfg-"))
            if version >= at_least:
                document: dict[str, Any] = response.json()
                return document
            await _pause()
        raise AssertionError(f"the server never served config version {at_least}")

    def assign(self, document: dict[str, Any], units: Iterable[str]) -> dict[str, str]:
        flags = load_flag_set(document)
        return {
            u: str(flags.resolve(FlagType.STRING, "checkout", "old", {"targetingKey": u}).variant)
            for u in units
        }

    async def visit(self, document: dict[str, Any], units: list[str]) -> dict[str, str]:
        """Each unit evaluates the flag as an SDK does, sends its exposure and, at its variant's rate, an error."""
        flags = load_flag_set(document)
        served = served_experiments(document).get("checkout")
        events: list[dict[str, Any]] = []
        assigned = {}
        now = datetime.now(UTC).isoformat()
        for unit in units:
            context = {"targetingKey": unit}
            details = flags.resolve(FlagType.STRING, "checkout", "old", context)
            assigned[unit] = str(details.variant)
            seen = exposure(served, details, context)
            if seen is not None:
                events.append(
                    {
                        "kind": "exposure",
                        "event_id": str(uuid7()),
                        "timestamp": now,
                        "experiment": seen.experiment,
                        "phase": seen.phase,
                        "variant": seen.variant,
                        "unit": unit,
                    }
                )
            if self._random.random() < self._rates[assigned[unit]]:
                events.append(
                    {
                        "kind": "track",
                        "event_id": str(uuid7()),
                        "timestamp": now,
                        "event": "error",
                        "unit": unit,
                    }
                )
        for start in range(0, len(events), 5000):
            response = await self._sdk.post("/v1/events", json={"events": events[start : start + 5000]})
            assert response.status_code == 200, response.text
            assert response.json()["rejected"] == [], response.text
        self.sent += len(units)
        return assigned


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)  # waiting for the server's reload after a commit; nothing asserts the delay
