-- Reef IoA schema v1. Must stay valid on both SQLite and Postgres.
CREATE TABLE IF NOT EXISTS ioa_agents (
    address TEXT PRIMARY KEY,
    card TEXT NOT NULL,
    registered_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ioa_presence (
    address TEXT NOT NULL,
    node_id TEXT NOT NULL,
    conns BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (address, node_id)
);
CREATE TABLE IF NOT EXISTS ioa_groups (
    group_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    creator TEXT NOT NULL,
    parent_group_id TEXT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ioa_members (
    group_id TEXT NOT NULL,
    address TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, address)
);
CREATE INDEX IF NOT EXISTS ioa_members_by_address ON ioa_members (address);
CREATE TABLE IF NOT EXISTS ioa_messages (
    group_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    msg_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    frame TEXT NOT NULL,
    PRIMARY KEY (group_id, seq),
    UNIQUE (group_id, msg_id)
);
