//! Bounty escrow operations: post/fund/award/submit/attest/release/reject/refund/dispute/resolve,
//! bid and attestation signing, and rebuilding a bounty's record from its events.
//!
//! The escrow stores one commitment word per bounty; every call passes the current record
//! ([`Bounty`]). [`ReefClient::bounty`] rebuilds that record from the chain's logs and checks it
//! against the commitment, so callers never have to keep it themselves.

use alloy::{
    primitives::{Address, B256, Bytes, FixedBytes, U256, keccak256},
    rpc::types::Filter,
    sol_types::{SolCall, SolEvent, SolValue},
};
use serde::Serialize;

use crate::{
    Error, ReefClient, Result, TxOutcome,
    bindings::escrow::{
        BountyEscrow,
        IBountyTypes::{Attestation, Bid, Bounty},
    },
    signing::{self, verdict},
};

/// Lifecycle status of a bounty (mirrors `IBountyTypes.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Status {
    /// Never created.
    None = 0,
    /// Posted, not funded.
    Open,
    /// Funded, bidding.
    Funded,
    /// A signed bid was accepted.
    Awarded,
    /// A result was submitted.
    Submitted,
    /// Terminal: the provider was paid.
    Completed,
    /// Rejected; refund after the challenge window unless disputed.
    Rejected,
    /// Terminal: refunded after a deadline or a silent evaluator.
    Expired,
    /// Escalated to the arbiter.
    Disputed,
    /// Terminal: the arbiter ruled a split.
    Resolved,
    /// Terminal: the poster withdrew before an award.
    Cancelled,
    /// Terminal: rejection final, poster refunded.
    Refunded,
}

impl Status {
    /// Converts the on-chain enum value.
    pub fn from_u8(v: u8) -> Result<Self> {
        use Status::*;
        const ALL: [Status; 12] = [
            None, Open, Funded, Awarded, Submitted, Completed, Rejected, Expired, Disputed,
            Resolved, Cancelled, Refunded,
        ];
        ALL.get(v as usize).copied().ok_or_else(|| Error::Decode {
            what: "bounty status".into(),
            reason: format!("unknown value {v}"),
        })
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Open => "open",
            Self::Funded => "funded",
            Self::Awarded => "awarded",
            Self::Submitted => "submitted",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Disputed => "disputed",
            Self::Resolved => "resolved",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    /// Whether no further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Expired | Self::Resolved | Self::Cancelled | Self::Refunded
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `IBountyTypes.Mode.Auction`.
pub const MODE_AUCTION: u8 = 0;
/// `IBountyTypes.Mode.Contest`.
pub const MODE_CONTEST: u8 = 1;

/// Terms for a new auction bounty (the record's fields that the poster chooses).
#[derive(Debug, Clone)]
pub struct NewBounty {
    /// Reward token (`Address::ZERO` = ETH).
    pub token: Address,
    /// Budget escrowed.
    pub amount: u128,
    /// Evaluator (`None` = the poster evaluates, with optimistic auto-accept).
    pub evaluator: Option<Address>,
    /// Arbiter for disputes (`Address::ZERO` = none).
    pub arbiter: Address,
    /// Submission deadline (unix seconds).
    pub deadline: u64,
    /// Review window after submission (seconds).
    pub review_window: u32,
    /// Challenge window after a rejection (seconds).
    pub challenge_window: u32,
    /// The task description; its keccak256 goes on-chain as `specHash`.
    pub description: String,
    /// Contest mode with up to this many winners (`None` = auction).
    pub contest_winners: Option<u8>,
}

/// A bounty as rebuilt from the chain.
#[derive(Debug, Clone)]
pub struct BountyState {
    /// Bounty id.
    pub id: U256,
    /// Current record (matches the on-chain commitment).
    pub record: Bounty,
    /// Current status.
    pub status: Status,
    /// Timestamp of the last transition.
    pub stamp: u64,
    /// The bounty's events, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// One event in a bounty's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Event name.
    pub event: String,
    /// Block number.
    pub block: u64,
    /// Transaction hash.
    pub tx: Option<B256>,
}

/// Replays one escrow log of a bounty into its record as rebuilt so far: `BountyPosted` starts
/// the record, awards set provider and price (the last award wins after a take-over),
/// `ResultSubmitted` and `BountyAttested` set the result hash; every event is added to
/// `history`. Logs must come oldest first; logs before `BountyPosted` only go to `history`.
pub fn apply_log(
    record: &mut Option<Bounty>,
    history: &mut Vec<HistoryEntry>,
    log: &alloy::rpc::types::Log,
) {
    let Some(topic0) = log.topic0().copied() else { return };
    let data = log.data();
    if topic0 == BountyEscrow::BountyPosted::SIGNATURE_HASH {
        if let Ok(ev) = BountyEscrow::BountyPosted::decode_log_data(data) {
            *record = Some(ev.record);
        }
    } else if let Some(r) = record.as_mut() {
        if topic0 == BountyEscrow::BountyAwarded::SIGNATURE_HASH {
            if let Ok(ev) = BountyEscrow::BountyAwarded::decode_log_data(data) {
                r.provider = ev.provider;
                r.price = ev.price.to::<u128>();
            }
        } else if topic0 == BountyEscrow::ResultSubmitted::SIGNATURE_HASH {
            if let Ok(ev) = BountyEscrow::ResultSubmitted::decode_log_data(data) {
                r.resultHash = ev.resultHash;
            }
        } else if topic0 == BountyEscrow::BountyAttested::SIGNATURE_HASH
            && let Ok(ev) = BountyEscrow::BountyAttested::decode_log_data(data)
        {
            r.resultHash = ev.resultHash;
        }
    }
    history.push(HistoryEntry {
        event: event_name(topic0).to_string(),
        block: log.block_number.unwrap_or_default(),
        tx: log.transaction_hash,
    });
}

/// What one escrow event does to its bounty's `statusOf(id)` answer, so that a follower of the
/// logs can keep the status without reading it again after every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusEffect {
    /// `statusOf` answers this (status, stamp) right after the event.
    Set(Status, u64),
    /// The status is unchanged (a contest entry, a winner's payout line, a failed slash).
    Keep,
    /// Not known from this event alone: a step that a later event of the same call completes
    /// (`AwardRevoked`, `BountyAttested`), an event this client does not know, or a stamp that
    /// is the block's time when the log does not carry `blockTimestamp`. Read the status.
    Unknown,
}

/// The effect of one escrow log on its bounty's status and stamp, as the contract writes them:
/// the stamp is the block's time, except for an award, whose stamp is its delivery due time
/// (`dueBy`, in the event). Every call that changes a status emits an event whose effect is
/// [`StatusEffect::Set`] last, so folding a call's logs in order ends on the stored answer.
pub fn status_effect(log: &alloy::rpc::types::Log) -> StatusEffect {
    use BountyEscrow as E;
    let Some(topic0) = log.topic0().copied() else { return StatusEffect::Unknown };
    let data = log.data();
    let at =
        |s: Status| log.block_timestamp.map_or(StatusEffect::Unknown, |t| StatusEffect::Set(s, t));
    match topic0 {
        t if t == E::BountyPosted::SIGNATURE_HASH => match E::BountyPosted::decode_log_data(data) {
            Ok(ev) => at(if ev.funded { Status::Funded } else { Status::Open }),
            Err(_) => StatusEffect::Unknown,
        },
        t if t == E::BountyFunded::SIGNATURE_HASH => at(Status::Funded),
        t if t == E::BountyAwarded::SIGNATURE_HASH => match E::BountyAwarded::decode_log_data(data)
        {
            Ok(ev) => StatusEffect::Set(Status::Awarded, ev.dueBy),
            Err(_) => StatusEffect::Unknown,
        },
        t if t == E::ResultSubmitted::SIGNATURE_HASH => at(Status::Submitted),
        t if t == E::BountyCompleted::SIGNATURE_HASH => at(Status::Completed),
        t if t == E::BountyRejected::SIGNATURE_HASH => at(Status::Rejected),
        t if t == E::BountyRefunded::SIGNATURE_HASH => {
            match E::BountyRefunded::decode_log_data(data).map(|ev| Status::from_u8(ev.reason)) {
                Ok(Ok(reason)) => at(reason),
                _ => StatusEffect::Unknown,
            }
        }
        t if t == E::BountyCancelled::SIGNATURE_HASH => at(Status::Cancelled),
        t if t == E::DisputeOpened::SIGNATURE_HASH => at(Status::Disputed),
        t if t == E::DisputeResolved::SIGNATURE_HASH => at(Status::Resolved),
        t if t == E::EntrySubmitted::SIGNATURE_HASH
            || t == E::WinnerPaid::SIGNATURE_HASH
            || t == E::SlashFailed::SIGNATURE_HASH
            || t == E::RewardPledged::SIGNATURE_HASH
            || t == E::PledgeBacked::SIGNATURE_HASH
            || t == E::PledgeRedeemed::SIGNATURE_HASH =>
        {
            StatusEffect::Keep
        }
        _ => StatusEffect::Unknown,
    }
}

/// JSON view of a bounty for `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct BountyJson {
    /// Id (hex).
    pub id: String,
    /// Status name.
    pub status: &'static str,
    /// Poster.
    pub poster: Address,
    /// Token (zero = ETH).
    pub token: Address,
    /// Budget.
    pub amount: String,
    /// Agreed price.
    pub price: String,
    /// Provider (zero until awarded).
    pub provider: Address,
    /// Evaluator.
    pub evaluator: Address,
    /// Arbiter.
    pub arbiter: Address,
    /// Deadline (unix).
    pub deadline: u64,
    /// Mode.
    pub mode: &'static str,
    /// Hash of the description.
    pub spec_hash: B256,
    /// Result hash (zero until submitted).
    pub result_hash: B256,
    /// Last transition time.
    pub stamp: u64,
    /// History.
    pub history: Vec<HistoryEntry>,
}

impl From<&BountyState> for BountyJson {
    fn from(s: &BountyState) -> Self {
        let r = &s.record;
        Self {
            id: format!("{:#066x}", s.id),
            status: s.status.name(),
            poster: r.poster,
            token: r.token,
            amount: r.amount.to_string(),
            price: r.price.to_string(),
            provider: r.provider,
            evaluator: r.evaluator,
            arbiter: r.arbiter,
            deadline: r.deadline,
            mode: if r.mode == MODE_CONTEST { "contest" } else { "auction" },
            spec_hash: r.specHash,
            result_hash: r.resultHash,
            stamp: s.stamp,
            history: s.history.clone(),
        }
    }
}

/// The commitment of a record (`BountyEscrow.hashBounty`): `keccak256(abi.encode(record))`.
/// A bid's `termsHash` is this hash of the record as posted (no provider, price or result).
pub fn terms_hash(record: &Bounty) -> B256 {
    keccak256(record.abi_encode())
}

/// `bid` as a call sends it for bounty `id` with the record as posted `posted`: `bountyId` and
/// `termsHash` zero when they are the ones the escrow derives (it checks the signature over its
/// own id and terms hash), which is 64 bytes of calldata less (about 770 gas). A bid signed for
/// another bounty or other terms is sent as it is, so the escrow reports `BidMismatch`.
pub fn compact_bid(bid: &Bid, id: U256, posted: &Bounty) -> Bid {
    let mut sent = bid.clone();
    if bid.bountyId == id && bid.termsHash == terms_hash(posted) {
        sent.bountyId = U256::ZERO;
        sent.termsHash = B256::ZERO;
    }
    sent
}

/// A bounty record in JSON (what the node and agents exchange; amounts as decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordJson {
    /// Poster.
    pub poster: Address,
    /// Token (zero = ETH).
    pub token: Address,
    /// Budget (decimal string).
    pub amount: String,
    /// Agreed price (decimal string).
    pub price: String,
    /// Provider.
    pub provider: Address,
    /// Evaluator.
    pub evaluator: Address,
    /// Arbiter.
    pub arbiter: Address,
    /// Submission deadline.
    pub deadline: u64,
    /// Review window.
    pub review_window: u32,
    /// Challenge window.
    pub challenge_window: u32,
    /// Fee snapshot.
    pub fee_bps: u16,
    /// 0 auction, 1 contest.
    pub mode: u8,
    /// Contest winners.
    pub max_winners: u8,
    /// keccak256 of the description.
    pub spec_hash: B256,
    /// Result hash.
    pub result_hash: B256,
}

impl From<&Bounty> for RecordJson {
    fn from(b: &Bounty) -> Self {
        Self {
            poster: b.poster,
            token: b.token,
            amount: b.amount.to_string(),
            price: b.price.to_string(),
            provider: b.provider,
            evaluator: b.evaluator,
            arbiter: b.arbiter,
            deadline: b.deadline,
            review_window: b.reviewWindow,
            challenge_window: b.challengeWindow,
            fee_bps: b.feeBps,
            mode: b.mode,
            max_winners: b.maxWinners,
            spec_hash: b.specHash,
            result_hash: b.resultHash,
        }
    }
}

impl TryFrom<&RecordJson> for Bounty {
    type Error = Error;

    fn try_from(r: &RecordJson) -> Result<Self> {
        let num = |what: &str, s: &str| {
            s.parse::<u128>().map_err(|e| Error::InvalidInput(format!("record {what} {s:?}: {e}")))
        };
        Ok(Bounty {
            poster: r.poster,
            token: r.token,
            amount: num("amount", &r.amount)?,
            price: num("price", &r.price)?,
            provider: r.provider,
            evaluator: r.evaluator,
            arbiter: r.arbiter,
            deadline: r.deadline,
            reviewWindow: r.review_window,
            challengeWindow: r.challenge_window,
            feeBps: r.fee_bps,
            mode: r.mode,
            maxWinners: r.max_winners,
            specHash: r.spec_hash,
            resultHash: r.result_hash,
        })
    }
}

/// A signed-bid payload in JSON (what agents send to a node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BidJson {
    /// Bounty id (0x-hex).
    pub bounty_id: U256,
    /// Commitment of the posted record.
    pub terms_hash: B256,
    /// Bidder.
    pub bidder: Address,
    /// Price (decimal string).
    pub amount: String,
    /// Validity (unix seconds).
    pub deadline: u64,
    /// Promised delivery, seconds after the award (0 = by the bounty deadline). Signed: the
    /// escrow lets the poster or evaluator hand the job to another bidder once it has passed.
    #[serde(default)]
    pub eta: u32,
    /// Stake put at risk, in stake-registry wei (decimal string; absent = "0"). Signed: the
    /// bidder's stake must cover it at the award, and a lost dispute slashes
    /// `bond * slashBps / 10000` of it, whatever the reward token.
    #[serde(default = "zero_decimal")]
    pub bond: String,
    /// Unordered nonce (decimal string).
    pub nonce: String,
}

fn zero_decimal() -> String {
    "0".to_owned()
}

impl From<&Bid> for BidJson {
    fn from(b: &Bid) -> Self {
        Self {
            bounty_id: b.bountyId,
            terms_hash: b.termsHash,
            bidder: b.bidder,
            amount: b.amount.to_string(),
            deadline: b.deadline,
            eta: b.eta,
            bond: b.bond.to_string(),
            nonce: b.nonce.to_string(),
        }
    }
}

impl TryFrom<&BidJson> for Bid {
    type Error = Error;

    fn try_from(b: &BidJson) -> Result<Self> {
        let num = |what: &str, s: &str| {
            U256::from_str_radix(s, 10)
                .map_err(|e| Error::InvalidInput(format!("bid {what} {s:?}: {e}")))
        };
        Ok(Bid {
            bountyId: b.bounty_id,
            termsHash: b.terms_hash,
            bidder: b.bidder,
            amount: num("amount", &b.amount)?,
            deadline: b.deadline,
            eta: b.eta,
            bond: num("bond", &b.bond)?,
            nonce: num("nonce", &b.nonce)?,
        })
    }
}

/// What a payout of `gross` is worth after a platform fee of `fee_bps` (the escrow's
/// `gross - gross * feeBps / 10000`, rounded the same way).
pub fn net_of(gross: u128, fee_bps: u16) -> U256 {
    let g = U256::from(gross);
    g - g * U256::from(fee_bps) / U256::from(10_000u64)
}

/// The id the escrow assigns to `poster`'s bounty with `salt`.
pub fn bounty_id(poster: Address, salt: B256) -> U256 {
    U256::from_be_bytes(keccak256((poster, salt).abi_encode()).0)
}

/// A fresh random salt.
pub fn random_salt() -> B256 {
    B256::from(rand::random::<[u8; 32]>())
}

impl ReefClient {
    fn escrow_addr(&self) -> Address {
        self.deployment().bounty_escrow
    }

    fn escrow_domain(&self) -> alloy::sol_types::Eip712Domain {
        signing::escrow_domain(self.deployment().chain_id, self.escrow_addr())
    }

    /// The escrow's current platform fee (bps).
    pub async fn fee_bps(&self) -> Result<u16> {
        self.view(self.escrow_addr(), BountyEscrow::feeBpsCall {}).await
    }

    /// The native-ETH bond needed to open a dispute.
    pub async fn dispute_bond(&self) -> Result<U256> {
        self.view(self.escrow_addr(), BountyEscrow::disputeBondCall {}).await
    }

    /// Builds the on-chain record for new terms posted by this account.
    pub async fn terms(&self, t: &NewBounty) -> Result<Bounty> {
        if t.amount == 0 {
            return Err(Error::InvalidInput("reward amount must be greater than zero".into()));
        }
        let now = self.chain_time().await?;
        if t.deadline <= now {
            return Err(Error::InvalidInput(format!(
                "deadline {} is not in the future (chain time {now})",
                t.deadline
            )));
        }
        Ok(Bounty {
            poster: self.address(),
            token: t.token,
            amount: t.amount,
            price: 0,
            provider: Address::ZERO,
            evaluator: t.evaluator.unwrap_or(self.address()),
            arbiter: t.arbiter,
            deadline: t.deadline,
            reviewWindow: t.review_window,
            challengeWindow: t.challenge_window,
            feeBps: self.fee_bps().await?,
            mode: if t.contest_winners.is_some() { MODE_CONTEST } else { MODE_AUCTION },
            maxWinners: t.contest_winners.unwrap_or(0),
            specHash: keccak256(t.description.as_bytes()),
            resultHash: B256::ZERO,
        })
    }

    /// Sends `call`, which pays `b.amount` of `b.token` into the escrow (as ETH value or by
    /// `transferFrom`), and returns the approval (if one was sent) and the transaction.
    ///
    /// With `approve`, the balance and the allowance are read first and the escrow approved if
    /// the allowance is short. Without it they are read only when the call is refused before it
    /// is sent: a short balance or allowance fails the gas estimate, and the reads then turn
    /// the token's revert into [`Error::InsufficientBalance`] or
    /// [`Error::InsufficientAllowance`]. Either way nothing is sent that cannot pay, and a
    /// poster that can pay spends no extra request per bounty.
    async fn send_paying<C: SolCall>(
        &self,
        action: &str,
        b: &Bounty,
        call: &C,
        approve: bool,
    ) -> Result<Vec<TxOutcome>> {
        let amount = U256::from(b.amount);
        let value = if b.token.is_zero() { amount } else { U256::ZERO };
        let approval = if approve {
            self.ensure_can_pay(b.token, self.escrow_addr(), amount, true).await?
        } else {
            None
        };
        match self.send_call(action, self.escrow_addr(), call, value).await {
            Ok(out) => Ok(approval.into_iter().chain([out]).collect()),
            // Refused before anything was sent: say what the account lacks, if that is why.
            Err(e @ (Error::Revert { .. } | Error::InsufficientFunds { .. })) if !approve => {
                self.ensure_can_pay(b.token, self.escrow_addr(), amount, false).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Posts and funds a bounty in one transaction. Checks balance/allowance first when
    /// `approve` is set (approving the escrow if needed), else only if the call is refused (see
    /// [`Self::send_paying`]). Returns the id, the record and the transaction(s).
    pub async fn post_and_fund(
        &self,
        salt: B256,
        terms: Bounty,
        approve: bool,
    ) -> Result<(U256, Bounty, Vec<TxOutcome>)> {
        let call = BountyEscrow::postAndFundCall { salt, terms: terms.clone() };
        let txs = self.send_paying("postAndFund", &terms, &call, approve).await?;
        Ok((bounty_id(self.address(), salt), terms, txs))
    }

    /// Posts, funds and awards to a signed bid in one transaction; balance and allowance as in
    /// [`Self::post_and_fund`].
    pub async fn post_fund_and_award(
        &self,
        salt: B256,
        terms: Bounty,
        bid: Bid,
        bid_sig: Bytes,
        approve: bool,
    ) -> Result<(U256, Bounty, Vec<TxOutcome>)> {
        let call = BountyEscrow::postFundAndAwardCall {
            salt,
            terms: terms.clone(),
            bid: compact_bid(&bid, bounty_id(self.address(), salt), &terms),
            bidSig: bid_sig,
        };
        let txs = self.send_paying("postFundAndAward", &terms, &call, approve).await?;
        let mut b = terms;
        b.provider = bid.bidder;
        b.price = bid.amount.to::<u128>();
        Ok((bounty_id(self.address(), salt), b, txs))
    }

    /// Signs a bid as this account (the bidder) for the bounty whose posted record is `terms`:
    /// `amount` valid until `deadline`, delivery within `eta` seconds of the award (0 = by the
    /// bounty deadline), no stake at risk (see [`Self::sign_bonded_bid`]).
    pub fn sign_bid(
        &self,
        bounty_id: U256,
        terms: &Bounty,
        amount: u128,
        deadline: u64,
        eta: u32,
        nonce: U256,
    ) -> Result<(Bid, Bytes)> {
        self.sign_bonded_bid(bounty_id, terms, amount, deadline, eta, U256::ZERO, nonce)
    }

    /// [`Self::sign_bid`] putting `bond` wei of this account's registry stake at risk: the
    /// stake must cover it at the award, and losing a dispute slashes `bond * slashBps / 10000`.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_bonded_bid(
        &self,
        bounty_id: U256,
        terms: &Bounty,
        amount: u128,
        deadline: u64,
        eta: u32,
        bond: U256,
        nonce: U256,
    ) -> Result<(Bid, Bytes)> {
        let bid = Bid {
            bountyId: bounty_id,
            termsHash: terms_hash(terms),
            bidder: self.address(),
            amount: U256::from(amount),
            deadline,
            eta,
            bond,
            nonce,
        };
        let sig = signing::sign_bid(self.signer(), &bid, &self.escrow_domain())?;
        Ok((bid, sig))
    }

    /// Verifies a bid's signature off-chain (chain id and contract bound).
    pub fn verify_bid(&self, bid: &Bid, sig: &[u8]) -> Result<()> {
        signing::verify_typed(bid, &self.escrow_domain(), sig, bid.bidder)
    }

    /// Signs an attestation as this account (the evaluator) of `verdict` on `provider`'s result
    /// `result_hash` (the provider is signed, so a replacement after a take-over cannot replay
    /// it).
    pub fn sign_attestation(
        &self,
        bounty_id: U256,
        provider: Address,
        result_hash: B256,
        verdict: u8,
    ) -> Result<Bytes> {
        let att = Attestation { bountyId: bounty_id, provider, resultHash: result_hash, verdict };
        signing::sign_attestation(self.signer(), &att, &self.escrow_domain())
    }

    /// Poster: awards a funded bounty to a signed bid. Returns the updated record.
    pub async fn award(
        &self,
        id: U256,
        b: &Bounty,
        bid: Bid,
        sig: Bytes,
    ) -> Result<(Bounty, TxOutcome)> {
        self.verify_bid(&bid, &sig)?;
        let call = BountyEscrow::awardCall { id, b: b.clone(), bid: compact_bid(&bid, id, b), sig };
        let out = self.send_call("award", self.escrow_addr(), &call, U256::ZERO).await?;
        let mut nb = b.clone();
        nb.provider = bid.bidder;
        nb.price = bid.amount.to::<u128>();
        Ok((nb, out))
    }

    /// Provider: submits a result hash. Returns the updated record.
    pub async fn submit(
        &self,
        id: U256,
        b: &Bounty,
        result_hash: B256,
    ) -> Result<(Bounty, TxOutcome)> {
        let call = BountyEscrow::submitCall { id, b: b.clone(), resultHash: result_hash };
        let out = self.send_call("submit", self.escrow_addr(), &call, U256::ZERO).await?;
        let mut nb = b.clone();
        nb.resultHash = result_hash;
        Ok((nb, out))
    }

    /// Anyone: records the evaluator's verdict (signature may be empty if we are the evaluator).
    pub async fn attest(&self, id: U256, b: &Bounty, verdict: u8, sig: Bytes) -> Result<TxOutcome> {
        let call = BountyEscrow::attestCall { id, b: b.clone(), verdict, evaluatorSig: sig };
        self.send_call("attest", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Evaluator shortcut: accept the submitted result and release payment.
    pub async fn release(&self, id: U256, b: &Bounty) -> Result<TxOutcome> {
        self.attest(id, b, verdict::ACCEPT, Bytes::new()).await
    }

    /// Evaluator shortcut: reject the submitted result.
    pub async fn reject(&self, id: U256, b: &Bounty) -> Result<TxOutcome> {
        self.attest(id, b, verdict::REJECT, Bytes::new()).await
    }

    /// Provider: submit a result with the evaluator's attestation and get paid in one tx.
    pub async fn submit_and_attest(
        &self,
        id: U256,
        b: &Bounty,
        result_hash: B256,
        verdict: u8,
        evaluator_sig: Bytes,
    ) -> Result<(Bounty, TxOutcome)> {
        let call = BountyEscrow::submitAndAttestCall {
            id,
            b: b.clone(),
            resultHash: result_hash,
            verdict,
            evaluatorSig: evaluator_sig,
        };
        let out = self.send_call("submitAndAttest", self.escrow_addr(), &call, U256::ZERO).await?;
        let mut nb = b.clone();
        nb.resultHash = result_hash;
        Ok((nb, out))
    }

    /// Contest: submit an entry (result hash) before the deadline.
    pub async fn submit_entry(&self, id: U256, b: &Bounty, result_hash: B256) -> Result<TxOutcome> {
        let call = BountyEscrow::submitEntryCall { id, b: b.clone(), resultHash: result_hash };
        self.send_call("submitEntry", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Contest evaluator: pay `winners` their `shares_bps` (summing to 10,000) of the reward.
    pub async fn pick_winners(
        &self,
        id: U256,
        b: &Bounty,
        winners: Vec<Address>,
        shares_bps: Vec<u16>,
    ) -> Result<TxOutcome> {
        let call =
            BountyEscrow::pickWinnersCall { id, b: b.clone(), winners, sharesBps: shares_bps };
        self.send_call("pickWinners", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// A contest entrant's committed result hash (zero if none).
    pub async fn entry_of(&self, id: U256, entrant: Address) -> Result<B256> {
        self.view(self.escrow_addr(), BountyEscrow::entriesCall { bountyId: id, entrant }).await
    }

    /// Anyone: refund the poster of a bounty past its deadline.
    pub async fn refund_expired(&self, id: U256, b: &Bounty) -> Result<TxOutcome> {
        let call = BountyEscrow::refundExpiredCall { id, b: b.clone() };
        self.send_call("refundExpired", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Poster: cancel before an award.
    pub async fn cancel(&self, id: U256, b: &Bounty) -> Result<TxOutcome> {
        let call = BountyEscrow::cancelCall { id, b: b.clone() };
        self.send_call("cancel", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Anyone: settle a submission whose review window passed without a verdict.
    pub async fn claim_after_review(&self, id: U256, b: &Bounty) -> Result<TxOutcome> {
        let call = BountyEscrow::claimAfterReviewCall { id, b: b.clone() };
        self.send_call("claimAfterReview", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Anyone: refund after a rejection's challenge window passed.
    pub async fn finalize_rejection(&self, id: U256, b: &Bounty) -> Result<TxOutcome> {
        let call = BountyEscrow::finalizeRejectionCall { id, b: b.clone() };
        self.send_call("finalizeRejection", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Poster or provider: escalate to the arbiter, posting the dispute bond.
    pub async fn dispute(&self, id: U256, b: &Bounty) -> Result<TxOutcome> {
        let bond = self.dispute_bond().await?;
        let call = BountyEscrow::disputeCall { id, b: b.clone() };
        self.send_call("dispute", self.escrow_addr(), &call, bond).await
    }

    /// Poster or evaluator: hands an overdue award (past its `dueBy`, before the deadline) to
    /// another signed bid. Returns the updated record.
    pub async fn reassign(
        &self,
        id: U256,
        b: &Bounty,
        bid: &Bid,
        sig: Bytes,
    ) -> Result<(Bounty, TxOutcome)> {
        let me = self.address();
        if me != b.poster && me != b.evaluator {
            return Err(Error::InvalidInput(format!(
                "only the poster {} or the evaluator {} may reassign; you are {me}",
                b.poster, b.evaluator
            )));
        }
        let call =
            BountyEscrow::reassignCall { id, b: b.clone(), bid: bid.clone(), sig: sig.clone() };
        let out = self.send_call("reassign", self.escrow_addr(), &call, U256::ZERO).await?;
        let mut next = b.clone();
        next.provider = bid.bidder;
        next.price = bid.amount.to::<u128>();
        Ok((next, out))
    }

    /// Poster or evaluator: ends an overdue award without a replacement; the poster is refunded.
    pub async fn revoke_award(&self, id: U256, b: &Bounty) -> Result<TxOutcome> {
        let call = BountyEscrow::revokeAwardCall { id, b: b.clone() };
        self.send_call("revokeAward", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Arbiter: rule a split (`provider_bps` of the price to the provider).
    pub async fn resolve(&self, id: U256, b: &Bounty, provider_bps: u16) -> Result<TxOutcome> {
        if provider_bps > 10_000 {
            return Err(Error::InvalidInput(format!(
                "provider share {provider_bps} bps exceeds 10000"
            )));
        }
        let call = BountyEscrow::resolveCall { id, b: b.clone(), providerBps: provider_bps };
        self.send_call("resolve", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Platform fees accrued in `token` since they were last collected.
    pub async fn accrued_fees(&self, token: Address) -> Result<U256> {
        self.view(self.escrow_addr(), BountyEscrow::accruedFeesCall { token }).await
    }

    /// Anyone: pays the platform fees accrued in `token` to the current fee recipient (pushed,
    /// or credited to its pull-ledger entry if the push fails; see [`Self::withdraw`]).
    pub async fn collect_fees(&self, token: Address) -> Result<TxOutcome> {
        let call = BountyEscrow::collectFeesCall { token };
        self.send_call("collectFees", self.escrow_addr(), &call, U256::ZERO).await
    }

    /// Withdraws this account's pull-ledger balance of `token`.
    pub async fn withdraw(&self, token: Address) -> Result<TxOutcome> {
        self.send_call(
            "withdraw",
            self.escrow_addr(),
            &BountyEscrow::withdrawCall { token },
            U256::ZERO,
        )
        .await
    }

    /// On-chain status and last-transition time.
    pub async fn status_of(&self, id: U256) -> Result<(Status, u64)> {
        let r = self.view(self.escrow_addr(), BountyEscrow::statusOfCall { id }).await?;
        Ok((Status::from_u8(r.status)?, r.stamp.to::<u64>()))
    }

    /// Rebuilds a bounty's current record from its events and checks it against the chain.
    pub async fn bounty(&self, id: U256) -> Result<BountyState> {
        let filter = Filter::new()
            .address(self.escrow_addr())
            .topic1(B256::from(id))
            .from_block(self.deployment().start_block);
        let logs = self.logs(&filter).await?;
        let mut record: Option<Bounty> = None;
        let mut history = Vec::new();
        for log in &logs {
            apply_log(&mut record, &mut history, log);
        }
        let record = record.ok_or(Error::BountyNotFound(id))?;
        let (status, stamp) = self.status_of(id).await?;
        // The rebuilt record must match the on-chain commitment.
        self.view(
            self.escrow_addr(),
            BountyEscrow::verifyRecordCall { bountyId: id, b: record.clone() },
        )
        .await?;
        Ok(BountyState { id, record, status, stamp, history })
    }

    /// Bounties posted on this deployment (optionally only by `poster`), oldest first.
    pub async fn bounty_ids(&self, poster: Option<Address>) -> Result<Vec<U256>> {
        let mut filter = Filter::new()
            .address(self.escrow_addr())
            .event_signature(BountyEscrow::BountyPosted::SIGNATURE_HASH)
            .from_block(self.deployment().start_block);
        if let Some(p) = poster {
            filter = filter.topic2(p.into_word());
        }
        let logs = self.logs(&filter).await?;
        Ok(logs
            .iter()
            .filter_map(|l| l.topics().get(1).map(|t| U256::from_be_bytes(t.0)))
            .collect())
    }
}

fn event_name(topic0: FixedBytes<32>) -> &'static str {
    use BountyEscrow as E;
    match topic0 {
        t if t == E::BountyPosted::SIGNATURE_HASH => "BountyPosted",
        t if t == E::BountyFunded::SIGNATURE_HASH => "BountyFunded",
        t if t == E::BountyAwarded::SIGNATURE_HASH => "BountyAwarded",
        t if t == E::AwardRevoked::SIGNATURE_HASH => "AwardRevoked",
        t if t == E::ResultSubmitted::SIGNATURE_HASH => "ResultSubmitted",
        t if t == E::EntrySubmitted::SIGNATURE_HASH => "EntrySubmitted",
        t if t == E::BountyAttested::SIGNATURE_HASH => "BountyAttested",
        t if t == E::BountyCompleted::SIGNATURE_HASH => "BountyCompleted",
        t if t == E::BountyRejected::SIGNATURE_HASH => "BountyRejected",
        t if t == E::BountyRefunded::SIGNATURE_HASH => "BountyRefunded",
        t if t == E::BountyCancelled::SIGNATURE_HASH => "BountyCancelled",
        t if t == E::DisputeOpened::SIGNATURE_HASH => "DisputeOpened",
        t if t == E::DisputeResolved::SIGNATURE_HASH => "DisputeResolved",
        t if t == E::WinnerPaid::SIGNATURE_HASH => "WinnerPaid",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BountyEscrow as E;

    fn log_of(data: alloy::primitives::LogData, time: Option<u64>) -> alloy::rpc::types::Log {
        alloy::rpc::types::Log {
            inner: alloy::primitives::Log { address: Address::ZERO, data },
            block_timestamp: time,
            ..Default::default()
        }
    }

    #[test]
    fn a_bid_leaves_out_only_the_fields_the_escrow_derives() {
        let posted = Bounty { amount: 10, poster: Address::repeat_byte(1), ..Default::default() };
        let id = U256::from(7);
        let bid = Bid {
            bountyId: id,
            termsHash: terms_hash(&posted),
            bidder: Address::repeat_byte(2),
            amount: U256::from(5),
            nonce: U256::from(3),
            ..Default::default()
        };
        let sent = compact_bid(&bid, id, &posted);
        assert_eq!((sent.bountyId, sent.termsHash), (U256::ZERO, B256::ZERO));
        assert_eq!((sent.bidder, sent.amount, sent.nonce), (bid.bidder, bid.amount, bid.nonce));
        // Signed for another bounty or other terms: sent as signed, so the escrow says why.
        assert_eq!(compact_bid(&bid, U256::from(8), &posted), bid);
        let other = Bounty { amount: 11, ..posted };
        assert_eq!(compact_bid(&bid, id, &other), bid);
    }

    #[test]
    fn net_pay_rounds_the_fee_down_like_the_escrow() {
        assert_eq!(net_of(80_000, 100), U256::from(79_200));
        assert_eq!(net_of(199, 100), U256::from(198), "a fee of 1.99 rounds down to 1");
        assert_eq!(net_of(5, 0), U256::from(5));
    }

    #[test]
    fn status_effects_need_the_block_time_except_an_awards_due_time() {
        let id = U256::from(1);
        let who = Address::repeat_byte(1);
        let completed = E::BountyCompleted {
            id,
            provider: who,
            paid: U256::ZERO,
            fee: U256::ZERO,
            refunded: U256::ZERO,
        }
        .encode_log_data();
        assert_eq!(
            status_effect(&log_of(completed.clone(), Some(77))),
            StatusEffect::Set(Status::Completed, 77)
        );
        assert_eq!(status_effect(&log_of(completed, None)), StatusEffect::Unknown);
        let awarded = E::BountyAwarded {
            id,
            provider: who,
            price: U256::ZERO,
            bidNonce: U256::ZERO,
            dueBy: 500,
        }
        .encode_log_data();
        assert_eq!(
            status_effect(&log_of(awarded, None)),
            StatusEffect::Set(Status::Awarded, 500),
            "the stamp of an award is its due time, in the event"
        );
        let refunded = E::BountyRefunded {
            id,
            poster: who,
            amount: U256::ZERO,
            reason: Status::Expired as u8,
        }
        .encode_log_data();
        assert_eq!(
            status_effect(&log_of(refunded, Some(9))),
            StatusEffect::Set(Status::Expired, 9)
        );
        let paid = E::WinnerPaid { id, winner: who, paid: U256::ZERO, fee: U256::ZERO };
        assert_eq!(status_effect(&log_of(paid.encode_log_data(), Some(9))), StatusEffect::Keep);
        let revoked = E::AwardRevoked { id, provider: who, dueBy: 3 }.encode_log_data();
        assert_eq!(status_effect(&log_of(revoked, Some(9))), StatusEffect::Unknown);
    }
}
