-- The identity of this flagd installation: one row, created with the database.
-- Its id survives restarts and backups/restores, so operators (and tests) can tell
-- whether a server is looking at the data they expect.
CREATE TABLE instance (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    instance_id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO instance DEFAULT VALUES;
