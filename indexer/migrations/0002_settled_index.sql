-- Settlements by block: a reputation book brought up to date reads the bounties settled since
-- its last block (`Store::settled_bounties_between`) without scanning every bounty.
CREATE INDEX IF NOT EXISTS idx_bounties_settled ON idx_bounties (settled_block);
