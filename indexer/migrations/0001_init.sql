-- Reef indexer schema. Every statement runs unchanged on SQLite and Postgres.
-- Raw events are append-only, keyed by their position in the chain; everything else is derived
-- from them and can be recomputed.

CREATE TABLE IF NOT EXISTS idx_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Recent canonical blocks (the reorg window): number, hash, parent hash.
CREATE TABLE IF NOT EXISTS idx_blocks (
    number BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    parent_hash TEXT NOT NULL,
    timestamp BIGINT NOT NULL
);

-- Every decoded log of a watched contract or token. Amounts are decimal strings (uint256).
CREATE TABLE IF NOT EXISTS idx_events (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    block_time BIGINT NOT NULL,
    contract TEXT NOT NULL,
    kind TEXT NOT NULL,
    ref_id TEXT,
    actor TEXT,
    counterparty TEXT,
    amount TEXT,
    amount2 TEXT,
    extra TEXT,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS idx_events_kind ON idx_events (kind, block_number);
CREATE INDEX IF NOT EXISTS idx_events_ref ON idx_events (ref_id);
CREATE INDEX IF NOT EXISTS idx_events_actor ON idx_events (actor);

-- Derived: one row per bounty, folded from its events.
CREATE TABLE IF NOT EXISTS idx_bounties (
    id TEXT PRIMARY KEY,
    poster TEXT,
    token TEXT,
    amount TEXT,
    price TEXT,
    provider TEXT,
    deadline BIGINT,
    status TEXT NOT NULL,
    funded BIGINT NOT NULL,
    posted_block BIGINT,
    submitted_at BIGINT,
    settled_at BIGINT,
    settled_block BIGINT,
    paid TEXT,
    provider_bps BIGINT,
    last_block BIGINT NOT NULL,
    last_log BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_bounties_provider ON idx_bounties (provider);
CREATE INDEX IF NOT EXISTS idx_bounties_last ON idx_bounties (last_block);

-- Derived: bonded stake per account.
CREATE TABLE IF NOT EXISTS idx_stakes (
    account TEXT PRIMARY KEY,
    bonded TEXT NOT NULL,
    slashed TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_block BIGINT NOT NULL,
    last_log BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_stakes_last ON idx_stakes (last_block);

-- Derived: the first inbound transfer of a watched token to each account (its funding source).
CREATE TABLE IF NOT EXISTS idx_funding (
    account TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    first_from TEXT NOT NULL,
    amount TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_funding_block ON idx_funding (block_number);

-- Derived: ERC-20 tokens seen in BountyPosted whose transfers are indexed.
CREATE TABLE IF NOT EXISTS idx_tokens (
    token TEXT PRIMARY KEY,
    first_block BIGINT NOT NULL
);
