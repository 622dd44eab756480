-- What the results watcher (flagd.results.watcher) last saw of each running experiment's current phase
-- (issue 24): its decision, the health checks that failed and the guardrails harmed, as notified and as
-- the previous look saw them (a change counts once two looks in a row agree on it). A round compares the
-- new results with this row and, in the transaction that updates it, writes a notification for each
-- change (a decision that changed, a check that started failing, a guardrail that became harmed), so a
-- change is notified once however many rounds, workers or hosts look at it.
CREATE TABLE experiment_watch (
    experiment       text PRIMARY KEY CHECK (length(experiment) BETWEEN 1 AND 512),
    phase            integer NOT NULL CHECK (phase >= 1),
    decision         text NOT NULL CHECK (decision IN ('investigate', 'stop', 'ship', 'keep running')),
    decision_variant text,
    failed_checks    text[] NOT NULL DEFAULT '{}',
    -- The guardrails harmed, each by a variant: harmed_metrics[i] by harmed_variants[i].
    harmed_metrics   text[] NOT NULL DEFAULT '{}',
    harmed_variants  text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(harmed_variants) = cardinality(harmed_metrics)),
    -- The same four as the previous look saw them.
    last_decision    text NOT NULL CHECK (last_decision IN ('investigate', 'stop', 'ship', 'keep running')),
    last_variant     text,
    last_failed      text[] NOT NULL DEFAULT '{}',
    last_harmed_metrics  text[] NOT NULL DEFAULT '{}',
    last_harmed_variants text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(last_harmed_variants) = cardinality(last_harmed_metrics)),
    as_of            timestamptz NOT NULL,
    -- The moment the results compared were computed for: an older look never overwrites a newer one.
    rounds           bigint NOT NULL DEFAULT 1 CHECK (rounds >= 1),
    watched_by       text NOT NULL,
    watched_at       timestamptz NOT NULL DEFAULT now()
);
