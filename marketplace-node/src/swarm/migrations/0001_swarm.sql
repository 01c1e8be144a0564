-- Reef swarm auctions v1: the cumulative voucher amount the node last accepted on each payment
-- channel, so that a replayed or stale voucher is refused across restarts (the on-chain
-- `redeemed` is only a floor: agents redeem in batches, later). Amounts are decimal text.
-- Must stay valid on both SQLite and Postgres.
CREATE TABLE IF NOT EXISTS swarm_channels (
    channel_id TEXT PRIMARY KEY,
    payer TEXT NOT NULL,
    payee TEXT NOT NULL,
    cumulative TEXT NOT NULL,
    payments BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
