-- Flag definitions, shared evaluators and flag-set metadata, with one config version that
-- every change bumps (the ETag of the whole set); the audit log; and API keys.
--
-- Definitions are stored as `json`, not `jsonb`, so that an export gives back the document
-- exactly as its author wrote it (key order, number forms such as 1.0).

CREATE TABLE config_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL DEFAULT 0,
    metadata   json NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO config_state DEFAULT VALUES;

CREATE TABLE flags (
    key        text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 256),
    definition json NOT NULL,
    version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE evaluators (
    name       text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 256),
    rule       json NOT NULL,
    version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL,
    action         text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    entity         text NOT NULL CHECK (entity IN ('flag', 'evaluator', 'flag_set_metadata', 'api_key')),
    entity_key     text NOT NULL,
    before         json,
    after          json,
    config_version bigint
);

CREATE INDEX audit_log_by_entity ON audit_log (entity, entity_key, id DESC);

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scope       text NOT NULL CHECK (scope IN ('admin', 'sdk', 'results')),
    prefix      text NOT NULL UNIQUE,
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
