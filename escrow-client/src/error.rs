//! The crate's error type. Every variant says what went wrong and, where there is one, what to do.

use std::{fmt, path::PathBuf, time::Duration};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    sol_types::SolInterface,
    transports::{RpcError, TransportErrorKind},
};

use crate::bindings::{
    channel::PaymentChannel::PaymentChannelErrors, escrow::BountyEscrow::BountyEscrowErrors,
    panel::EvaluatorPanel::EvaluatorPanelErrors, registry::AgentRegistry::AgentRegistryErrors,
    reputation::ReputationRegistry::ReputationRegistryErrors,
    token::ReefTestToken::ReefTestTokenErrors,
    validation::ValidationRegistry::ValidationRegistryErrors,
};

/// Result alias with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Reef's contracts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The RPC endpoint could not be reached or failed, after retries.
    #[error("RPC {url} failed: {source}. Is the node running? (local chain: `reef devnet status`)")]
    Rpc {
        /// Endpoint that failed.
        url: String,
        /// Underlying transport error.
        #[source]
        source: RpcError<TransportErrorKind>,
    },
    /// The node answered a JSON-RPC error that is not a revert.
    #[error("RPC {url} rejected {what}: {message}")]
    RpcRejected {
        /// Endpoint.
        url: String,
        /// What was being done.
        what: String,
        /// Node's message.
        message: String,
    },
    /// The endpoint serves a different chain than the deployment file names.
    #[error(
        "wrong chain: expected chain id {expected}, the RPC serves {actual}. Point --rpc-url at the right node or use that chain's deployments file"
    )]
    WrongChain {
        /// Chain id of the deployment.
        expected: u64,
        /// Chain id the RPC reported.
        actual: u64,
    },
    /// A contract call reverted with a decoded reason.
    #[error("{action} reverted: {revert}{}", revert.hint().map(|h| format!(". {h}")).unwrap_or_default())]
    Revert {
        /// The operation (e.g. `award`).
        action: String,
        /// The decoded revert.
        revert: Revert,
    },
    /// The sender cannot pay for the transaction (value + gas).
    #[error(
        "{account} has too little ETH for {action} (value + gas): {message}. Fund it (local chain: `reef devnet up` seeds dev accounts)"
    )]
    InsufficientFunds {
        /// Account that pays.
        account: Address,
        /// Operation attempted.
        action: String,
        /// Node's message.
        message: String,
    },
    /// Token balance too low for an escrow deposit.
    #[error(
        "{account} holds {have} of token {token} but {need} is needed. Acquire more tokens first"
    )]
    InsufficientBalance {
        /// Token (zero address = ETH).
        token: Address,
        /// Account.
        account: Address,
        /// Current balance.
        have: U256,
        /// Required amount.
        need: U256,
    },
    /// Token allowance too low for an escrow deposit.
    #[error(
        "{account} allows {spender} to spend {have} of token {token} but {need} is needed. Approve first (`reef bounty post --approve`)"
    )]
    InsufficientAllowance {
        /// Token.
        token: Address,
        /// Owner.
        account: Address,
        /// Spender (the escrow or channel contract).
        spender: Address,
        /// Current allowance.
        have: U256,
        /// Required amount.
        need: U256,
    },
    /// A transaction was mined but reverted (no reason could be recovered).
    #[error("transaction {hash} for {action} was mined but reverted")]
    TxReverted {
        /// Operation.
        action: String,
        /// Transaction hash.
        hash: B256,
    },
    /// A transaction was not confirmed in time.
    #[error(
        "transaction {hash} for {action} not confirmed after {waited:?}; it may still be mined — check it before retrying"
    )]
    Timeout {
        /// Operation.
        action: String,
        /// Transaction hash.
        hash: B256,
        /// How long we waited.
        waited: Duration,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(#[from] alloy::signers::Error),
    /// A signature does not recover to the expected signer.
    #[error("signature check failed: recovered {recovered}, expected {expected}")]
    BadSignature {
        /// Expected signer.
        expected: Address,
        /// Address the signature recovers to.
        recovered: Address,
    },
    /// A deployment file is missing or malformed.
    #[error("deployment file {path}: {reason}")]
    Deployment {
        /// File path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A required executable is missing.
    #[error("`{tool}` not found: {hint}")]
    ToolMissing {
        /// Tool name.
        tool: String,
        /// How to get it.
        hint: String,
    },
    /// The local development chain failed.
    #[error("devnet: {0}")]
    Devnet(String),
    /// Data returned by the chain could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was decoded.
        what: String,
        /// Decoder message.
        reason: String,
    },
    /// The caller passed an invalid argument.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A bounty could not be found on-chain.
    #[error("bounty {0} not found on this chain (no BountyPosted event)")]
    BountyNotFound(U256),
}

/// A revert decoded against every Reef contract's custom errors.
#[derive(Debug, Clone)]
pub enum Revert {
    /// BountyEscrow custom error.
    Escrow(BountyEscrowErrors),
    /// PaymentChannel custom error.
    Channel(PaymentChannelErrors),
    /// EvaluatorPanel custom error.
    Panel(EvaluatorPanelErrors),
    /// AgentRegistry custom error.
    Registry(AgentRegistryErrors),
    /// ReputationRegistry custom error.
    Reputation(ReputationRegistryErrors),
    /// ValidationRegistry custom error.
    Validation(ValidationRegistryErrors),
    /// ERC-20 (OpenZeppelin IERC20Errors) error from a token.
    Token(ReefTestTokenErrors),
    /// `Error(string)` revert reason.
    Message(String),
    /// Revert data that matches no known error.
    Unknown(Bytes),
}

impl Revert {
    /// Decodes raw revert data.
    pub fn decode(data: &[u8]) -> Self {
        if data.len() < 4 {
            return Self::Unknown(Bytes::copy_from_slice(data));
        }
        if let Ok(e) = BountyEscrowErrors::abi_decode(data) {
            return Self::Escrow(e);
        }
        if let Ok(e) = PaymentChannelErrors::abi_decode(data) {
            return Self::Channel(e);
        }
        if let Ok(e) = EvaluatorPanelErrors::abi_decode(data) {
            return Self::Panel(e);
        }
        if let Ok(e) = AgentRegistryErrors::abi_decode(data) {
            return Self::Registry(e);
        }
        if let Ok(e) = ReputationRegistryErrors::abi_decode(data) {
            return Self::Reputation(e);
        }
        if let Ok(e) = ValidationRegistryErrors::abi_decode(data) {
            return Self::Validation(e);
        }
        if let Ok(e) = ReefTestTokenErrors::abi_decode(data) {
            return Self::Token(e);
        }
        if let Ok(r) = alloy::sol_types::decode_revert_reason(data).ok_or(()) {
            return Self::Message(r);
        }
        Self::Unknown(Bytes::copy_from_slice(data))
    }

    /// The custom error's name (e.g. `BountyMismatch`), or a short label.
    pub fn name(&self) -> String {
        let debug = match self {
            Self::Escrow(e) => format!("{e:?}"),
            Self::Channel(e) => format!("{e:?}"),
            Self::Panel(e) => format!("{e:?}"),
            Self::Registry(e) => format!("{e:?}"),
            Self::Reputation(e) => format!("{e:?}"),
            Self::Validation(e) => format!("{e:?}"),
            Self::Token(e) => format!("{e:?}"),
            Self::Message(_) => return "Error".into(),
            Self::Unknown(_) => return "Unknown".into(),
        };
        debug.split(['(', ' ', '{']).next().unwrap_or_default().to_string()
    }

    /// What the user can do about it, for the errors that have an obvious remedy.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self.name().as_str() {
            "BountyMismatch" => {
                "the bounty record passed does not match the chain; re-read it (`reef bounty show`)"
            }
            "BountyExists" => "a bounty with this poster and salt exists already; use a new salt",
            "InvalidStatus" | "WrongStatus" => {
                "the bounty is not in a state that allows this; check `reef bounty show`"
            }
            "InvalidSignature" | "BadSignature" => {
                "the signature does not match the signer, chain id or contract; re-sign for this deployment"
            }
            "NonceUsed" => "this bid was already used or cancelled; ask the bidder for a fresh bid",
            "BidExpired" => "the bid's deadline has passed; ask the bidder for a fresh bid",
            "InvalidDeadline" => "the deadline must be in the future (chain time)",
            "TooEarly" => {
                "this step is not allowed yet (deadline or review/challenge window still running)"
            }
            "TooLate" => "the window for this step has closed",
            "BidMismatch" => "the bid was signed for another bounty",
            "BidTooHigh" => {
                "the bid exceeds the bounty's escrowed amount (or, in an evaluator's take-over, the current price)"
            }
            "BondTooLow" => "the bid must bond at least the escrow's minimum stake (minBond)",
            "BidderIsEvaluator" => "the evaluator cannot take over the job itself",
            "InvalidBond" => "the stake gate's minimum bond must fit in 80 bits",
            "FeeMismatch" => "the platform fee changed; rebuild the terms and retry",
            "NoArbiter" => "this bounty has no arbiter, so it cannot be disputed",
            "InvalidValue" => "send exactly the bounty amount in ETH (or none for ERC-20 bounties)",
            "ChallengePeriodActive" => "wait until the channel's challenge period has passed",
            "InsufficientStake" => {
                "the bidder's stake in the AgentRegistry must cover the bond its bid signs (and the escrow's minimum)"
            }
            "FeeOnTransferToken" => "this token takes a fee on transfer; use a standard ERC-20",
            "ERC20InsufficientAllowance" => "approve the escrow for the amount first",
            "ERC20InsufficientBalance" => "the account holds too few tokens",
            "SafeERC20FailedOperation" => {
                "the token transfer failed: no contract at that address (a pledge token is posted with postFromReward, `reef bounty post --from-reward`) or a token that returned false"
            }
            "NotPoster" | "NotProvider" | "NotEvaluator" | "NotArbiter" | "Unauthorized" => {
                "send the transaction from the account that holds that role"
            }
            "NotPosterOrEvaluator" => {
                "only the poster or the evaluator may take an overdue job back"
            }
            "SameProvider" => {
                "the replacement bid is from the late provider itself; pick another bid"
            }
            "PanelExists" | "BountyAlreadyPosted" => {
                "an evaluator panel must be opened once, before the bounty is posted; use a new salt"
            }
            "InsufficientSignatures" => {
                "fewer panel members signed than the quorum; wait for more evaluations"
            }
            "SignersNotSorted" => {
                "sort the member signatures by signer address, without duplicates"
            }
            "NotTerminal" => "panel fees are settled once the bounty has reached a final state",
            "RequestExists" => {
                "this validation request exists already (a bounty's verdict is recorded once)"
            }
            "NoVerdict" => {
                "only a Completed (accepted) or Refunded (rejection final) bounty has a verdict to record"
            }
            "NotProviderAgent" => {
                "pick the agent id whose owner or agentWallet was the bounty's provider (`reef agents show`)"
            }
            "SelfValidation" => "a bounty whose evaluator was its own provider validates nothing",
            "NotAgentOperator" => {
                "only the agent's owner or an approved operator may ask for validation"
            }
            "NotValidator" => "only the validator named in the request may answer it",
            "ResponseOutOfRange" => "a validation response is a score from 0 to 100",
            "NothingToRedeem" => "this voucher (or a larger one) was already redeemed",
            "NotPledgeToken" => {
                "a sub-bounty funded from a reward must use the provider's pledge token for that parent (`pledgeTokenOf`)"
            }
            "PledgeTooHigh" => {
                "the sub-bounties would pledge more than the provider's net pay on the parent; lower the reward"
            }
            "PledgeVoid" => {
                "the parent bounty ended without paying the provider that pledged: these credits are worth nothing"
            }
            "PledgePending" => {
                "pledge credits redeem once the parent bounty is settled; try again then"
            }
            "ExceedsDeposit" => {
                "the voucher exceeds the channel's deposit; ask the payer to top up"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Variant(Inner { .. })` → `Inner { .. }` (unit errors print as their bare name).
        fn inner(debug: String) -> String {
            match debug.split_once('(') {
                Some((_, rest)) => rest.strip_suffix(')').unwrap_or(rest).to_string(),
                None => debug,
            }
        }
        match self {
            Self::Escrow(e) => write!(f, "BountyEscrow.{}", inner(format!("{e:?}"))),
            Self::Channel(e) => write!(f, "PaymentChannel.{}", inner(format!("{e:?}"))),
            Self::Panel(e) => write!(f, "EvaluatorPanel.{}", inner(format!("{e:?}"))),
            Self::Registry(e) => write!(f, "AgentRegistry.{}", inner(format!("{e:?}"))),
            Self::Reputation(e) => write!(f, "ReputationRegistry.{}", inner(format!("{e:?}"))),
            Self::Validation(e) => write!(f, "ValidationRegistry.{}", inner(format!("{e:?}"))),
            Self::Token(e) => write!(f, "token.{}", inner(format!("{e:?}"))),
            Self::Message(m) => write!(f, "\"{m}\""),
            Self::Unknown(d) if d.is_empty() => write!(f, "no reason given"),
            Self::Unknown(d) => write!(f, "unknown error data {d}"),
        }
    }
}

impl Error {
    /// The decoded revert, if this error is one.
    pub fn revert(&self) -> Option<&Revert> {
        match self {
            Self::Revert { revert, .. } => Some(revert),
            _ => None,
        }
    }

    /// Name of the decoded custom error, if this error is a revert.
    pub fn revert_name(&self) -> Option<String> {
        self.revert().map(Revert::name)
    }
}
