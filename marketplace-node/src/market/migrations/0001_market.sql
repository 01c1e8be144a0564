CREATE TABLE IF NOT EXISTS market_bounties (
    id TEXT PRIMARY KEY,
    poster TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    bid_close_at BIGINT NOT NULL,
    winner TEXT,
    ranking TEXT,
    cfp_group TEXT,
    work_group TEXT,
    cursor BIGINT NOT NULL DEFAULT 0,
    verdict TEXT,
    awarded_at BIGINT,
    note TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS market_bounties_state ON market_bounties (state);
CREATE TABLE IF NOT EXISTS market_bids (
    bounty_id TEXT NOT NULL,
    bidder TEXT NOT NULL,
    bid TEXT NOT NULL,
    eta_secs BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (bounty_id, bidder)
);
CREATE TABLE IF NOT EXISTS market_log (
    bounty_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS market_log_bounty ON market_log (bounty_id);
