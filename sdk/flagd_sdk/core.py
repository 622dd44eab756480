"""What a client knows and does in process, with no I/O: the flag set, evaluations, exposures, the event queue.

`Client` and `AsyncClient` share this core; their background work (flagd_sdk.programs) feeds it flag
sets and takes its events. Every call here is safe from any thread: the flag set is replaced whole,
and the queue and the exposure cache are CPython containers whose single operations are atomic.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
from uuid_utils import uuid7

from flagd_sdk.evaluation import FlagSet, FlagType, Reason, ResolutionDetails, load_flag_set
from flagd_sdk.evaluation.exposure import ServedExperiment, exposure, served_experiments
from flagd_sdk.evaluation.types import ErrorCode
from flagd_sdk.units import unit_text

logger = logging.getLogger("flagd_sdk")

NOT_READY = "the flag set has not arrived yet (the server has not answered); the default was returned"
NOT_ARRIVED = "the flag set has not arrived: {}; the default was returned"


@dataclass(frozen=True, slots=True)
class _Loaded:
    flags: FlagSet
    experiments: dict[str, ServedExperiment]
    version: int | None
    etag: str | None
    loaded_at: float


def evaluation_context(unit: str | None, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """The flagd evaluation context of a call: the attributes, with the unit as the targeting key."""
    context: dict[str, Any] = dict(attributes) if attributes else {}
    if unit is not None:
        context["targetingKey"] = unit
    return context


class Core:
    def __init__(self, *, max_queue: int, exposure_cache: int, batch_size: int) -> None:
        self._loaded: _Loaded | None = None
        self._queue: deque[bytes] = deque()
        """Events packed as msgpack when queued (a fifth of a dict's memory); sent as they are."""
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._seen: dict[tuple[str, int], dict[str, str]] = {}
        """Per (experiment, phase), each unit whose exposure was logged, with its variant."""
        self._seen_count = 0
        self._seen_capacity = exposure_cache
        self.dropped = 0
        self.sent = 0
        self.rejected = 0
        self.delivering = 0
        """Events of the batch being sent (or retried) now."""
        self.connected = False
        self.last_error: str | None = None
        self.config_error: str | None = None
        """Why the last attempt to get the flag set failed (None once one arrived): what evaluations say
        before the first flag set."""
        self.on_ready: Callable[[], None] = lambda: None
        self.on_batch: Callable[[], None] = lambda: None
        """Called when the queue reaches a batch (the delivery loop wakes up early)."""

    # --- the flag set -----------------------------------------------------------------------------

    def apply(self, document: Mapping[str, Any], *, version: int | None, etag: str | None) -> None:
        """Serve a new flag set (a document in the flagd format)."""
        flags = load_flag_set(document, strict=False)
        for problem in flags.problems:
            logger.warning("flag set: %s", problem)
        first = self._loaded is None
        self._loaded = _Loaded(flags, served_experiments(document), version, etag, time.time())
        self.config_error = None
        if first:
            self.on_ready()

    def config_failed(self, message: str) -> None:
        self.last_error = self.config_error = message

    @property
    def ready(self) -> bool:
        return self._loaded is not None

    @property
    def etag(self) -> str | None:
        return self._loaded.etag if self._loaded is not None else None

    @property
    def version(self) -> int | None:
        return self._loaded.version if self._loaded is not None else None

    # --- evaluation -------------------------------------------------------------------------------

    def evaluate(
        self,
        flag_type: FlagType,
        key: str,
        default: Any,
        unit: str | None,
        attributes: Mapping[str, Any] | None,
    ) -> ResolutionDetails:
        loaded = self._loaded
        if loaded is None:
            why = self.config_error
            message = NOT_READY if why is None else NOT_ARRIVED.format(why)
            return ResolutionDetails(default, None, Reason.ERROR, ErrorCode.PROVIDER_NOT_READY, message)
        context = evaluation_context(unit, attributes)
        details = loaded.flags.resolve(flag_type, key, default, context)
        experiment = loaded.experiments.get(key)
        if experiment is not None:
            self._expose(experiment, details, context, attributes)
        return details

    def _expose(
        self,
        experiment: ServedExperiment,
        details: ResolutionDetails,
        context: Mapping[str, Any],
        attributes: Mapping[str, Any] | None,
    ) -> None:
        seen_key = (experiment.key, experiment.phase)
        seen = self._seen.get(seen_key)
        if seen is None:
            seen = self._seen.setdefault(seen_key, {})
        if seen.get(unit_text(context, experiment.unit) or "") == details.variant:
            return  # the hot path: this unit's exposure was logged already (whether this one is, or not)
        exposed = exposure(experiment, details, context)
        if exposed is None:
            return
        if exposed.unit not in seen:
            if self._seen_count >= self._seen_capacity:
                self._forget_oldest(seen)
            self._seen_count += 1
        seen[exposed.unit] = exposed.variant
        event: dict[str, Any] = {
            "kind": "exposure",
            "event_id": str(uuid7()),
            "timestamp": int(time.time() * 1000),
            "experiment": exposed.experiment,
            "phase": exposed.phase,
            "variant": exposed.variant,
            "unit": exposed.unit,
        }
        if exposed.attributes:
            event["attributes"] = exposed.attributes
        self.enqueue(event)

    def _forget_oldest(self, preferred: dict[str, str]) -> None:
        """Make room in the exposure cache: the oldest unit of this experiment (or of another)."""
        for units in (preferred, *self._seen.values()):
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):  # another thread got there first
                del units[next(iter(units))]
                self._seen_count -= 1
                return

    # --- events -----------------------------------------------------------------------------------

    def track(
        self, event: str, unit: str, value: float | None = None, properties: Mapping[str, Any] | None = None
    ) -> None:
        record: dict[str, Any] = {
            "kind": "track",
            "event_id": str(uuid7()),
            "timestamp": int(time.time() * 1000),
            "event": event,
            "unit": unit,
        }
        if value is not None:
            record["value"] = float(value)
        if properties:
            record["properties"] = dict(properties)
        self.enqueue(record)

    def enqueue(self, event: dict[str, Any]) -> None:
        packed: bytes = msgpack.packb(event)
        if len(self._queue) >= self._max_queue:
            try:
                self._queue.popleft()
                self.dropped += 1
            except IndexError:
                pass
        self._queue.append(packed)
        if len(self._queue) == self._batch_size:
            self.on_batch()

    def take(self) -> list[bytes]:
        """Up to a batch of the oldest queued events, each packed (their ids are fixed: a retry sends the
        same ones)."""
        # Counted as "delivering" before it leaves the queue, so `queued` never dips to 0 in between.
        self.delivering = min(len(self._queue), self._batch_size)
        batch: list[bytes] = []
        while len(batch) < self.delivering:
            try:
                batch.append(self._queue.popleft())
            except IndexError:
                break
        self.delivering = len(batch)
        return batch

    @property
    def waiting(self) -> int:
        """Events in the queue, not yet taken for delivery."""
        return len(self._queue)

    @property
    def queued(self) -> int:
        """Events not settled yet: waiting, or in the batch being sent."""
        return len(self._queue) + self.delivering

    def status(self) -> dict[str, Any]:
        loaded = self._loaded
        return {
            "ready": loaded is not None,
            "version": loaded.version if loaded else None,
            "flags": len(loaded.flags.flags) if loaded else 0,
            "age_seconds": time.time() - loaded.loaded_at if loaded else None,
            "connected": self.connected,
            "queued": self.queued,
            "sent": self.sent,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "exposures_remembered": self._seen_count,
            "last_error": self.last_error,
        }
