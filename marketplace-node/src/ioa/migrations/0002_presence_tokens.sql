-- Reef IoA schema v2: presence heartbeats (per-node refresh) and durable REST bearer tokens.
-- Must stay valid on both SQLite and Postgres.
CREATE INDEX IF NOT EXISTS ioa_presence_by_node ON ioa_presence (node_id);
CREATE TABLE IF NOT EXISTS ioa_tokens (
    token_hash TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    node_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ioa_tokens_by_expiry ON ioa_tokens (expires_at);
