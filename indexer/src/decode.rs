//! Decoding logs of Reef's contracts (and watched ERC-20 tokens) into uniform [`EventRow`]s,
//! with the `sol!` bindings of `escrow-client`. Logs of other contracts and unknown event
//! signatures decode to `None` and are ignored.

use alloy::{
    primitives::{Address, B256, U256},
    rpc::types::Log,
    sol_types::{SolEvent, SolEventInterface},
};
use escrow_client::bindings::{
    channel::PaymentChannel::PaymentChannelEvents as Ch,
    escrow::BountyEscrow::BountyEscrowEvents as Es,
    registry::AgentRegistry::AgentRegistryEvents as Reg,
    reputation::ReputationRegistry::ReputationRegistryEvents as Rep, token::ReefTestToken,
    validation::ValidationRegistry::ValidationRegistryEvents as Val,
};

/// Addresses the indexer follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contracts {
    /// BountyEscrow.
    pub escrow: Address,
    /// PaymentChannel.
    pub channel: Address,
    /// AgentRegistry.
    pub registry: Address,
    /// ReputationRegistry.
    pub reputation: Address,
    /// ValidationRegistry (absent in deployments made before it existed).
    pub validation: Option<Address>,
}

impl Contracts {
    /// The addresses of a deployment.
    pub fn of(dep: &escrow_client::Deployment) -> Self {
        Self {
            escrow: dep.bounty_escrow,
            channel: dep.payment_channel,
            registry: dep.agent_registry,
            reputation: dep.reputation_registry,
            validation: dep.validation_registry,
        }
    }

    /// Every followed address.
    pub fn all(&self) -> Vec<Address> {
        let mut v = vec![self.escrow, self.channel, self.registry, self.reputation];
        v.extend(self.validation);
        v
    }
}

/// One decoded log, in the shape of the `idx_events` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Block height.
    pub block_number: u64,
    /// Index of the log in its block.
    pub log_index: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Block timestamp.
    pub block_time: u64,
    /// Emitting contract.
    pub contract: Address,
    /// Event name (`BountyPosted`, `Transfer`, …).
    pub kind: String,
    /// The object the event is about: bounty id, channel id, agent id (hex, 32 bytes).
    pub ref_id: Option<String>,
    /// Main account (poster, provider, payer, staker, sender…).
    pub actor: Option<Address>,
    /// Second account or token.
    pub counterparty: Option<Address>,
    /// Main amount (decimal).
    pub amount: Option<String>,
    /// Second amount (decimal).
    pub amount2: Option<String>,
    /// Anything else, as compact text (JSON for several values).
    pub extra: Option<String>,
}

/// Formats a 256-bit id as fixed-width hex.
pub fn id_hex(id: U256) -> String {
    format!("{id:#066x}")
}

/// Formats an address as lowercase hex (the database's canonical form).
pub fn addr_hex(a: Address) -> String {
    format!("{a:#x}")
}

#[derive(Default)]
struct F {
    kind: &'static str,
    ref_id: Option<U256>,
    actor: Option<Address>,
    counterparty: Option<Address>,
    amount: Option<U256>,
    amount2: Option<U256>,
    extra: Option<String>,
}

fn f(kind: &'static str) -> F {
    F { kind, ..F::default() }
}

/// Decodes `log` if it comes from a followed contract or a watched token; `None` otherwise.
/// `block_time` is used when the log does not carry its block's timestamp.
pub fn decode(log: &Log, c: &Contracts, tokens: &[Address], block_time: u64) -> Option<EventRow> {
    let addr = log.address();
    let (topics, data) = (log.topics(), &log.data().data);
    let fields = if addr == c.escrow {
        escrow(Es::decode_raw_log(topics, data).ok()?)
    } else if addr == c.channel {
        channel(Ch::decode_raw_log(topics, data).ok()?)
    } else if addr == c.registry {
        registry(Reg::decode_raw_log(topics, data).ok()?)
    } else if addr == c.reputation {
        reputation(Rep::decode_raw_log(topics, data).ok()?)
    } else if Some(addr) == c.validation {
        validation(Val::decode_raw_log(topics, data).ok()?)
    } else if tokens.contains(&addr) {
        if topics.first() != Some(&ReefTestToken::Transfer::SIGNATURE_HASH) {
            return None;
        }
        let t = ReefTestToken::Transfer::decode_raw_log(topics.iter().copied(), data).ok()?;
        Some(F {
            actor: Some(t.from),
            counterparty: Some(t.to),
            amount: Some(t.value),
            ..f("Transfer")
        })
    } else {
        return None;
    }?;
    Some(EventRow {
        block_number: log.block_number?,
        log_index: log.log_index?,
        block_hash: log.block_hash?,
        tx_hash: log.transaction_hash.unwrap_or_default(),
        block_time: log.block_timestamp.unwrap_or(block_time),
        contract: addr,
        kind: fields.kind.to_string(),
        ref_id: fields.ref_id.map(id_hex),
        actor: fields.actor,
        counterparty: fields.counterparty,
        amount: fields.amount.map(|a| a.to_string()),
        amount2: fields.amount2.map(|a| a.to_string()),
        extra: fields.extra,
    })
}

fn escrow(e: Es) -> Option<F> {
    Some(match e {
        Es::BountyPosted(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.poster),
            counterparty: Some(e.token),
            amount: Some(U256::from(e.record.amount)),
            amount2: Some(U256::from(e.record.price)),
            extra: Some(
                serde_json::json!({
                    "deadline": e.record.deadline,
                    "provider": addr_hex(e.record.provider),
                    "evaluator": addr_hex(e.record.evaluator),
                    "arbiter": addr_hex(e.record.arbiter),
                    "funded": e.funded,
                    "mode": e.record.mode,
                })
                .to_string(),
            ),
            ..f("BountyPosted")
        },
        Es::BountyFunded(e) => {
            F { ref_id: Some(e.id), actor: Some(e.funder), amount: Some(e.amount), ..f("BountyFunded") }
        }
        Es::BountyAwarded(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.provider),
            amount: Some(e.price),
            extra: Some(
                serde_json::json!({ "bidNonce": e.bidNonce.to_string(), "dueBy": e.dueBy })
                    .to_string(),
            ),
            ..f("BountyAwarded")
        },
        Es::AwardRevoked(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.provider),
            extra: Some(e.dueBy.to_string()),
            ..f("AwardRevoked")
        },
        Es::ResultSubmitted(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.provider),
            extra: Some(e.resultHash.to_string()),
            ..f("ResultSubmitted")
        },
        Es::EntrySubmitted(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.entrant),
            extra: Some(e.resultHash.to_string()),
            ..f("EntrySubmitted")
        },
        Es::BountyAttested(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.evaluator),
            extra: Some(e.verdict.to_string()),
            ..f("BountyAttested")
        },
        Es::BountyCompleted(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.provider),
            amount: Some(e.paid),
            amount2: Some(e.fee),
            extra: Some(e.refunded.to_string()),
            ..f("BountyCompleted")
        },
        Es::BountyRejected(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.provider),
            extra: Some(e.challengeUntil.to_string()),
            ..f("BountyRejected")
        },
        Es::BountyRefunded(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.poster),
            amount: Some(e.amount),
            extra: Some(e.reason.to_string()),
            ..f("BountyRefunded")
        },
        Es::BountyCancelled(e) => {
            F { ref_id: Some(e.id), actor: Some(e.poster), amount: Some(e.refunded), ..f("BountyCancelled") }
        }
        Es::DisputeOpened(e) => {
            F { ref_id: Some(e.id), actor: Some(e.by), amount: Some(e.bond), ..f("DisputeOpened") }
        }
        Es::DisputeResolved(e) => F {
            ref_id: Some(e.id),
            amount: Some(e.toProvider),
            amount2: Some(e.toPoster),
            extra: Some(
                serde_json::json!({"providerBps": e.providerBps, "fee": e.fee.to_string(), "slashed": e.slashed.to_string()})
                    .to_string(),
            ),
            ..f("DisputeResolved")
        },
        Es::WinnerPaid(e) => F {
            ref_id: Some(e.id),
            actor: Some(e.winner),
            amount: Some(e.paid),
            amount2: Some(e.fee),
            ..f("WinnerPaid")
        },
        Es::PayoutDeferred(e) => {
            F { actor: Some(e.to), counterparty: Some(e.token), amount: Some(e.amount), ..f("PayoutDeferred") }
        }
        Es::FeesCollected(e) => F {
            actor: Some(e.recipient),
            counterparty: Some(e.token),
            amount: Some(e.amount),
            ..f("FeesCollected")
        },
        Es::Withdrawn(e) => F {
            actor: Some(e.account),
            counterparty: Some(e.token),
            amount: Some(e.amount),
            extra: Some(addr_hex(e.to)),
            ..f("Withdrawn")
        },
        _ => return None,
    })
}

fn channel(e: Ch) -> Option<F> {
    Some(match e {
        Ch::ChannelOpened(e) => F {
            ref_id: Some(e.channelId),
            actor: Some(e.payer),
            counterparty: Some(e.payee),
            amount: Some(e.amount),
            extra: Some(addr_hex(e.token)),
            ..f("ChannelOpened")
        },
        Ch::ChannelDeposited(e) => F {
            ref_id: Some(e.channelId),
            actor: Some(e.from),
            amount: Some(e.amount),
            amount2: Some(e.newDeposit),
            ..f("ChannelDeposited")
        },
        Ch::VoucherRedeemed(e) => F {
            ref_id: Some(e.channelId),
            actor: Some(e.payee),
            amount: Some(e.paid),
            amount2: Some(e.cumulativeAmount),
            ..f("VoucherRedeemed")
        },
        Ch::ChannelClosed_1(e) => F {
            ref_id: Some(e.channelId),
            amount: Some(e.paidToPayee),
            amount2: Some(e.refundedToPayer),
            ..f("ChannelClosed")
        },
        _ => return None,
    })
}

fn registry(e: Reg) -> Option<F> {
    Some(match e {
        Reg::Registered(e) => F {
            ref_id: Some(e.agentId),
            actor: Some(e.owner),
            extra: Some(e.agentURI),
            ..f("Registered")
        },
        Reg::URIUpdated(e) => F {
            ref_id: Some(e.agentId),
            actor: Some(e.updatedBy),
            extra: Some(e.newURI),
            ..f("URIUpdated")
        },
        Reg::Transfer(e) => F {
            ref_id: Some(e.tokenId),
            actor: Some(e.from),
            counterparty: Some(e.to),
            ..f("AgentTransfer")
        },
        Reg::Staked(e) => F {
            actor: Some(e.account),
            amount: Some(e.amount),
            amount2: Some(e.bonded),
            ..f("Staked")
        },
        Reg::UnbondRequested(e) => F {
            actor: Some(e.account),
            amount: Some(e.amount),
            extra: Some(e.releaseAt.to_string()),
            ..f("UnbondRequested")
        },
        Reg::Unbonded(e) => F { actor: Some(e.account), amount: Some(e.amount), ..f("Unbonded") },
        Reg::Slashed(e) => F {
            actor: Some(e.account),
            counterparty: Some(e.to),
            amount: Some(e.amount),
            ..f("Slashed")
        },
        _ => return None,
    })
}

fn reputation(e: Rep) -> Option<F> {
    Some(match e {
        Rep::NewFeedback(e) => F {
            ref_id: Some(e.agentId),
            actor: Some(e.clientAddress),
            extra: Some(
                serde_json::json!({
                    "index": e.feedbackIndex,
                    "value": e.value.to_string(),
                    "decimals": e.valueDecimals,
                    "tag1": e.tag1,
                    "tag2": e.tag2,
                })
                .to_string(),
            ),
            ..f("NewFeedback")
        },
        Rep::FeedbackRevoked(e) => F {
            ref_id: Some(e.agentId),
            actor: Some(e.clientAddress),
            extra: Some(e.feedbackIndex.to_string()),
            ..f("FeedbackRevoked")
        },
        Rep::FeedbackAuthorized(e) => F {
            ref_id: Some(e.bountyId),
            actor: Some(e.client),
            counterparty: Some(e.provider),
            ..f("FeedbackAuthorized")
        },
        _ => return None,
    })
}

fn validation(e: Val) -> Option<F> {
    Some(match e {
        Val::ValidationRequest(e) => F {
            ref_id: Some(e.agentId),
            actor: Some(e.validatorAddress),
            extra: Some(
                serde_json::json!({ "request": e.requestHash, "uri": e.requestURI }).to_string(),
            ),
            ..f("ValidationRequest")
        },
        Val::ValidationResponse(e) => F {
            ref_id: Some(e.agentId),
            actor: Some(e.validatorAddress),
            amount: Some(U256::from(e.response)),
            extra: Some(
                serde_json::json!({
                    "request": e.requestHash,
                    "response": e.response,
                    "tag": e.tag,
                    "uri": e.responseURI,
                })
                .to_string(),
            ),
            ..f("ValidationResponse")
        },
        Val::BountyValidationRecorded(e) => F {
            ref_id: Some(e.bountyId),
            amount: Some(e.agentId),
            extra: Some(e.requestHash.to_string()),
            ..f("BountyValidationRecorded")
        },
    })
}
