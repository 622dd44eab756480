"""What each setting means, in a sentence: the one source of docs/configuration.md.

Kept beside `Settings` (a test checks that every field has one, and that docs/configuration.md is what
`flagd.reference` renders from it), so a new setting cannot go undocumented.
"""

from __future__ import annotations

MEANINGS: dict[str, str] = {
    "database_url": "PostgreSQL URL, e.g. `postgresql://flagd:secret@db:5432/flagd`",
    "data_dir": "where the embedded PostgreSQL keeps its data",
    "host": "address to listen on (`0.0.0.0` in containers)",
    "port": "port to listen on",
    "workers": "worker processes",
    "log_level": "`debug`, `info`, `warning`, `error`, `critical`",
    "log_format": "`text`, or `json` for one JSON object per line",
    "access_log": "one log line per request (method, path, status, duration, request id), written in batches every 100 ms",
    "migrate_on_start": "apply pending migrations when the server starts",
    "db_pool_min_size": "fewest connections each worker keeps to PostgreSQL",
    "db_pool_max_size": "most connections each worker opens to PostgreSQL",
    "db_connect_timeout": "seconds to wait for a database connection",
    "max_body_bytes": "largest request body accepted",
    "header_timeout_seconds": "a connection's next request headers must be complete this long after it opened or its previous response ended, however slowly they trickle in; otherwise it is closed",
    "body_timeout_seconds": "a request's body must be complete this long after its headers; otherwise the connection is closed",
    "keep_alive_seconds": "how long an idle connection is kept open between requests",
    "max_connections": "connections per worker, lowered to fit its open-file limit",
    "config_poll_seconds": "how often each worker double-checks the config version",
    "sse_heartbeat_seconds": "heartbeat interval on `/v1/flags/stream`",
    "events_max_body_bytes": "largest `POST /v1/events` body as sent (413)",
    "events_max_inflated_bytes": "largest gzip body once inflated (413); also bounds a worker's memory for decoding (below)",
    "events_max_batch": "most events in one batch (413 `batch_too_large`)",
    "events_max_properties_bytes": "largest `properties` of a track event, as JSON (`properties_too_large`)",
    "events_max_future_skew_seconds": "how far ahead of the server's clock a timestamp may be",
    "events_max_age_days": "how old an event may be; partitions are kept ready this far back",
    "events_max_queued": "events a worker holds waiting for their commit; past it, 503 `queue_full`",
    "events_max_queued_bytes": "the same bound in memory (an event counts as its text plus 800 bytes)",
    "events_commit_timeout": "seconds a batch waits for its commit before 503 (a retry is deduplicated)",
    "server_exposures": "record exposures of OFREP single-flag evaluations",
    "results_pre_exposure_days": "CUPED's covariate: each unit's same metric this many days before its exposure (0 turns CUPED off)",
    "results_rollup_seconds": "how often the background keeper catches running experiments' roll-ups up",
    "results_processes": "results processes per worker (results and pages are computed there, off the evaluation loop)",
    "results_max_waiting": "results requests a worker lets wait for a busy process; past it `503 results_busy`",
    "results_timeout_seconds": "a results request that takes longer is answered `503 results_timeout`",
    "metrics": "who may read `GET /metrics`: `key` (an admin key), `open`, `off`",
    "metrics_port": "also serve the metrics, open, on this port (from the supervisor)",
    "cors_origins": "comma-separated browser origins (`http://127.0.0.1:5173,https://shop.example`, exact) every client key may be used from, unless the key was created with `--origin`s of its own; the CORS answers of the client endpoints (OFREP, `POST /v1/events`, `/v1/client/stream`) allow these and every client key's origins",
    "client_rate_per_second": "requests a second one client address may make with client keys (each worker counts its own; 429 `rate_limited` with `Retry-After`)",
    "client_rate_burst": "requests one client address may make at once with client keys before the rate applies",
    "client_key_rate_per_second": "requests a second one client key may make, from all addresses together (per worker)",
    "client_key_rate_burst": "requests one client key may make at once before its rate applies",
    "client_events_max_batch": "most events in one batch sent with a client key (413 `batch_too_large`)",
    "client_events_max_body_bytes": "largest `POST /v1/events` body sent with a client key (413)",
    "client_events_max_value": "a track value sent with a client key must be smaller than this in magnitude (`value_out_of_range`)",
}
