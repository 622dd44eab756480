-- The looks of issue 27's planned-horizon design: each time the results of an experiment phase with a
-- planned reach are read, their information fraction (units so far / planned units) is a look, and the
-- boundaries of every later look are computed from the looks taken (stats.planned). A look within 0.1%
-- of the plan of one already stored is the same look; at most 500 are kept per phase (flagd.results.looks).
CREATE TABLE sequential_looks (
    experiment text NOT NULL,
    phase      integer NOT NULL CHECK (phase >= 1),
    fraction   double precision NOT NULL CHECK (fraction > 0 AND fraction <= 1),
    boundary   double precision NOT NULL,
    taken_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment, phase, fraction)
);
