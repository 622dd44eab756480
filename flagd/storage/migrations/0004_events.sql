-- Events (issue 11): track events, exposures, and the counters behind GET /v1/admin/events/stats.
--
-- Track events are partitioned by day of their own timestamp (UTC). The primary key is (event_id,
-- occurred_at): a retry carries the same id and the same timestamp, so it lands in the same partition
-- and conflicts, however many days later it arrives, for as long as that day is kept. Daily partitions
-- are created ahead of time by the server (flagd.ingest.partitions); the default partition catches
-- anything outside them (a day already pruned) and is emptied into a partition when one is created.
CREATE TABLE events (
    event_id    uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    name        text NOT NULL,
    unit        text NOT NULL,
    value       double precision,
    properties  jsonb,
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Results read one metric's events of the exposed units: by name, unit, time.
CREATE INDEX events_name_unit ON events (name, unit, occurred_at);
-- `flagd events tail` reads what arrived since it last looked: events arrive in order, so BRIN suffices.
CREATE INDEX events_received ON events USING brin (received_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Exposures: the first assignment of each unit in each phase of each experiment. One row per unit, not
-- per exposure event, so its size follows the units, not the traffic; it is the deduplication itself
-- (a unit exposed a thousand times is one row) and so it cannot be partitioned by time. A unit later
-- seen in another variant keeps its first variant and is marked `multiple_variants`.
CREATE TABLE exposures (
    experiment        text NOT NULL,
    phase             integer NOT NULL CHECK (phase >= 1),
    unit              text NOT NULL,
    variant           text NOT NULL,
    event_id          uuid NOT NULL,
    exposed_at        timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    attributes        jsonb,
    multiple_variants boolean NOT NULL DEFAULT false,
    source            text NOT NULL CHECK (source IN ('client', 'server')),
    PRIMARY KEY (experiment, phase, unit)
);
CREATE INDEX exposures_received ON exposures USING brin (received_at);
CREATE INDEX exposures_exposed ON exposures (experiment, phase, exposed_at);

-- Counters for GET /v1/admin/events/stats, added to by each worker every few seconds (not per request,
-- so they never contend with event writes). `kind` is 'track' (name is the event name) or 'exposure'
-- (name is the experiment key).
CREATE TABLE event_counts (
    day       date NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('track', 'exposure')),
    name      text NOT NULL,
    count     bigint NOT NULL CHECK (count >= 0),
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (day, kind, name)
);

CREATE TABLE event_rejections (
    day       date NOT NULL,
    code      text NOT NULL,
    count     bigint NOT NULL CHECK (count >= 0),
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (day, code)
);

-- The day before which `flagd events prune` removed events: partitions are not recreated below it.
CREATE TABLE events_retention (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_before date NOT NULL
);

-- One day's partition, created with the rows of its day that sat in the default partition.
CREATE FUNCTION flagd_create_event_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    name text := format('events_p%s', to_char(day, 'YYYYMMDD'));
    low  timestamptz := day::timestamp AT TIME ZONE 'UTC';
    high timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM events_default WHERE occurred_at >= $1 AND occurred_at < $2 '
                   'RETURNING *) INSERT INTO %I SELECT * FROM moved', name) USING low, high;
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, low, high);
    RETURN name;
END
$$;

CREATE FUNCTION flagd_drop_event_partition(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF name !~ '^events_p[0-9]{8}$' THEN
        RAISE EXCEPTION 'not an event partition: %', name;
    END IF;
    EXECUTE format('DROP TABLE %I', name);
END
$$;

-- A key may ask the server not to record exposures of its OFREP evaluations (its client logs them).
ALTER TABLE api_keys ADD COLUMN server_exposures boolean NOT NULL DEFAULT true;
