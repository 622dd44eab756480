-- Stored reductions (issue 26): a new results process answers from what any process reduced last.
--
-- Per experiment phase and metric (its signature, flagd.results.sql.days), the last reduction of a metric
-- that cannot be brought forward by a delta (a quantile, a retention, a percentile cap), under the exact
-- key it was read at (the roll-ups' versions, the units per variant, for a retention the matured exposure
-- rows; flagd.results.phase_reader): a process whose key is equal reads it instead of reducing every unit
-- again. One row per metric; a new reduction replaces it.
CREATE TABLE results_reductions (
    experiment text NOT NULL,
    phase      integer NOT NULL,
    signature  text NOT NULL,
    key        text NOT NULL,
    reduction  jsonb NOT NULL,
    PRIMARY KEY (experiment, phase, signature)
);
