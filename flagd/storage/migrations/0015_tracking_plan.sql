-- The tracking plan (issue 25): the `events:` section of the flags-as-code document, one row per planned
-- event (and the `$plan` row of the plan's own options), versioned and audited like metrics and layers.
CREATE TABLE event_plan (
    key        text PRIMARY KEY,
    definition jsonb NOT NULL,
    version    integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Violations of the plan, counted per day, event name, code and the mode that applied (observe: the event
-- was stored; enforce: it was refused), added to by each worker every few seconds.
CREATE TABLE event_plan_violations (
    day       date NOT NULL,
    name      text NOT NULL,
    code      text NOT NULL,
    mode      text NOT NULL CHECK (mode IN ('observe', 'enforce')),
    count     bigint NOT NULL CHECK (count >= 0),
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (day, name, code, mode)
);

-- The observed schema: what really arrives, from a bounded sample of each event name's stored track events
-- (flagd.tracking.observed). `events` counts the sampled events; a property's `seen` and `nulls` count the
-- sampled events that held it with that JSON type (or null), so shares are seen / events.
CREATE TABLE event_schema (
    name       text PRIMARY KEY,
    events     bigint NOT NULL CHECK (events >= 0),
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL
);

CREATE TABLE event_schema_properties (
    name       text NOT NULL REFERENCES event_schema (name) ON DELETE CASCADE,
    property   text NOT NULL,
    type       text NOT NULL CHECK (type IN ('string', 'integer', 'number', 'boolean', 'null', 'object', 'array')),
    seen       bigint NOT NULL CHECK (seen >= 0),
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    examples   jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (name, property, type)
);

ALTER TABLE audit_log DROP CONSTRAINT audit_log_entity_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_entity_check
    CHECK (entity IN ('flag', 'evaluator', 'flag_set_metadata', 'api_key', 'metric', 'layer', 'experiment',
                      'rollout', 'schedule', 'webhook', 'event'));
