//! From indexed rows to a [`ReputationBook`]: settled, funded bounties become
//! [`Outcome`]s, stake rows become stake events. Only data at or below the confirmed tip counts.
//!
//! Funding heuristic ("poster funded by the agent"): the indexer records, per account, the first
//! inbound transfer of any watched token (the devnet token, tokens configured, and every token
//! seen in `BountyPosted`). If a poster's first inbound transfer came from the agent it later
//! paid, the outcome is marked `poster_funded_by_agent` and discounted. Mints (from the zero
//! address) fund nobody. Native-ETH funding and funding through intermediaries are not seen.

use alloy::primitives::{Address, U256};
use reef_reputation::{Event, Outcome, OutcomeKind, Params, ReputationBook};

use crate::{Error, Result, Store, decode::addr_hex, derived::BountyRow, indexer::confirmed_tip};

/// Converts base units (18 decimals) to whole tokens as f64.
pub fn to_units(v: U256) -> f64 {
    let (q, r) = v.div_rem(U256::from(10u64).pow(U256::from(18)));
    let q: f64 = q.to_string().parse().unwrap_or(f64::MAX);
    q + r.to::<u128>() as f64 / 1e18
}

fn parse_addr(s: &str) -> Result<Address> {
    s.parse().map_err(|e| Error::Corrupt(format!("address {s:?}: {e}")))
}

/// The outcome of a settled bounty for its provider, if it is one the reputation engine counts
/// (funded, awarded, terminal).
pub fn outcome_of(
    b: &BountyRow,
    funding: &std::collections::BTreeMap<String, String>,
) -> Result<Option<Outcome>> {
    let (Some(provider), Some(poster)) = (&b.provider, &b.poster) else { return Ok(None) };
    if !b.funded {
        return Ok(None);
    }
    let kind = match b.status.as_str() {
        "completed" => OutcomeKind::Completed,
        "refunded" => OutcomeKind::Rejected,
        "expired" => OutcomeKind::Expired,
        "resolved" if b.provider_bps.unwrap_or(0) >= 5_000 => OutcomeKind::DisputeWon,
        "resolved" => OutcomeKind::DisputeLost,
        _ => return Ok(None),
    };
    let price = b.price.as_deref().or(b.amount.as_deref()).unwrap_or("0");
    let value = to_units(
        price.parse::<U256>().map_err(|e| Error::Corrupt(format!("price {price:?}: {e}")))?,
    );
    let on_time = match (kind, b.submitted_at, b.deadline) {
        (OutcomeKind::Expired, _, _) => Some(false),
        (_, Some(s), Some(d)) => Some(s <= d),
        _ => None,
    };
    Ok(Some(Outcome {
        agent: parse_addr(provider)?,
        poster: parse_addr(poster)?,
        value,
        kind,
        at: b.settled_at.unwrap_or(0).max(0) as u64,
        on_time,
        poster_funded_by_agent: funding.get(poster).is_some_and(|from| from == provider),
    }))
}

/// All reputation events the store holds at or below the confirmed tip, in chain order.
pub async fn load_events(store: &Store, confirmations: u64) -> Result<Vec<Event>> {
    let Some(tip) = confirmed_tip(store, confirmations).await? else { return Ok(Vec::new()) };
    let funding = store.funding().await?;
    let mut keyed: Vec<((i64, i64), Event)> = Vec::new();
    for b in store.settled_bounties(tip).await? {
        if let Some(o) = outcome_of(&b, &funding)? {
            keyed.push(((b.settled_block.unwrap_or(0), b.last_log), Event::Outcome(o)));
        }
    }
    // A provider that lost a job to another bidder (take-over after its ETA) failed it, even
    // though the bounty itself may still complete. (`revokeAward` keeps the provider on the
    // record and ends `Expired`: that one is already counted by `outcome_of`.)
    let revoked = store.events_of_kind("AwardRevoked", tip).await?;
    if !revoked.is_empty() {
        let rows: std::collections::BTreeMap<String, BountyRow> =
            store.bounties().await?.into_iter().map(|b| (b.id.clone(), b)).collect();
        for e in revoked {
            let (Some(id), Some(agent)) = (&e.ref_id, e.actor) else { continue };
            let Some(b) = rows.get(id) else { continue };
            if b.provider.as_deref() == Some(addr_hex(agent).as_str()) {
                continue;
            }
            let Some(poster) = &b.poster else { continue };
            let amount = b.amount.as_deref().unwrap_or("0");
            let value = to_units(
                amount
                    .parse::<U256>()
                    .map_err(|e| Error::Corrupt(format!("amount {amount:?}: {e}")))?,
            );
            keyed.push((
                (e.block_number as i64, e.log_index as i64),
                Event::Outcome(Outcome {
                    agent,
                    poster: parse_addr(poster)?,
                    value,
                    kind: OutcomeKind::Expired,
                    at: e.block_time,
                    on_time: Some(false),
                    poster_funded_by_agent: funding
                        .get(poster)
                        .is_some_and(|from| *from == addr_hex(agent)),
                }),
            ));
        }
    }
    for s in store.stakes().await? {
        if s.last_block <= tip as i64 {
            keyed.push((
                (s.last_block, s.last_log),
                Event::Stake {
                    agent: parse_addr(&s.account)?,
                    bonded: to_units(s.bonded),
                    at: s.updated_at.max(0) as u64,
                },
            ));
        }
    }
    keyed.sort_by_key(|(k, _)| *k);
    Ok(keyed.into_iter().map(|(_, e)| e).collect())
}

/// A [`ReputationBook`] over everything confirmed in `store`.
pub async fn load_book(
    store: &Store,
    confirmations: u64,
    params: Params,
) -> Result<ReputationBook> {
    let events = load_events(store, confirmations).await?;
    Ok(ReputationBook::from_events(params, &events)?)
}
