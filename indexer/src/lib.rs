//! Reef's chain indexer: follows the deployed contracts (escrow, payment channels, agent and
//! reputation registries, and the ERC-20 tokens bounties are paid in) on any EVM JSON-RPC
//! endpoint and turns their logs into SQL tables, on SQLite (default) or Postgres with the same
//! migrations.
//!
//! Raw events are append-only rows keyed by (block, log index), so inserting the same log twice
//! is a no-op. Derived state (bounty status, stake, funding sources) is a fold over those events.
//! The checkpoint and the last blocks' hashes are persisted in the same transaction as the
//! events they cover: a restart resumes without gaps or duplicates, and a reorg is undone by
//! walking back to the common ancestor and deleting everything after it. Data is exposed with a
//! confirmation depth so money and reputation only act on blocks deep enough.
//!
//! This crate does not score agents (`reef-reputation` does; [`reputation::load_book`] feeds it)
//! and does not send transactions.

pub mod chains;
pub mod decode;
pub mod derived;
mod error;
pub mod indexer;
pub mod migrate;
pub mod reputation;
pub mod source;
pub mod sqlite;
pub mod store;

pub use chains::{ChainProfile, profile};
pub use decode::{Contracts, EventRow};
pub use error::{Error, Result};
pub use indexer::{Indexer, IndexerConfig, SyncReport};
pub use source::{BlockRef, ChainSource, RpcSource};
pub use store::Store;
