//! Metered micropayments: agents priced per call, paid with payment-channel vouchers.
//!
//! The payer opens (or reuses) a `PaymentChannel` to the agent, creates an IoA group with it
//! and sends one `metered_call` message per call, carrying a cumulative EIP-712 voucher worth
//! the previous one plus the price ([`Payer`]). The agent ([`Verifier`]) checks each voucher
//! against the signature, itself, the channel on-chain and its own durable record ([`Store`])
//! *before* serving, commits it, runs its program and answers `metered_result` (or
//! `metered_error`, serving nothing). Vouchers are redeemed in one `redeemBatch` transaction
//! ([`redeem`]), on demand or automatically past a threshold. Protocol: `docs/metered.md`.

pub mod payer;
pub mod protocol;
pub mod redeem;
pub mod store;
pub mod verifier;

pub use payer::{Payer, PayerConfig};
pub use protocol::{ErrorCode, MeteredCall, MeteredErrorMsg, MeteredResult, Refusal};
pub use redeem::{RedeemReport, redeem};
pub use store::Store;
pub use verifier::{Decision, Verifier, VerifierConfig};

/// Errors of the metered module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Chain call failed.
    #[error(transparent)]
    Chain(Box<escrow_client::Error>),
    /// IoA node call failed.
    #[error("node: {0}")]
    Node(#[from] reef_agent_sdk::Error),
    /// The state database failed.
    #[error("state store: {0}")]
    Store(String),
    /// The agent refused the call (nothing was served or charged).
    #[error("refused by the agent: {code}: {message}")]
    Refused {
        /// Reason code.
        code: ErrorCode,
        /// Agent's explanation.
        message: String,
    },
    /// No answer from the agent in time (after retries).
    #[error("no answer from agent {0} for call {1}")]
    Timeout(alloy::primitives::Address, String),
    /// Invalid argument or state.
    #[error("{0}")]
    Invalid(String),
}

impl From<escrow_client::Error> for Error {
    fn from(e: escrow_client::Error) -> Self {
        Self::Chain(Box::new(e))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Store(e.to_string())
    }
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Default state directory of an agent (`.reef/metered-<address>`) or payer (`.reef/pay-<address>`).
pub fn default_state_dir(prefix: &str, who: alloy::primitives::Address) -> std::path::PathBuf {
    std::path::PathBuf::from(".reef").join(format!("{prefix}-{who:#x}"))
}
