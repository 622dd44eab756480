-- Rollouts (issue 24): a flag's variant released in place of another through stages. The definition is
-- stored as its author wrote it; the state columns move through the monitor's and the operators'
-- transitions, each guarded by `version` (an UPDATE ... WHERE version = $n), so two hosts never both
-- make one. `last_look` is the monitor's latest look (guardrail intervals), shown by the API and page. `phase` is the phase of the experiment `rollout:<key>` its current stage records exposures in.
CREATE TABLE rollouts (
    key              text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    flag             text NOT NULL,
    definition       json NOT NULL,
    state            text NOT NULL DEFAULT 'running'
                     CHECK (state IN ('running', 'paused', 'held', 'rolled_back', 'completed')),
    stage            integer NOT NULL DEFAULT 0 CHECK (stage >= 0),
    share_bp         integer NOT NULL CHECK (share_bp BETWEEN 0 AND 10000),
    salt             text NOT NULL,
    phase            integer NOT NULL CHECK (phase >= 1),
    stage_started_at timestamptz NOT NULL DEFAULT now(),
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    last_look        json,
    last_look_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- At most one active rollout per flag: the served flag carries only one.
CREATE UNIQUE INDEX rollouts_one_active_per_flag ON rollouts (flag) WHERE state IN ('running', 'paused', 'held');

-- Every transition, with why and the statistics that caused it: the rollout's history and its share over
-- time. (rollout, version) is unique: a transition is made from one version of the rollout, once.
CREATE TABLE rollout_transitions (
    id         bigserial PRIMARY KEY,
    rollout    text NOT NULL REFERENCES rollouts (key) ON DELETE CASCADE,
    version    integer NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    state      text NOT NULL,
    stage      integer NOT NULL,
    share_bp   integer NOT NULL,
    reason     text NOT NULL,
    statistics json NOT NULL DEFAULT '{}',
    UNIQUE (rollout, version)
);
