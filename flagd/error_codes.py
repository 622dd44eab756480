"""Every error code the server answers, once: the registry docs/errors.md is generated from.

`ERRORS` are the codes of error responses (`{"error": {"code", "message", "details"?}}`), with their HTTP
status; `EVENT_REFUSALS` are the codes of single events that POST /v1/events refuses while it keeps their
neighbours (`rejected[].code` and `rejected[].problems[].code`). The raise sites name their codes as
literals (`code="flag_exists"`) or through the default code of their class in `flagd.errors`; a test reads
every one of them in the source and checks it is registered here, and that every code here is raised
somewhere. OFREP's evaluation errors (`FLAG_NOT_FOUND`, `PARSE_ERROR`, ...) follow OFREP and are not here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    status: int
    meaning: str
    """What it means and what to do, in one sentence."""


@dataclass(frozen=True, slots=True)
class EventRefusal:
    code: str
    field: str
    """The member of the event it is about ("" for the event as a whole, "*" for the member named)."""
    meaning: str


ERRORS: tuple[ErrorCode, ...] = (
    ErrorCode("bad_request", 400, "The request is malformed in a way the message names; fix what it says."),
    ErrorCode("malformed_body", 400, "The body is not valid JSON (or msgpack, or gzip, as its headers say)."),
    ErrorCode("malformed_batch", 400, 'The events body is not an object with one member, "events": a list.'),
    ErrorCode(
        "invalid_parameter",
        400,
        "A query parameter or path value is not valid; the message names it and what it accepts.",
    ),
    ErrorCode(
        "unit_required",
        400,
        "GET /v1/events/live follows one unit: name it with ?unit=, as the app sends it in its events.",
    ),
    ErrorCode(
        "unit_too_long",
        400,
        "The unit to follow is longer than any unit POST /v1/events stores (256 characters); check the value.",
    ),
    ErrorCode(
        "invalid_cursor",
        400,
        "`after` is not a cursor this endpoint answered; pass the `cursor` of the previous answer, or none.",
    ),
    ErrorCode("wrong_type", 400, "The JSON body must be an object."),
    ErrorCode(
        "unknown_field",
        400,
        "The body has a member this endpoint does not take; the message lists those it takes.",
    ),
    ErrorCode("missing_field", 400, "The body lacks a member this endpoint needs; the message names it."),
    ErrorCode(
        "unauthorized",
        401,
        "No API key, or one that is malformed, unknown or revoked, or an Authorization header that is not "
        "`Bearer <key>`; send `Authorization: Bearer <key>` or `X-API-Key: <key>` (with `WWW-Authenticate`).",
    ),
    ErrorCode(
        "forbidden",
        403,
        "The key's scope does not reach this endpoint; use a key of the scope the message names.",
    ),
    ErrorCode(
        "origin_not_allowed",
        403,
        "A client key was used from a browser origin it does not allow (its own `--origin`s, or else "
        "FLAGD_CORS_ORIGINS); create a key for that origin. The answer carries no CORS header.",
    ),
    ErrorCode("not_found", 404, "No endpoint at this method and path; check it against the API reference."),
    ErrorCode("flag_not_found", 404, "No flag has this key."),
    ErrorCode("metric_not_found", 404, "No metric has this key."),
    ErrorCode(
        "experiment_not_found", 404, "No experiment has this key (or its definition no longer reads cleanly)."
    ),
    ErrorCode(
        "method_not_allowed",
        405,
        "The path does not take this method; the `Allow` header lists those it takes.",
    ),
    ErrorCode("conflict", 409, "The request conflicts with the stored state; the message says how."),
    ErrorCode("flag_exists", 409, "A flag with this key exists already; update it with PUT and If-Match."),
    ErrorCode("metric_exists", 409, "A metric with this key exists already; replace it with PUT."),
    ErrorCode("experiment_exists", 409, "An experiment with this key exists already; replace it with PUT."),
    ErrorCode(
        "experiment_running",
        409,
        "The change would delete a running experiment or change its assignment; stop it first, or start a "
        "new phase with the change.",
    ),
    ErrorCode(
        "lifecycle_conflict",
        409,
        "The experiment's state does not allow this transition (start, stop, new phase, launch); the message "
        "says which states do.",
    ),
    ErrorCode(
        "experiment_not_started",
        409,
        "The experiment is a draft that has never started, so it has no results yet; start it with "
        "`flagd experiments start KEY` or POST /v1/admin/experiments/{key}/start.",
    ),
    ErrorCode(
        "precondition_failed", 412, "The resource changed since the version named by If-Match; read it again."
    ),
    ErrorCode(
        "version_mismatch",
        412,
        "The flag changed since the version named by If-Match; read it again and retry.",
    ),
    ErrorCode(
        "config_version_mismatch",
        412,
        "The flag set changed since the ETag named by If-Match; read it again and retry.",
    ),
    ErrorCode(
        "payload_too_large", 413, "The body is larger than the limit the message names (and its setting)."
    ),
    ErrorCode("batch_too_large", 413, "The batch holds more events than FLAGD_EVENTS_MAX_BATCH; split it."),
    ErrorCode(
        "unsupported_media_type",
        415,
        "The body's Content-Type is not one this endpoint reads; the message names those it does.",
    ),
    ErrorCode(
        "validation_failed",
        422,
        "The document or events have problems, each located in `details`; for POST /v1/events, every event "
        "was refused.",
    ),
    ErrorCode("precondition_required", 428, "This write needs an If-Match header with the version you read."),
    ErrorCode(
        "rate_limited",
        429,
        "A client key's requests came too fast from this address (FLAGD_CLIENT_RATE_PER_SECOND) or with this "
        "key (FLAGD_CLIENT_KEY_RATE_PER_SECOND); retry after `Retry-After` seconds.",
    ),
    ErrorCode(
        "internal_error", 500, "The server failed; the error is logged (never returned); please report it."
    ),
    ErrorCode(
        "event_write_failed",
        500,
        "Events could not be stored because of a bug in the server; please report it.",
    ),
    ErrorCode("service_unavailable", 503, "The server cannot answer this now; retry shortly."),
    ErrorCode("database_unavailable", 503, "The database is not reachable right now; retry shortly."),
    ErrorCode(
        "schema_out_of_date", 503, "The database schema is older than this server; run `flagd migrate`."
    ),
    ErrorCode("config_not_loaded", 503, "The flag configuration is not loaded yet; retry shortly."),
    ErrorCode(
        "too_many_connections",
        503,
        "The worker holds FLAGD_MAX_CONNECTIONS connections, each with a request in flight; retry after "
        "`Retry-After`.",
    ),
    ErrorCode(
        "queue_full",
        503,
        "The events queue is full while the database catches up; retry after `Retry-After`.",
    ),
    ErrorCode(
        "results_busy",
        503,
        "Every results process is busy and FLAGD_RESULTS_MAX_WAITING requests wait; retry after `Retry-After`.",
    ),
    ErrorCode(
        "results_timeout",
        503,
        "The results took longer than FLAGD_RESULTS_TIMEOUT_SECONDS; retry after `Retry-After`.",
    ),
    ErrorCode(
        "results_unavailable",
        503,
        "A results process stopped and is being replaced; retry after `Retry-After`.",
    ),
    ErrorCode(
        "live_busy",
        503,
        "Another live read (GET /v1/events/live or the live page's poll) is running on this worker; retry after "
        "`Retry-After`.",
    ),
    ErrorCode(
        "webhook_not_found",
        404,
        "No webhook has this id; list them with GET /v1/webhooks or `flagd webhooks list`.",
    ),
    ErrorCode(
        "invalid_webhook",
        422,
        "The webhook's name, url, kinds or secretEnv is not valid; details names each member and what it takes.",
    ),
    ErrorCode("webhook_exists", 409, "Another webhook has this name; choose another one."),
    ErrorCode(
        "too_many_webhooks", 409, "The server keeps at most 100 webhooks; delete one before creating another."
    ),
    ErrorCode(
        "invalid_schedule",
        400,
        "A schedule's action, target, dueAt, definition or allowPast is not valid; the message says what each "
        "takes.",
    ),
    ErrorCode("schedule_not_found", 404, "No schedule has this id."),
    ErrorCode(
        "schedule_not_pending",
        409,
        "The schedule was executed, failed or cancelled already; only a pending schedule can be cancelled.",
    ),
    ErrorCode(
        "too_many_schedules", 409, "10,000 schedules are pending, the most there may be; cancel some first."
    ),
    ErrorCode(
        "schedule_outdated",
        409,
        "The error of a failed update_flag schedule: the flag changed after it was scheduled, so its definition "
        "was not written over that change; schedule it again on the flag as it is now.",
    ),
    ErrorCode(
        "schedule_in_past",
        422,
        "dueAt is before the server's time; give a later one, or send allowPast: true to run it at once.",
    ),
    ErrorCode("schedule_too_far", 422, "dueAt is more than ten years ahead; schedule it nearer the time."),
    ErrorCode(
        "no_planned_reach",
        400,
        "The results were asked with method=planned for an experiment without a planned reach; set its "
        "expected_units, or ask for method=mixture.",
    ),
    # Rollouts (issue 24).
    ErrorCode("rollout_not_found", 404, "No rollout has this key; `GET /v1/rollouts` lists them."),
    ErrorCode(
        "rollout_exists", 409, "A rollout with this key exists already; keys are not reused, choose another."
    ),
    ErrorCode(
        "rollout_conflict",
        409,
        "The flag is being rolled out by another rollout or runs an experiment; finish or stop that first.",
    ),
    ErrorCode(
        "rollout_state",
        409,
        "The rollout is not in a state this move applies to (the message says which); read it and choose again.",
    ),
)

EVENT_REFUSALS: tuple[EventRefusal, ...] = (
    EventRefusal("malformed_event", "", "The event is not a JSON object."),
    EventRefusal("unknown_kind", "kind", 'kind must be "exposure" or "track".'),
    EventRefusal("unknown_field", "*", "The event has a member its kind does not take."),
    EventRefusal(
        "invalid_event_id",
        "event_id",
        "event_id must be a UUID in its 36-character form (UUIDv7 recommended).",
    ),
    EventRefusal(
        "invalid_timestamp",
        "timestamp",
        "timestamp must be RFC 3339 with a zone, or whole milliseconds since 1970.",
    ),
    EventRefusal(
        "timestamp_in_future",
        "timestamp",
        "The timestamp is more than FLAGD_EVENTS_MAX_FUTURE_SKEW_SECONDS ahead; check the client's clock.",
    ),
    EventRefusal(
        "timestamp_too_old", "timestamp", "The timestamp is more than FLAGD_EVENTS_MAX_AGE_DAYS old."
    ),
    EventRefusal(
        "invalid_unit", "unit", "unit must be non-empty text of at most 256 characters, without NUL."
    ),
    EventRefusal("invalid_experiment", "experiment", "experiment must be an experiment key."),
    EventRefusal("invalid_phase", "phase", "phase must be a whole number from 1."),
    EventRefusal(
        "invalid_variant", "variant", "variant must be non-empty text of at most 256 characters, without NUL."
    ),
    EventRefusal(
        "invalid_attributes",
        "attributes",
        "attributes must be an object of at most 32 members with short names and scalar values.",
    ),
    EventRefusal("invalid_event_name", "event", "event must be an event name (letters, digits, . _ : -)."),
    EventRefusal("invalid_value", "value", "value must be a finite number within 1e15."),
    EventRefusal(
        "value_out_of_range",
        "value",
        "Sent with a client key, a value must lie strictly between -FLAGD_CLIENT_EVENTS_MAX_VALUE and "
        "FLAGD_CLIENT_EVENTS_MAX_VALUE.",
    ),
    EventRefusal(
        "invalid_properties",
        "properties",
        "properties must be an object of plain JSON, without NUL, with integers within 64 bits.",
    ),
    EventRefusal("properties_too_deep", "properties", "properties nest at most 8 levels."),
    EventRefusal(
        "properties_too_large",
        "properties",
        "properties take more than FLAGD_EVENTS_MAX_PROPERTIES_BYTES as JSON.",
    ),
    EventRefusal(
        "unknown_experiment",
        "experiment",
        "No experiment of this key has ever run; check the key (a served flag's metadata names its experiment).",
    ),
    EventRefusal(
        "unknown_phase", "phase", "The experiment never ran this phase; log the phase the SDK served."
    ),
    EventRefusal("unknown_variant", "variant", "The variant is not one of the phase's variants."),
    EventRefusal(
        "outside_phase",
        "timestamp",
        "The exposure's time lies outside the phase (with FLAGD_EVENTS_MAX_FUTURE_SKEW_SECONDS either side).",
    ),
    EventRefusal(
        "variant_not_assigned",
        "variant",
        "Sent with a client key, an exposure must be the unit's assignment as the server evaluates it now "
        "(the experiment running, the unit in it, the same phase and variant).",
    ),
    # The tracking plan (issue 25): a track event in enforce mode is refused with one of these per violation
    # (an event in observe mode is stored and each violation counted); `field` is the violation's path.
    EventRefusal(
        "unplanned_event",
        "event",
        "The tracking plan does not name the event and FLAGD_EVENTS_UNPLANNED is enforce; plan it or fix the name.",
    ),
    EventRefusal(
        "bad_name", "*", "The event or property name does not follow the plan's naming rule ($plan.naming)."
    ),
    EventRefusal("missing_property", "*", "A property the plan requires is absent or null; send it."),
    EventRefusal(
        "unexpected_property",
        "*",
        "The planned event takes no properties beyond its plan (additional_properties: false); remove it.",
    ),
    EventRefusal(
        "wrong_type", "*", "The property is not of its planned type (string, number, integer, boolean)."
    ),
    EventRefusal("not_in_enum", "*", "The property's value is not one of its planned values (enum)."),
    EventRefusal("out_of_range", "*", "The numeric property lies below its planned min or above its max."),
    EventRefusal("too_long", "*", "The text property is longer than its planned max_length."),
    EventRefusal("pattern_mismatch", "*", "The text property does not match its planned pattern in full."),
    EventRefusal("value_missing", "value", "The plan requires the event to carry a value; send one."),
    EventRefusal("value_unexpected", "value", "The plan says the event carries no value (value: forbidden)."),
)


def status_of(code: str) -> int | None:
    return next((e.status for e in ERRORS if e.code == code), None)


def generic(status: int) -> str:
    """The general code of an HTTP status (the first registered with it), for an error no code was given."""
    found = next((e.code for e in ERRORS if e.status == status), None)
    if found is not None:
        return found
    return "bad_request" if 400 <= status < 500 else "internal_error"


def markdown() -> str:
    """docs/errors.md (written by `python -m flagd.reference --write`)."""
    errors = "\n".join(f"| `{e.code}` | {e.status} | {e.meaning} |" for e in ERRORS)
    refusals = "\n".join(f"| `{r.code}` | {_field_cell(r.field)} | {r.meaning} |" for r in EVENT_REFUSALS)
    return f"""# Errors

<!-- Generated by `python -m flagd.reference --write` from flagd/error_codes.py; edit that, not this file. -->

Every error response outside OFREP's own shapes has one form, with a stable machine-readable `code` and a
message that says what was wrong and how to fix it:

```json
{{"error": {{"code": "experiment_not_started", "message": "Experiment one-page-checkout is a draft and has not started, so it has no results yet; start it with `flagd experiments start one-page-checkout` or POST /v1/admin/experiments/one-page-checkout/start."}}}}
```

A refused flag-set document adds `details`, a list of `{{"path", "message"}}`, one per problem; a batch of
events whose every event is refused lists them in `details` as `rejected` does below. Every response
carries `X-Request-ID` (the caller's, if it sent a well-formed one), which the access log records too:
quote it when you report a problem. Answers with 401 carry `WWW-Authenticate`, 405 `Allow`, and 503
`Retry-After` where retrying helps. OFREP evaluations answer OFREP's own error codes (`FLAG_NOT_FOUND`,
`PARSE_ERROR`, `TYPE_MISMATCH`, `INVALID_CONTEXT`, `GENERAL`, ...) with `errorDetails`.

## Error responses

| code | status | meaning and what to do |
|---|---|---|
{errors}

## Refused events

`POST /v1/events` checks each event on its own and keeps the good ones. Each refused event is listed in
`rejected` with its index, the code and message of its first problem and every problem it has (at most 10),
each with its field:

```json
{{"index": 3, "code": "invalid_event_id", "message": "event_id must be a UUID in its 36-character form (UUIDv7 recommended); got nothing (and 1 more, listed in problems: phase)",
 "problems": [
  {{"field": "event_id", "code": "invalid_event_id", "message": "event_id must be a UUID in its 36-character form (UUIDv7 recommended); got nothing"}},
  {{"field": "phase", "code": "invalid_phase", "message": "phase must be a whole number from 1; got 0"}}]}}
```

`unknown_experiment`, `unknown_phase`, `unknown_variant` and `outside_phase` are checked after the others,
against the phases that really ran; `variant_not_assigned` last, for batches sent with a client key only.

| code | field | meaning and what to do |
|---|---|---|
{refusals}
"""


def _field_cell(field: str) -> str:
    return "the event" if not field else "the member itself" if field == "*" else f"`{field}`"
