-- Reef market schema v7: when a bounty's task input and result were deleted (its retention
-- passed after it ended; docs/earning.md, "Data-usage terms"). NULL: still stored.
ALTER TABLE market_bounties ADD COLUMN erased_at BIGINT;
