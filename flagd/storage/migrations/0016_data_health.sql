-- Data health (issue 25): hourly reductions of the events per name, and the alarms raised on them.
--
-- The detector (flagd.health.detector) reduces each completed UTC hour of `events` once, shortly after it
-- ends, into these small tables; the baselines and the rules read them, never the raw events again. Events
-- that arrive after their hour was reduced are not counted (docs/data-health.md says so).
CREATE TABLE data_health_hours (
    name    text NOT NULL,
    hour    timestamptz NOT NULL,
    events  bigint NOT NULL CHECK (events >= 0),
    -- events that came within a second of the same unit's previous event of the same name
    repeats bigint NOT NULL CHECK (repeats >= 0),
    PRIMARY KEY (name, hour)
);
CREATE INDEX data_health_hours_by_hour ON data_health_hours (hour);

-- Per property (top-level key of `properties`) and JSON type of its value (jsonb_typeof), the events of
-- the hour that had it; the 64 commonest keys of a name and hour.
CREATE TABLE data_health_properties (
    name   text NOT NULL,
    hour   timestamptz NOT NULL,
    key    text NOT NULL,
    type   text NOT NULL CHECK (type IN ('object', 'array', 'string', 'number', 'boolean', 'null')),
    count  bigint NOT NULL CHECK (count >= 0),
    PRIMARY KEY (name, hour, key, type)
);
CREATE INDEX data_health_properties_by_hour ON data_health_properties (hour);

-- How far the detector got: hours before `reduced_until` are reduced; `judged_hour` was judged last.
CREATE TABLE data_health_progress (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    reduced_until timestamptz NOT NULL,
    judged_hour   timestamptz
);

-- An alarm per kind, event and subject (a property for schema drift, '' otherwise): open while the rule
-- keeps firing, resolved the first judged hour it does not. `since` is the first hour in alarm; `expected`
-- and `observed` are counts (volume) or shares (schema drift, duplicates), as of the last hour judged.
CREATE TABLE data_health_alarms (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('volume_anomaly', 'schema_drift', 'duplicate_burst')),
    rule        text NOT NULL CHECK (rule IN ('drop', 'spike', 'stopped', 'null_share', 'type_change',
                                              'duplicate_share')),
    event       text NOT NULL,
    subject     text NOT NULL DEFAULT '',
    state       text NOT NULL CHECK (state IN ('open', 'resolved')),
    since       timestamptz NOT NULL,
    opened_at   timestamptz NOT NULL,
    last_hour   timestamptz NOT NULL,
    resolved_at timestamptz,
    expected    double precision NOT NULL,
    observed    double precision NOT NULL,
    summary     text NOT NULL,
    advice      text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX data_health_alarms_open ON data_health_alarms (kind, event, subject) WHERE state = 'open';
CREATE INDEX data_health_alarms_by_time ON data_health_alarms (opened_at DESC);
CREATE INDEX data_health_alarms_by_event ON data_health_alarms (event) WHERE state = 'open';
