//! Work: the provider delivers in the work group before its promised time; a provider that goes
//! silent is replaced by the runner-up (take-over).

use super::*;

impl Market {
    /// Reads the work group for the provider's result; verifies; signs the verdict.
    pub(super) async fn work(&self, row: &BountyRow) -> Result<()> {
        let me = self.address();
        let Some(group) = row.work_group.as_ref().filter(|g| !g.starts_with("claimed:")) else {
            return self.assign(row).await;
        };
        let (record, status, _) = self.chain_record(row).await?;
        if status.is_terminal() {
            self.inner
                .store
                .transition(
                    &row.id,
                    Phase::Working,
                    Phase::Settled,
                    &format!("settled on-chain: {status}"),
                )
                .await?;
            return Ok(());
        }
        if matches!(status, Status::Awarded)
            && self.inner.view.chain_time().await? > record.deadline
        {
            self.inner.chain.refund_expired(row.id.id(), &record).await?;
            self.inner
                .store
                .transition(
                    &row.id,
                    Phase::Working,
                    Phase::Settled,
                    "provider missed the deadline; poster refunded",
                )
                .await?;
            return Ok(());
        }
        // The award changed hands on-chain (our take-over, or the poster's): assign afresh.
        if matches!(status, Status::Awarded) && row.winner != Some(record.provider) {
            let (_, due) = self.inner.view.status_of(row.id.id()).await?;
            self.inner.store.hand_over(&row.id, record.provider, due).await?;
            self.inner
                .store
                .log(&row.id, "reassigned", &format!("the job is now {}'s", record.provider))
                .await?;
            let fresh = self.row(&row.id).await?;
            return self.assign(&fresh).await;
        }
        let msgs = self.inner.node.history(&me, group, row.cursor, 200).await?;
        // Nothing read from the group yet and our assignment not in it: the node stopped
        // between saving the group and sending the task. Send it now (the provider would
        // otherwise wait for a task that never comes, until its ETA hands the job on).
        if row.cursor == 0
            && !msgs.iter().any(|m| {
                m["sender_id"].as_str().and_then(|s| s.parse::<Address>().ok()) == Some(me)
                    && m["state"] == "task_assignment"
                    && m["task_desc"]["task_id"] == task_id(&row.id)
            })
        {
            self.send_assignment(row, group, &record).await?;
        }
        let mut cursor = row.cursor;
        for m in msgs {
            cursor = cursor.max(m["seq"].as_u64().unwrap_or(cursor));
            let from: Option<Address> = m["sender_id"].as_str().and_then(|s| s.parse().ok());
            if from != Some(record.provider)
                || m["state"] != "execution"
                || m["task_desc"]["task_id"] != task_id(&row.id)
            {
                continue;
            }
            let result = m["body"]["result"].clone();
            let ok = m["body"]["status"] == "done";
            let spec = Self::verify_spec(row)?;
            if ok && let Some((k, _, members)) = spec.panel() {
                self.inner.store.set_cursor(&row.id, cursor).await?;
                return self.request_evaluation(row, record.provider, members, k, &result).await;
            }
            let verdict = if !ok {
                Some(Verdict { accept: false, reason: "the provider reported failure".into() })
            } else {
                self.inner.cfg.verifiers.verify(&spec, &row.spec["input"], &result).await
            };
            let rh = result_hash(&result);
            self.inner.store.set_cursor(&row.id, cursor).await?;
            return match verdict {
                Some(v) => self.conclude(row, group, &record, rh, v, &result).await,
                None => {
                    let body = json!({ "kind": "awaiting_poster", "bounty_id": row.id, "result_hash": rh, "record": RecordJson::from(&record) });
                    self.say(group, &row.id, "await-poster", body).await?;
                    self.inner.store.transition(&row.id, Phase::Working, Phase::AwaitingPoster, "result delivered; the poster decides (auto-accept after the review window)").await?;
                    Ok(())
                }
            };
        }
        self.inner.store.set_cursor(&row.id, cursor).await?;
        if matches!(status, Status::Awarded) {
            let (_, due) = self.inner.view.status_of(row.id.id()).await?;
            // The next block's time: an idle devnet's latest block can be minutes old.
            if self.inner.view.chain_time().await?.max(now()) > due {
                return self.take_over(row, &record, due).await;
            }
        }
        Ok(())
    }

    /// The provider is past the delivery time it signed (`eta`) and has delivered nothing: hand
    /// the job to the best-ranked remaining bidder whose bid is still valid, or refund the poster
    /// if there is none. Only the poster or the evaluator may do this on-chain; when the poster
    /// is its own evaluator the node only records the miss (the poster's CLI can reassign).
    /// Crash-safe: the failure is persisted in the ranking first; the reassignment itself is
    /// read back from the chain on the next pass (`work` reconciles the winner).
    pub(super) async fn take_over(&self, row: &BountyRow, record: &Bounty, due: u64) -> Result<()> {
        let id = row.id.id();
        let late = record.provider;
        let events = self.inner.store.events(&row.id).await?;
        if !events.iter().any(|e| {
            e["event"] == "eta_missed"
                && e["detail"].as_str().is_some_and(|d| d.contains(&late.to_string()))
        }) {
            self.inner
                .store
                .log(&row.id, "eta_missed", &format!("{late} promised delivery by {due}"))
                .await?;
        }
        if record.evaluator != self.address() {
            return Ok(());
        }
        let mut ranking: Ranking = match self.inner.store.ranking(&row.id).await? {
            Some(r) => {
                r.bids().map_err(|e| MarketError::Internal(format!("stored ranking: {e}")))?
            }
            None => Ranking::new(),
        };
        let t = self.inner.view.chain_time().await?.max(now());
        for entry in ranking.iter_mut().filter(|e| e.bidder == late) {
            entry.failed = true;
        }
        // The node calls as the evaluator: the escrow caps the new price at the current one.
        let cap = alloy::primitives::U256::from(record.price);
        let next = next_runner_up(&ranking, late, t, Some((self.address(), cap)));
        let expiry = row.award_expiry;
        self.inner.store.set_ranking(&row.id, ranking, row.winner, expiry).await?;
        match next {
            Some((bid, sig)) => {
                let to = bid.bidder;
                self.inner.chain.reassign(id, record, &bid, sig).await?;
                self.inner
                    .store
                    .log(
                        &row.id,
                        "taken_over",
                        &format!("{late} missed its ETA; the job goes to the runner-up {to}"),
                    )
                    .await?;
            }
            None => {
                self.inner.chain.revoke_award(id, record).await?;
                self.inner
                    .store
                    .transition(
                        &row.id,
                        Phase::Working,
                        Phase::Settled,
                        &format!(
                            "{late} missed its ETA and no other bid is valid; poster refunded"
                        ),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
