-- PLACEHOLDER on branch `watcher` only: migration numbers have no gaps, and 0011 belongs to branch
-- `schedules` (0011_schedules.sql). When merging, take the schedules branch's file and drop this one.
SELECT 1;
