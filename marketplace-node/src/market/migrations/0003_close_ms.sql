-- The exact end of a bid window in unix milliseconds (0: the whole second in bid_close_at).
ALTER TABLE market_bounties ADD COLUMN bid_close_ms BIGINT NOT NULL DEFAULT 0;
