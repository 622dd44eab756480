-- PLACEHOLDER on branch `watcher` only: migration numbers have no gaps, and 0010 belongs to branch
-- `webhooks` (0010_webhooks.sql). When merging, take the webhooks branch's file and drop this one.
SELECT 1;
