-- Reef IoA schema v4: privacy lifecycle. A group may have a retention (seconds, set by its
-- creator); the node deletes its messages older than that and never replays them. `ts` is
-- when a message was stored (unix ms); rows stored before this migration have 0 and so count
-- as older than any horizon (deleted at the first sweep of a group with a retention).
-- Must stay valid on both SQLite and Postgres.
ALTER TABLE ioa_groups ADD COLUMN retention_secs BIGINT;
ALTER TABLE ioa_messages ADD COLUMN ts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS ioa_messages_ts ON ioa_messages (ts);
CREATE INDEX IF NOT EXISTS ioa_messages_sender ON ioa_messages (group_id, sender);
