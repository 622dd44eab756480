"""Events in (`POST /v1/events`, sdk and client keys) and what arrived (`GET /v1/admin/events/stats`, admin keys).

`POST /v1/events` answers 200 only once every accepted event is committed:

    {"accepted": 498, "rejected": [{"index": 3, "code": "invalid_event_id", "message": "..."}]}

A batch whose every event is refused is answered 422 with the same list in `details`; a
batch that cannot be read at all 400, 413 or 415; and 503 with Retry-After whenever the
events cannot be stored now (nothing of the batch was stored, or a retry is deduplicated).

A batch sent with a client key (a public page's) is bounded more tightly (FLAGD_CLIENT_EVENTS_*: fewer
events, a smaller body, track values within a range) and its exposures are checked against the assignment
the server computes for their units (flagd.ingest.assignment_check).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from flagd import metrics
from flagd.auth.guard import Principal, requires
from flagd.auth.keys import Scope
from flagd.config.phase_history import PhaseHistory
from flagd.errors import MalformedBody, PayloadTooLarge, ValidationFailed
from flagd.experiments.phases import PhaseRecord
from flagd.http.body import read_body
from flagd.http.params import int_param
from flagd.http.responses import OrjsonResponse
from flagd.http.routing import resource
from flagd.ingest.assignment_check import assigned
from flagd.ingest.counters import Counters
from flagd.ingest.decode import decode
from flagd.ingest.events import Batch, Event, Rejection, read_batch
from flagd.ingest.exposure_check import checked
from flagd.ingest.plan_check import plan_checked
from flagd.ingest.repository import EventRepository
from flagd.state import server_state
from flagd.tracking.check import UnplannedMode

EVENTS_PATH = "/v1/events"
MAX_STATS_DAYS = 92
_STATS_ROWS = 10_000


async def post_events(request: Request) -> Response:
    state = server_state(request)
    ingest = state.ingest
    # Refused before the key is checked and the body read: while the database is down (when a key not
    # yet cached could not be checked anyway), a refusal costs almost nothing.
    ingest.writer.check_accepting()
    principal = await state.auth.authenticate(request, Scope.CLIENT)
    client = principal.scope is Scope.CLIENT
    limits = ingest.client_limits if client else ingest.limits
    body = await read_body(request, limits.max_body_bytes, limits.body_setting)
    now = datetime.now(UTC)
    try:
        document = decode(
            body,
            request.headers.get("content-type"),
            request.headers.get("content-encoding"),
            limits.decode,
        )
    except PayloadTooLarge as exc:
        if exc.code == "batch_too_large":  # a msgpack batch refused from its header: counted as a JSON one is
            _count(ingest.counters, [Rejection(-1, exc.code, exc.message)], now)
            metrics.EVENTS_REJECTED.labels(exc.code).inc()
        raise
    batch = read_batch(document, limits.events, now)
    # While this request waits for its commit it holds only its events (counted in the queue's bound).
    del body, document
    if isinstance(batch, Rejection):
        _count(ingest.counters, [batch], now)
        metrics.EVENTS_REJECTED.labels(batch.code).inc()
        if batch.code == "batch_too_large":
            raise PayloadTooLarge(batch.message, code="batch_too_large")
        raise MalformedBody(batch.message, code=batch.code)
    batch = await _checked(request, batch, now, client)
    batch, verdicts = plan_checked(
        batch,
        state.config.snapshot.tracking,
        cast(UnplannedMode, state.settings.events_unplanned),
        ingest.tracking,
        now,
    )
    _count(ingest.counters, batch.rejected, now)
    rejected = [r.to_json() for r in batch.rejected]
    if not batch.accepted and rejected:
        _count_metrics((), batch.rejected)
        raise ValidationFailed(
            f"none of the {len(rejected)} events could be accepted; each is listed in details with what to fix",
            details=rejected,
        )
    await ingest.writer.write(batch.accepted)
    verdicts.count(now)
    _count_metrics(batch.accepted, batch.rejected)
    return OrjsonResponse({"accepted": len(batch.accepted), "rejected": rejected})


async def _checked(request: Request, batch: Batch, now: datetime, client: bool) -> Batch:
    """The batch with the exposures of phases that never ran refused (flagd.ingest.exposure_check), and for
    a client key those its units are not assigned (flagd.ingest.assignment_check); refusals of defined
    experiments counted for their results."""
    state = server_state(request)
    snapshot = state.config.snapshot

    async def lookup(keys: Sequence[str]) -> Sequence[PhaseRecord]:
        async with state.pool.acquire() as conn:
            return await PhaseHistory(conn).of(keys)

    skew = timedelta(seconds=state.settings.events_max_future_skew_seconds)
    result, refused = await checked(batch, snapshot.phases, lookup, skew)
    if client:
        result, unassigned = assigned(result, snapshot)
        refused += unassigned
    for (experiment, code), count in Counter(refused).items():
        if experiment in snapshot.catalog.entries:
            state.ingest.counters.refused_exposures(now.date(), experiment, code, count, now)
    return result


def _count_metrics(accepted: Sequence[Event], rejected: Sequence[Rejection]) -> None:
    exposures = sum(1 for event in accepted if event.kind == "exposure")
    if exposures:
        metrics.EVENTS.labels("exposure", "accepted").inc(exposures)
        metrics.EXPOSURES.labels("client").inc(exposures)
    if len(accepted) > exposures:
        metrics.EVENTS.labels("track", "accepted").inc(len(accepted) - exposures)
    for rejection in rejected:
        metrics.EVENTS_REJECTED.labels(rejection.code).inc()


def _count(counters: Counters, rejected: Sequence[Rejection], now: datetime) -> None:
    for code, count in Counter(r.code for r in rejected).items():
        counters.rejected(now.date(), code, count, now)


@requires(Scope.ADMIN)
async def event_stats(request: Request, principal: Principal) -> Response:
    """Counts per event name (and experiment) and day, refusals by reason, and when each name was last seen."""
    days = int_param(request, "days", low=1, high=MAX_STATS_DAYS) or 7
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    state = server_state(request)
    async with state.pool.acquire() as conn:
        stored = EventRepository(conn)
        counts = await stored.counts(since, _STATS_ROWS)
        rejected = await stored.rejections(since, _STATS_ROWS)
    last_seen: dict[str, dict[str, datetime]] = {"track": {}, "exposure": {}}
    for row in counts:
        seen = last_seen[row.kind]
        if row.name not in seen or row.last_seen > seen[row.name]:
            seen[row.name] = row.last_seen
    return OrjsonResponse(
        {
            "since": _day(since),
            "days": days,
            "events": [
                {"day": _day(r.day), "name": r.name, "count": r.count} for r in counts if r.kind == "track"
            ],
            "exposures": [
                {"day": _day(r.day), "experiment": r.name, "units": r.count}
                for r in counts
                if r.kind == "exposure"
            ],
            "rejected": [
                {"day": _day(r.day), "code": r.code, "count": r.count, "lastSeen": r.last_seen}
                for r in rejected
            ],
            "lastSeen": [
                {"kind": kind, "name": name, "at": at}
                for kind, names in last_seen.items()
                for name, at in sorted(names.items())
            ],
            "truncated": len(counts) >= _STATS_ROWS or len(rejected) >= _STATS_ROWS,
            "queue": {
                "accepting": state.ingest.writer.accepting,
                "droppedServerExposures": state.ingest.writer.dropped_offers,
            },
        }
    )


def _day(day: date) -> str:
    return day.isoformat()


routes = [
    resource(EVENTS_PATH, POST=post_events),
    resource("/v1/admin/events/stats", GET=event_stats),
]
