CREATE TABLE IF NOT EXISTS market_entries (
    bounty_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    result TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (bounty_id, agent)
);
