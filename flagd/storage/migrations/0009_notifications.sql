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
