-- Results (issue 12): per-unit roll-ups, so an experiment's results read one row per unit and metric
-- source instead of every event.
--
-- A "source" is what a metric reads per unit: an event name, its window after exposure and the
-- CUPED pre-exposure window (its key spells all three). results_unit_values holds, per experiment
-- phase and source, each exposed unit (seen in one variant only) that has at least one such event:
-- the count, sum and last value of its events after exposure (inside the window) and the count and
-- sum before it. Units without a row had no event: the analysis counts them from exposures.
--
-- results_rollups records how far each roll-up is caught up: every row committed before
-- caught_up_at is in. A catch-up recomputes the units whose events or exposure rows were stored
-- since then (less a margin for transactions still open), so it is idempotent and exact.
CREATE TABLE results_unit_values (
    experiment text NOT NULL,
    phase      integer NOT NULL,
    source     text NOT NULL,
    unit       text NOT NULL,
    variant    text NOT NULL,
    post_count float8 NOT NULL,
    post_sum   float8 NOT NULL,
    post_last  float8,
    pre_count  float8 NOT NULL,
    pre_sum    float8 NOT NULL,
    PRIMARY KEY (experiment, phase, source, unit)
);

CREATE TABLE results_rollups (
    experiment      text NOT NULL,
    phase           integer NOT NULL,
    source          text NOT NULL,
    caught_up_at    timestamptz NOT NULL,
    latest_event_at timestamptz,
    built_seconds   float8 NOT NULL DEFAULT 0,
    version         bigint NOT NULL DEFAULT 1,  -- bumped by every catch-up that changed a row
    PRIMARY KEY (experiment, phase, source)
);

-- The time series' closed days: per experiment phase, metric (its definition's signature) and day,
-- the per-variant sums as of the day's end, computed once the day is over.
CREATE TABLE results_days (
    experiment text NOT NULL,
    phase      integer NOT NULL,
    signature  text NOT NULL,
    day        date NOT NULL,
    sums       jsonb NOT NULL,
    PRIMARY KEY (experiment, phase, signature, day)
);

-- Sessions of the results pages (/experiments): a login with a results or admin key creates one; the
-- browser holds only a random token (an HttpOnly cookie), stored here as its SHA-256. Revoking or
-- deleting the key ends its sessions; logging out deletes the row.
CREATE TABLE web_sessions (
    token_hash bytea PRIMARY KEY,
    key_id     bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_key ON web_sessions (key_id, created_at);
