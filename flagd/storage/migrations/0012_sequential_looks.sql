-- PLACEHOLDER on branch `watcher` only: migration numbers have no gaps, and 0012 belongs to branch
-- `planned` (0012_sequential_looks.sql). When merging, take the planned branch's file and drop this one.
SELECT 1;
