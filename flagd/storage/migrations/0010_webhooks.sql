-- Webhooks (issue 24): who hears about which notifications, what is owed to each, and what each attempt did.
--
-- A delivery row is owed for every notification × enabled webhook subscribed to its kind. The trigger on
-- `notifications` writes them in the transaction that writes the notification, so the callers of
-- flagd.notify.outbox.enqueue change nothing and a delivery exists exactly when its notification committed.
CREATE TABLE webhooks (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 256),
    url                  text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    kinds                text[] NOT NULL CHECK (cardinality(kinds) BETWEEN 1 AND 64),
    -- The signing secret: generated (shown once, kept here to sign with) or read from the environment
    -- variable `secret_env` names on each worker; exactly one of them.
    secret               text,
    secret_env           text CHECK (secret_env ~ '^[A-Z_][A-Z0-9_]{0,127}$'),
    slack                boolean NOT NULL DEFAULT false,
    enabled              boolean NOT NULL DEFAULT true,
    -- A failing receiver is paused for its backoff, then probed with one delivery at a time.
    consecutive_failures integer NOT NULL DEFAULT 0,
    paused_until         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((secret IS NULL) <> (secret_env IS NULL))
);

CREATE TABLE webhook_deliveries (
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    -- Due at `next_at`; a worker that claims it holds it until `lease_until`, so no other worker or host
    -- sends the same attempt meanwhile (one that dies mid-attempt loses the lease, and the delivery is sent
    -- again: at least once).
    next_at         timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (webhook_id, notification_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_id, next_at) WHERE state = 'pending';

-- The last attempts per webhook (the deliverer keeps FLAGD_WEBHOOK_LOG_SIZE of them): what the receiver
-- answered, how long it took, what went wrong.
CREATE TABLE webhook_attempts (
    id              bigserial PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    notification_id uuid NOT NULL,
    kind            text NOT NULL,
    attempt         integer NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed', 'test')),
    status          integer,
    duration_ms     double precision NOT NULL,
    error           text CHECK (length(error) <= 1024),
    at              timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, id);

CREATE FUNCTION webhook_deliveries_owed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, notification_id, created_at, next_at)
    SELECT id, NEW.id, NEW.created_at, now() FROM webhooks WHERE enabled AND NEW.kind = ANY (kinds);
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_to_webhooks AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION webhook_deliveries_owed();
