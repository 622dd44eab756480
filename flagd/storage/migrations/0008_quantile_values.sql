-- Quantile metrics (issue 23): an event-level quantile needs each unit's values, not only their count
-- and sum. A roll-up of a "values" source (its key says so) keeps, per unit, the values of its events
-- after exposure, sorted ascending (NULL values left out): exact, 8 bytes per event, and read with
-- width_bucket's binary search for the count at or below a quantile. Other sources leave it NULL.
ALTER TABLE results_unit_values ADD COLUMN post_values float8[];
