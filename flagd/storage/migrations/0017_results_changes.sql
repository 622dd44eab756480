-- Live results (issue 26): a look after new events reads the delta, not every unit again.
--
-- results_unit_changes: per roll-up and catch-up that changed rows (the roll-up's version after it), each
-- changed unit's row as it was before (variant NULL: the unit had no row). A metric's per-variant sums read
-- at version v become the sums at the current version by taking away the changed units' rows as of v (each
-- unit's earliest change after v) and adding their rows now (flagd.results.sql.delta). Catch-ups keep the
-- last CHANGES_KEPT versions (flagd.results.sql.rollup); results_rollups.changes_from is the lowest version
-- whose changes are all kept (NULL: none are, a roll-up built before this migration until it changes).
CREATE TABLE results_unit_changes (
    experiment text NOT NULL,
    phase      integer NOT NULL,
    source     text NOT NULL,
    version    bigint NOT NULL,
    unit       text NOT NULL,
    variant    text,
    post_count float8,
    post_sum   float8,
    post_last  float8,
    pre_count  float8,
    pre_sum    float8,
    PRIMARY KEY (experiment, phase, source, version, unit)
);

ALTER TABLE results_rollups ADD COLUMN changes_from bigint;

-- Per experiment phase and metric (its signature, flagd.results.sql.days), the per-variant sums of its
-- units with a roll-up row, as of the roll-ups' versions they were read at: a new results process starts
-- from them and the delta since, instead of reducing every unit again.
CREATE TABLE results_sums (
    experiment text NOT NULL,
    phase      integer NOT NULL,
    signature  text NOT NULL,
    versions   bigint[] NOT NULL,
    sums       jsonb NOT NULL,
    PRIMARY KEY (experiment, phase, signature)
);
