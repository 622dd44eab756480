"""Exposures the server records itself, for OFREP evaluations of a running experiment's flag.

An app in any language then needs only an OpenFeature OFREP provider (and POST /v1/events for
its conversions). Recording is off the request's path: the exposure is queued for the next
group commit and the evaluation is answered at once. Each worker remembers the units it has
recorded (up to `capacity`, least recently seen forgotten first), so a unit evaluated a
thousand times is queued once; the database keeps one row per (experiment, phase, unit)
whatever the workers send.

Delivery is at most once: an exposure is lost if its worker dies before the next commit
(normally a few milliseconds), or is dropped when the queue is full or the database is down
(counted in GET /v1/admin/events/stats). Clients that need at-least-once delivery send
their own exposures and switch this off (per key or per request).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

import orjson
from uuid_utils.compat import uuid7

from flagd import metrics
from flagd.ingest.events import Event
from flagd.ingest.writer import EventWriter
from flagd_sdk.evaluation.exposure import Exposure

HEADER = b"flagd-server-exposures"
"""A request header: "off" (or "false", "0") asks the server not to record this request's exposures."""
_OFF = (b"off", b"false", b"0", b"no")


def wanted(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """False when the request asks the server not to record its exposures."""
    return not any(name == HEADER and value.strip().lower() in _OFF for name, value in raw_headers)


class ServerExposures:
    def __init__(self, writer: EventWriter, capacity: int = 100_000) -> None:
        self._writer = writer
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, int, str], str] = OrderedDict()

    def record(self, exposure: Exposure) -> None:
        key = (exposure.experiment, exposure.phase, exposure.unit)
        variant = exposure.variant
        if self._seen.get(key) == variant:
            self._seen.move_to_end(key)
            return
        now = datetime.now(UTC)
        event = Event(
            "exposure",
            str(uuid7()),
            now,
            exposure.unit,
            experiment=exposure.experiment,
            phase=exposure.phase,
            variant=variant,
            attributes=exposure.attributes,
            payload=orjson.dumps(exposure.attributes).decode() if exposure.attributes else None,
        )
        if not self._writer.offer([event]):
            return  # dropped (and counted): remembered only once queued, so a later evaluation tries again
        metrics.EXPOSURES.labels("server").inc()
        self._seen[key] = variant
        self._seen.move_to_end(key)
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
