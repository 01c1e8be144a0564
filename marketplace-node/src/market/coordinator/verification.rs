//! Verification: the delivered result is checked by the bounty's verification mode (schema,
//! command, tests, an evaluator panel or the poster's review) and a verdict recorded.

use super::*;

impl Market {
    /// Hands the provider's result to the evaluator panel: one group with the members, one
    /// request; the pending verdict (result, hash, group) is persisted before anything else
    /// happens, so a restart resumes collecting. The request names the provider: members sign
    /// `Attestation(id, provider, resultHash, verdict)`.
    pub(super) async fn request_evaluation(
        &self,
        row: &BountyRow,
        provider: Address,
        members: &[Address],
        quorum: u8,
        result: &Value,
    ) -> Result<()> {
        let me = self.address();
        let rh = result_hash(result);
        let group = self
            .inner
            .node
            .create_group(&me, &format!("evaluate {}", &row.id[..12]), members, None)
            .await?;
        let pending = json!({ "pending": true, "result": result, "result_hash": rh, "eval_group": group.group_id, "quorum": quorum });
        self.inner.store.set_verdict(&row.id, &pending).await?;
        let body = json!({
            "kind": "evaluate",
            "bounty_id": row.id,
            "description": row.spec["description"],
            "input": row.spec["input"],
            "result": result,
            "result_hash": rh,
            "provider": provider,
            "quorum": quorum,
            "chain_id": self.inner.cfg.deployment.chain_id,
            "escrow": self.inner.cfg.deployment.bounty_escrow,
        });
        self.send_as_market(
            &group.group_id,
            format!("evaluate-{}-{rh}", row.id),
            MsgState::Discussion,
            None,
            body,
        )
        .await?;
        self.inner
            .store
            .transition(
                &row.id,
                Phase::Working,
                Phase::Evaluating,
                &format!("result sent to {} evaluator(s); {quorum} must agree", members.len()),
            )
            .await?;
        Ok(())
    }

    /// Collects the panel's signed evaluations; a quorum of matching verdicts becomes the
    /// panel's attestation. Signatures are checked here (signer = sender, a member, this chain
    /// and escrow, the judged result), so a bad one never reaches the chain.
    pub(super) async fn evaluating(&self, row: &BountyRow) -> Result<()> {
        let me = self.address();
        let id = row.id.id();
        let (record, status, _) = self.chain_record(row).await?;
        if status.is_terminal() || status != Status::Awarded {
            return self.settle(row).await;
        }
        if self.inner.view.chain_time().await? > record.deadline {
            self.inner.chain.refund_expired(id, &record).await?;
            return Ok(());
        }
        let Some(pending) = row.verdict.clone() else { return Ok(()) };
        let spec = Self::verify_spec(row)?;
        let Some((quorum, _, members)) = spec.panel() else { return Ok(()) };
        let (Some(group), Ok(rh)) = (
            pending["eval_group"].as_str(),
            serde_json::from_value::<B256>(pending["result_hash"].clone()),
        ) else {
            return Err(MarketError::Internal("pending evaluation without group or hash".into()));
        };
        let mut votes: std::collections::BTreeMap<Address, (u8, Bytes)> = Default::default();
        for m in self.inner.node.history(&me, group, 0, 500).await? {
            let body = &m["body"];
            let Some(from) = m["sender_id"].as_str().and_then(|s| s.parse::<Address>().ok()) else {
                continue;
            };
            if body["kind"] != "evaluation" || !members.contains(&from) || votes.contains_key(&from)
            {
                continue;
            }
            let Some(eval) = crate::market::intake::Evaluation::parse(body) else { continue };
            let verdict = eval.verdict_on(rh).filter(|v| {
                let signer = self.inner.chain.attestation_signer(
                    id,
                    record.provider,
                    rh,
                    *v,
                    &eval.signature,
                    from,
                );
                signer.is_ok()
            });
            let Some(verdict) = verdict else {
                tracing::warn!(bounty = %row.id, evaluator = %from, "ignoring an invalid evaluation");
                continue;
            };
            votes.insert(from, (verdict, eval.signature));
        }
        for code in [verdict_code::ACCEPT, verdict_code::REJECT] {
            let agreeing: Vec<(Address, Bytes)> = votes
                .iter()
                .filter(|(_, (v, _))| *v == code)
                .map(|(a, (_, s))| (*a, s.clone()))
                .take(usize::from(quorum))
                .collect();
            if agreeing.len() < usize::from(quorum) {
                continue;
            }
            let member_sigs: Vec<Bytes> = agreeing.iter().map(|(_, s)| s.clone()).collect();
            let sig =
                escrow_client::panel::encode_signature(id, record.provider, rh, code, agreeing);
            let accept = code == verdict_code::ACCEPT;
            let v = Verdict {
                accept,
                reason: format!(
                    "{quorum} of {} evaluators {}",
                    members.len(),
                    if accept { "accepted" } else { "rejected" }
                ),
            };
            let work_group = row.work_group.clone().unwrap_or_default();
            return self
                .conclude_with(
                    row,
                    &work_group,
                    &record,
                    rh,
                    v,
                    &pending["result"],
                    Some((sig, member_sigs)),
                )
                .await;
        }
        if votes.len() == members.len() {
            let events = self.inner.store.events(&row.id).await?;
            if !events.iter().any(|e| e["event"] == "no_quorum") {
                self.inner
                    .store
                    .log(
                        &row.id,
                        "no_quorum",
                        "the evaluators disagree; the poster is refunded at the deadline",
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Once a panel bounty is final, pays the members who signed its verdict (or refunds the
    /// poster's fee budget if the panel never decided). Idempotent; a deterministic revert is
    /// logged and not retried forever.
    pub(super) async fn settle_panel_fees(
        &self,
        row: &BountyRow,
        record: &Bounty,
        status: Status,
    ) -> Result<()> {
        let Some(panel_addr) = self.inner.cfg.deployment.evaluator_panel else { return Ok(()) };
        if record.evaluator != panel_addr {
            return Ok(());
        }
        let id = row.id.id();
        match self.inner.chain.panel_of(id).await? {
            Some(p) if !p.fees_settled => {}
            _ => return Ok(()),
        }
        let v = row.verdict.clone().unwrap_or_default();
        let sigs: Vec<Bytes> = serde_json::from_value(v["member_sigs"].clone()).unwrap_or_default();
        let code = match status {
            Status::Completed => verdict_code::ACCEPT,
            Status::Refunded => verdict_code::REJECT,
            _ if v["accept"] == true => verdict_code::ACCEPT,
            _ => verdict_code::REJECT,
        };
        match self.inner.chain.settle_panel_fees(id, record, code, sigs).await {
            Ok(tx) => {
                self.inner
                    .store
                    .log(&row.id, "panel_fees", &format!("evaluator fees settled (tx {})", tx.hash))
                    .await?;
            }
            Err(e @ escrow_client::Error::Revert { .. }) => {
                self.inner.store.log(&row.id, "panel_fees_failed", &e.to_string()).await?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}
