-- A window's ranking (every signed bid: about 7 KB for ten bids) gets a row of its own, written
-- when the window closes. Updating a bounty's row (phase, groups, cursor, verdict) no longer
-- rewrites it, and reading one no longer parses it.
CREATE TABLE IF NOT EXISTS market_rankings (
    bounty_id TEXT PRIMARY KEY,
    ranking TEXT NOT NULL
);
INSERT INTO market_rankings (bounty_id, ranking)
    SELECT id, ranking FROM market_bounties WHERE ranking IS NOT NULL;
-- When the winning bid expires (unix seconds; 0: unknown, read it from the ranking).
ALTER TABLE market_bounties ADD COLUMN award_expiry BIGINT NOT NULL DEFAULT 0;
ALTER TABLE market_bounties DROP COLUMN ranking;
