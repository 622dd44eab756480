-- Metrics, layers and experiments (issue 10). Definitions are stored as their author wrote them (`json`);
-- an experiment's lifecycle lives in its own columns: state, phase, the phase's salt, its layer slot, and
-- when the phase started (the start of its analysis window). Every change bumps config_state.version, as
-- flag changes do, because running experiments change the served flags.

CREATE TABLE metrics (
    key        text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 256),
    definition json NOT NULL,
    version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE layers (
    key        text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 256),
    definition json NOT NULL,
    version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE experiments (
    key              text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 256),
    definition       json NOT NULL,
    state            text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'running', 'stopped', 'launched')),
    phase            integer NOT NULL DEFAULT 0 CHECK (phase >= 0),
    salt             text NOT NULL DEFAULT '',
    slot_start       integer CHECK (slot_start BETWEEN 0 AND 10000),
    phase_started_at timestamptz,
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- At most one running experiment per flag: the served flag can carry only one.
CREATE UNIQUE INDEX experiments_one_running_per_flag ON experiments ((definition ->> 'flag')) WHERE state = 'running';

ALTER TABLE audit_log DROP CONSTRAINT audit_log_entity_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_entity_check
    CHECK (entity IN ('flag', 'evaluator', 'flag_set_metadata', 'api_key', 'metric', 'layer', 'experiment'));
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check
    CHECK (action IN ('create', 'update', 'delete', 'start', 'stop', 'new_phase', 'launch'));
