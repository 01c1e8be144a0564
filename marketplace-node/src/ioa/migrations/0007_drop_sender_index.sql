-- Reef IoA schema v7: no index on (group_id, sender). Every stored message wrote a leaf of it,
-- and with many senders those leaves are scattered: on SQLite each is a whole page in the WAL
-- at every group commit (and again at the checkpoint). Its only reader was the erasure of a
-- member's own messages (`DELETE /v1/groups/{id}/messages/mine`), which now reads the group's
-- rows through the primary key (group_id, seq): a rare request pays for a scan of one group
-- instead of every message paying for a page. Measured with `make bench-ioa` at 25 % of
-- saturation: see the commit that added this file. Must stay valid on both SQLite and Postgres.
DROP INDEX IF EXISTS ioa_messages_sender;
