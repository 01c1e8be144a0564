//! The indexer's error type.

/// Errors of the indexer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The RPC endpoint failed, timed out or answered something unusable (after retries).
    #[error("RPC {what} failed: {message}")]
    Rpc {
        /// The call that failed (e.g. `eth_getLogs 100..200`).
        what: String,
        /// The last error seen.
        message: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database holds something this indexer cannot read (corrupt or foreign data).
    #[error("database holds invalid data: {0}")]
    Corrupt(String),
    /// Configuration is unusable (wrong chain, bad URL, missing deployment).
    #[error("configuration: {0}")]
    Config(String),
    /// A reorganisation went deeper than the persisted block window.
    #[error(
        "reorg deeper than the {window}-block window below block {tip}; reindex from scratch (delete the database)"
    )]
    DeepReorg {
        /// Blocks kept for reorg detection.
        window: u64,
        /// Indexed tip when the reorg was seen.
        tip: u64,
    },
    /// The reputation engine rejected an event.
    #[error(transparent)]
    Reputation(#[from] reef_reputation::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
