-- Incremental catch-ups (issue 26): a unit with new events only takes them as an increment of its row,
-- instead of every event of the unit read again (a probe per unit into every daily partition).
--
-- post_last_at: when the event whose value is post_last happened, so that a later event's value replaces
-- it. A row stored before this column is recomputed whole the next time it is touched.
ALTER TABLE results_unit_values ADD COLUMN post_last_at timestamptz;
-- increments: every row of the roll-up holds exactly the events stored before caught_up_at (false for a
-- roll-up caught up before catch-ups were bounded, until its next catch-up recomputes its touched units).
ALTER TABLE results_rollups ADD COLUMN increments boolean NOT NULL DEFAULT false;
