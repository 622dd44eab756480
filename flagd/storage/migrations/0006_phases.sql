-- Every phase an experiment key ever ran (issue 20): what exposures are checked against before they reach an
-- analysis, with the variants it split between and when it began and ended. Kept when the experiment is
-- deleted, so a key created again continues its phase numbering and its old exposures and roll-ups never
-- join the new ones.
CREATE TABLE experiment_phases (
    experiment text NOT NULL,
    phase      integer NOT NULL CHECK (phase >= 1),
    variants   text[] NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    PRIMARY KEY (experiment, phase)
);

-- The phases that ran before this table: the current one as recorded; earlier ones between the
-- experiment's creation and the current phase's start (their exact times were not kept).
INSERT INTO experiment_phases (experiment, phase, variants, started_at, ended_at)
SELECT x.key, p.phase,
       ARRAY(SELECT json_object_keys(x.definition -> 'variants')),
       CASE WHEN p.phase = x.phase THEN coalesce(x.phase_started_at, x.created_at) ELSE x.created_at END,
       CASE WHEN p.phase < x.phase THEN coalesce(x.phase_started_at, x.updated_at)
            WHEN x.state = 'running' THEN NULL
            ELSE x.updated_at END
FROM experiments x, generate_series(1, x.phase) AS p(phase)
WHERE x.phase >= 1 AND json_typeof(x.definition -> 'variants') = 'object';

-- Exposures refused, per day, experiment (one that is defined) and code, for the experiment's results.
CREATE TABLE exposure_rejections (
    day        date NOT NULL,
    experiment text NOT NULL,
    code       text NOT NULL,
    count      bigint NOT NULL CHECK (count >= 0),
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (day, experiment, code)
);
