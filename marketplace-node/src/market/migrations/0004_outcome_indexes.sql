-- Ranking a window reads the verified outcomes of its bidders only (not every past bounty),
-- and the few take-over misses by event instead of scanning the whole progress log.
CREATE INDEX IF NOT EXISTS market_bounties_winner ON market_bounties (winner);
CREATE INDEX IF NOT EXISTS market_log_event ON market_log (event);
