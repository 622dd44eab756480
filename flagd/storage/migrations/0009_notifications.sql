-- Notifications (issue 24): what happened that someone may want to hear about, written to this outbox in
-- the same transaction as the change that caused it, so a notification exists exactly when its change
-- committed. Delivery (webhooks, their attempts and log) reads from here; `id` is the identifier a
-- receiver deduplicates by, the same on every attempt.
CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    kind       text NOT NULL CHECK (kind ~ '^[a-z_]+\.[a-z_]+$'),
    subject    text NOT NULL CHECK (length(subject) BETWEEN 1 AND 512),
    payload    json NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notifications_by_time ON notifications (created_at, id);

-- The audit log learns what issue 24's rollouts, schedules and webhooks do, so each can record its own
-- transitions with the reason (in `after`) without another migration widening the same checks.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_entity_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_entity_check
    CHECK (entity IN ('flag', 'evaluator', 'flag_set_metadata', 'api_key', 'metric', 'layer', 'experiment',
                      'rollout', 'schedule', 'webhook'));
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check
    CHECK (action IN ('create', 'update', 'delete', 'start', 'stop', 'new_phase', 'launch',
                      'advance', 'hold', 'pause', 'resume', 'rollback', 'complete', 'execute', 'cancel'));
