-- Scheduled changes (issue 24): enable, disable or replace a flag, or start or stop an experiment, at a
-- time. A row is claimed by one executor (`FOR UPDATE SKIP LOCKED`) and its change, its audit entries, its
-- notification and its new status commit in one transaction, so it is executed exactly once however many
-- workers and hosts poll and however often they are killed. `update_flag` carries the whole definition and
-- the flag's version when it was scheduled: if the flag changed since, the schedule fails instead of
-- overwriting that change. `attempts` counts executions that failed for another reason than the change
-- (the database, a bug), so one such schedule is given up after a few tries instead of blocking the rest.
CREATE TABLE schedules (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action       text NOT NULL
                 CHECK (action IN ('enable_flag', 'disable_flag', 'update_flag', 'start_experiment',
                                   'stop_experiment')),
    target       text NOT NULL CHECK (length(target) BETWEEN 1 AND 256),
    definition   json,
    flag_version integer CHECK (flag_version >= 1),
    due_at       timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'executed', 'failed', 'cancelled')),
    result       json,
    error        text,
    created_by   text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 512),
    created_at   timestamptz NOT NULL DEFAULT now(),
    executed_at  timestamptz,
    executed_by  text,
    cancelled_at timestamptz,
    cancelled_by text,
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    CHECK ((action = 'update_flag') = (definition IS NOT NULL AND flag_version IS NOT NULL)),
    CHECK ((status IN ('executed', 'failed')) = (executed_at IS NOT NULL)),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((status = 'failed') = (error IS NOT NULL))
);

-- What the executors poll: the pending rows, oldest due first.
CREATE INDEX schedules_due ON schedules (due_at, id) WHERE status = 'pending';
