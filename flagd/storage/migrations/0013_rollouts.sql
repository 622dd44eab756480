-- PLACEHOLDER on branch `watcher` only: migration numbers have no gaps, and 0013 belongs to branch
-- `rollouts` (0013_rollouts.sql). When merging, take the rollouts branch's file and drop this one.
SELECT 1;
