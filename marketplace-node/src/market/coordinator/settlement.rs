//! Settlement: the verdict is attested on-chain (pay or refund), the conclusion is told to the
//! group, and the ERC-8004 validation is recorded.

use super::*;

impl Market {
    /// Follows the chain to a terminal state, nudging it where the node may.
    pub(super) async fn settle(&self, row: &BountyRow) -> Result<()> {
        let id = row.id.id();
        let (record, status, stamp) = self.chain_record(row).await?;
        if status.is_terminal() {
            self.settle_panel_fees(row, &record, status).await?;
            self.record_validation(row, id, &record, status).await?;
            self.inner
                .store
                .transition(
                    &row.id,
                    row.phase,
                    Phase::Settled,
                    &format!("settled on-chain: {status}"),
                )
                .await?;
            return Ok(());
        }
        let t = self.inner.view.chain_time().await?;
        match (row.phase, status) {
            // The provider submitted without the attestation: record our verdict ourselves.
            (Phase::Settling, Status::Submitted) => {
                let accept = row.verdict.as_ref().map(|v| v["accept"] == true).unwrap_or(false);
                let code = if accept { verdict_code::ACCEPT } else { verdict_code::REJECT };
                if let Some(v) = &row.verdict
                    && v["result_hash"].as_str() == Some(&record.resultHash.to_string())
                {
                    // Our own verdict needs no signature (we are the evaluator); a panel's
                    // verdict carries its combined signature.
                    let att: Bytes =
                        serde_json::from_value(v["attestation"].clone()).unwrap_or_default();
                    self.inner.chain.attest(id, &record, code, att).await?;
                } else if record.evaluator != self.address() {
                    // A panel bounty whose submitted result is not the one judged: nobody
                    // attests; the review window lapses and the poster is refunded.
                } else {
                    // A different result than the one verified was submitted: reject it.
                    self.inner
                        .chain
                        .attest(id, &record, verdict_code::REJECT, Bytes::new())
                        .await?;
                }
            }
            // Rejected work the provider never submits: refund once the deadline passed.
            (Phase::Settling, Status::Awarded) if t > record.deadline => {
                self.inner.chain.refund_expired(id, &record).await?;
            }
            (Phase::AwaitingPoster, Status::Submitted)
                if t > stamp + u64::from(record.reviewWindow) =>
            {
                self.inner.chain.claim_after_review(id, &record).await?;
            }
            (Phase::AwaitingPoster, Status::Awarded) if t > record.deadline => {
                self.inner.chain.refund_expired(id, &record).await?;
            }
            (_, Status::Rejected) if t > stamp + u64::from(record.challengeWindow) => {
                self.inner.chain.finalize_rejection(id, &record).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Copies the final verdict into the ERC-8004 ValidationRegistry and says so in the
    /// bounty's log. Idempotent (a recorded verdict is found and not sent again); only a
    /// transport error holds the settlement back (the step is retried).
    pub(super) async fn record_validation(
        &self,
        row: &BountyRow,
        id: U256,
        record: &Bounty,
        status: Status,
    ) -> Result<()> {
        use crate::market::validations::Recorded;
        let done = self.inner.validations.record(&self.inner.chain, id, record, status).await?;
        match done {
            Recorded::Recorded { agent_id, request_hash, response, tx } => {
                let line = format!(
                    "ERC-8004 validation recorded for agent {agent_id}: response {response}, request {request_hash} (tx {tx})"
                );
                self.inner.store.log(&row.id, "validation_recorded", &line).await?;
            }
            Recorded::Failed(why) => {
                self.inner.store.log(&row.id, "validation_failed", &why).await?;
            }
            Recorded::AlreadyRecorded { .. } | Recorded::Skipped(_) => {
                tracing::debug!(bounty = %row.id, outcome = ?done, "no validation to record");
            }
        }
        Ok(())
    }

    /// Persists the verdict, signs the attestation and tells the group.
    pub(super) async fn conclude(
        &self,
        row: &BountyRow,
        group: &str,
        record: &Bounty,
        rh: B256,
        v: Verdict,
        result: &Value,
    ) -> Result<()> {
        self.conclude_with(row, group, record, rh, v, result, None).await
    }

    /// [`Self::conclude`] with the attestation given (an evaluator panel's combined signature
    /// and its member signatures) instead of signed by this node.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn conclude_with(
        &self,
        row: &BountyRow,
        group: &str,
        record: &Bounty,
        rh: B256,
        v: Verdict,
        result: &Value,
        panel: Option<(Bytes, Vec<Bytes>)>,
    ) -> Result<()> {
        let id = row.id.id();
        let code = if v.accept { verdict_code::ACCEPT } else { verdict_code::REJECT };
        let (sig, member_sigs) = match panel {
            Some((sig, members)) => (sig, Some(members)),
            None => (self.inner.chain.sign_attestation(id, record.provider, rh, code)?, None),
        };
        // The result is kept for the poster (who is a member of the work group anyway).
        let verdict = json!({ "accept": v.accept, "reason": v.reason, "result_hash": rh, "attestation": sig, "member_sigs": member_sigs, "result": result });
        self.inner.store.set_verdict(&row.id, &verdict).await?;
        let body = json!({
            "kind": "verdict",
            "bounty_id": row.id,
            "accept": v.accept,
            "reason": v.reason,
            "result_hash": rh,
            "verdict": code,
            "attestation": sig,
            "record": RecordJson::from(record),
        });
        self.say(group, &row.id, "verdict", body).await?;
        let moved = self
            .inner
            .store
            .transition(
                &row.id,
                row.phase,
                Phase::Settling,
                &format!("verdict: {} ({})", if v.accept { "accept" } else { "reject" }, v.reason),
            )
            .await?;
        if moved {
            let m = &crate::metrics::METRICS;
            crate::metrics::inc(if v.accept { &m.verdicts_accept } else { &m.verdicts_reject });
        }
        Ok(())
    }
}
