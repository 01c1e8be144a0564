//! Contests: every agent may enter a result while the window is open; at its close the entries
//! are verified and the best are paid their shares.

use super::*;

impl Market {
    /// Accepts a contest entry's result from `caller` (who must also commit it on-chain with
    /// `submitEntry`; only entries whose on-chain hash matches are judged).
    pub async fn entry(&self, caller: Address, key: &str, result: Value) -> Result<Value> {
        let row = self.row(key).await?;
        if row.phase != Phase::Contest {
            return Err(MarketError::Conflict("this bounty is not an open contest".into()));
        }
        if self.inner.chain.chain_time().await? > row.bid_close_at {
            return Err(MarketError::Conflict("the contest deadline has passed".into()));
        }
        if caller == row.poster {
            return Err(MarketError::Forbidden("the poster cannot enter its own contest".into()));
        }
        let fresh = self.inner.store.insert_entry(key, &caller.to_string(), &result).await?;
        if fresh {
            self.inner.store.log(key, "entry", &format!("entry from {caller}")).await?;
        }
        Ok(json!({ "accepted": fresh, "result_hash": result_hash(&result) }))
    }

    /// Contest: after the deadline, verify entries and pay the `maxWinners` best verified ones
    /// (by the verifier's score, then arrival).
    pub(super) async fn contest(&self, row: &BountyRow) -> Result<()> {
        let id = row.id.id();
        let record = Self::record_of(row)?;
        let (status, _) = self.inner.view.status_of(id).await?;
        let t = self.inner.view.chain_time().await?;
        if status.is_terminal() {
            self.inner
                .store
                .transition(
                    &row.id,
                    Phase::Contest,
                    Phase::Settled,
                    &format!("settled on-chain: {status}"),
                )
                .await?;
            return Ok(());
        }
        if matches!(status, Status::None | Status::Open) {
            if t > record.deadline {
                self.inner
                    .store
                    .transition(
                        &row.id,
                        Phase::Contest,
                        Phase::Failed,
                        "the poster never funded the contest",
                    )
                    .await?;
            }
            return Ok(());
        }
        if t <= record.deadline {
            return Ok(());
        }
        let spec = Self::verify_spec(row)?;
        let mut passed: Vec<(Address, Option<f64>)> = Vec::new();
        let mut judged = Vec::new();
        for (agent, result) in self.inner.store.entries(&row.id).await? {
            let Ok(addr) = agent.parse::<Address>() else { continue };
            let rh = result_hash(&result);
            let onchain = self.inner.chain.entry_of(id, addr).await?;
            let (verdict, score) = if onchain != rh {
                (Verdict { accept: false, reason: "no matching on-chain entry".into() }, None)
            } else {
                self.inner
                    .cfg
                    .verifiers
                    .verify_scored(&spec, &row.spec["input"], &result)
                    .await
                    .unwrap_or((
                        Verdict { accept: false, reason: "no automatic verification".into() },
                        None,
                    ))
            };
            judged.push(json!({ "agent": addr, "accept": verdict.accept, "score": score, "reason": verdict.reason }));
            if verdict.accept {
                passed.push((addr, score));
            }
        }
        // The best verified entries are paid: highest verifier score first, then arrival.
        let mut winners = crate::market::verify::rank_entries(passed);
        winners.truncate(usize::from(record.maxWinners));
        let verdict = json!({ "accept": !winners.is_empty(), "winners": winners, "entries": judged, "reason": format!("{} verified winner(s)", winners.len()) });
        self.inner.store.set_verdict(&row.id, &verdict).await?;
        if winners.is_empty() {
            if t > record.deadline + u64::from(record.reviewWindow) {
                self.inner.chain.refund_expired(id, &record).await?;
            }
            return Ok(());
        }
        let split: Vec<u16> = serde_json::from_value(row.spec["split"].clone()).unwrap_or_default();
        let shares = contest_shares(&split, winners.len());
        self.inner.chain.pick_winners(id, &record, winners.clone(), shares.clone()).await?;
        self.inner
            .store
            .transition(
                &row.id,
                Phase::Contest,
                Phase::Settled,
                &format!("winners paid: {winners:?} with shares {shares:?} bps"),
            )
            .await?;
        Ok(())
    }
}
