//! Bidding: sealed bids are checked and stored while the window is open; at its close they are
//! ranked (or the window is extended when none is valid).

use super::*;

impl Market {
    /// Accepts a sealed bid from `caller`.
    pub async fn bid(&self, caller: Address, key: &str, req: BidRequest) -> Result<Value> {
        let span = tracing::info_span!("bid", bounty = %key, agent = %caller);
        let r = self.check_and_store_bid(caller, key, req).instrument(span.clone()).await;
        let m = &crate::metrics::METRICS;
        crate::metrics::inc(if r.is_ok() { &m.bids_accepted } else { &m.bids_refused });
        span.in_scope(|| match &r {
            Ok(_) => tracing::info!("bid accepted"),
            Err(e) => tracing::info!(error = %e, "bid refused"),
        });
        r
    }

    pub(super) async fn check_and_store_bid(
        &self,
        caller: Address,
        key: &str,
        req: BidRequest,
    ) -> Result<Value> {
        let row = self.row(key).await?;
        if row.phase != Phase::Bidding || reef_wire::unix_now_ms() >= close_ms_of(&row) {
            return Err(MarketError::Conflict("the bid window is closed".into()));
        }
        let record = Self::record_of(&row)?;
        let deployment = &self.inner.cfg.deployment;
        let domain =
            escrow_client::signing::escrow_domain(deployment.chain_id, deployment.bounty_escrow);
        let rules = crate::market::intake::BidRules {
            key: &row.id,
            record: &record,
            bid_close_at: row.bid_close_at,
            award_grace_secs: self.inner.cfg.award_grace_secs,
            domain: &domain,
        };
        let (_, eta_secs) = crate::market::intake::check_bid(&req, caller, &rules)?;
        let cap = self.inner.cfg.bid_capacity;
        if !self.inner.store.upsert_bid(key, &caller.to_string(), &req, eta_secs, cap).await? {
            return Err(MarketError::Conflict(format!(
                "this bounty holds the maximum of {cap} bids"
            )));
        }
        Ok(json!({ "accepted": true, "bid_close_at": row.bid_close_at }))
    }

    /// Closes the window and ranks the bids.
    pub(super) async fn close(&self, row: &BountyRow) -> Result<()> {
        let record = Self::record_of(row)?;
        let bids = self.inner.store.bids(&row.id).await?;
        let mut book: BidBook<(SignedBid, u64)> =
            BidBook::new(U256::from(record.amount), self.inner.cfg.bid_capacity);
        let threshold_gate = self.inner.cfg.deployment.agent_registry;
        let engine = self.reputation_book().await;
        // Evaluators do not judge their own work: panel members cannot win.
        let spec = Self::verify_spec(row)?;
        let judges: Vec<Address> = spec.panel().map(|(_, _, m)| m.to_vec()).unwrap_or_default();
        let parsed: Vec<(&crate::market::store::BidRow, Bid)> = bids
            .iter()
            .filter_map(|b| {
                let bid = Bid::try_from(&b.bid.bid).ok()?;
                (!judges.contains(&bid.bidder)).then_some((b, bid))
            })
            .collect();
        let bidders: Vec<Address> = parsed.iter().map(|(_, bid)| bid.bidder).collect();
        let history = self.inner.store.outcomes_of(&bidders).await.unwrap_or_default();
        // Stakes of all bidders, read concurrently (a failed read counts as no stake).
        let stakes: std::collections::HashMap<Address, U256> = if threshold_gate.is_zero() {
            Default::default()
        } else {
            use futures::StreamExt;
            futures::stream::iter(bidders.iter().copied())
                .map(|a| async move { (a, self.inner.view.stake_of(a).await.unwrap_or_default()) })
                .buffer_unordered(STAKE_READS)
                .collect()
                .await
        };
        for (b, bid) in &parsed {
            let stake = stakes.get(&bid.bidder).copied().unwrap_or_default();
            // Local track record until the indexer-backed reputation engine is wired in:
            // a Beta(1, 1) prior over verified outcomes of the agent's past wins here.
            let (ok, bad) = history.get(&bid.bidder).copied().unwrap_or((0, 0));
            let local = (1.0 + ok as f64) / (2.0 + (ok + bad) as f64);
            // On-chain history (all nodes, value-weighted, Sybil-discounted) from the engine,
            // blended with this node's verified verdicts (which land before refunds do).
            let reputation = Some(match &engine {
                Some(book) if ok + bad > 0 => (book.score(&bid.bidder).value + local) / 2.0,
                Some(book) => book.score(&bid.bidder).value,
                None => local,
            });
            let c = Candidate {
                bidder: bid.bidder,
                price: bid.amount,
                eta_secs: b.eta_secs,
                reputation,
                stake,
            };
            let _ = book.submit(c, (b.bid.clone(), b.eta_secs));
        }
        let max_eta = record.deadline.saturating_sub(row.bid_close_at);
        let ranked = book.close(row.id.id(), max_eta, &self.inner.cfg.scoring);
        let ranking: Ranking = ranked
            .iter()
            .map(|(r, (signed, eta))| RankedBid::new(r, signed.clone(), *eta))
            .collect();
        let winner = ranked.first().map(|(r, _)| r.candidate.bidder);
        let expiry = top_bid_expiry(ranking.first());
        let Some(w) = winner else {
            self.inner.store.set_ranking(&row.id, ranking, None, expiry).await?;
            if !self.extend_window(row, &record).await? {
                self.inner
                    .store
                    .transition(&row.id, Phase::Bidding, Phase::Failed, "no valid bids")
                    .await?;
            }
            return Ok(());
        };
        // The ranking, then the winner with the move in one statement.
        let note = format!("{} bids; winner {w}", ranked.len());
        self.inner
            .store
            .rank_and_move(
                &row.id,
                ranking,
                (w, expiry),
                (Phase::Bidding, Phase::AwaitingAward, &note),
            )
            .await?;
        Ok(())
    }

    /// A window closed without a valid bid: extends it by its own length (at least
    /// [`MIN_EXTENSION_MS`]) and tells the invited agents, up to `max_window_extensions` times
    /// and while the deadline leaves time to bid, award and work. On a loaded machine (or
    /// right after agents reconnected) bids arrive late; the poster funded the work, so the
    /// node's lateness must not fail it. Returns whether it extended.
    pub(super) async fn extend_window(&self, row: &BountyRow, record: &Bounty) -> Result<bool> {
        let max = self.inner.cfg.max_window_extensions;
        if max == 0 {
            return Ok(false);
        }
        let done = self
            .inner
            .store
            .events(&row.id)
            .await?
            .iter()
            .filter(|e| e["event"] == "extended")
            .count() as u32;
        if done >= max {
            return Ok(false);
        }
        let window_ms = row.spec["bid_window_ms"]
            .as_u64()
            .unwrap_or_else(|| row.spec["bid_window_secs"].as_u64().unwrap_or(0) * 1000)
            .max(MIN_EXTENSION_MS);
        let close_ms = reef_wire::unix_now_ms() + window_ms;
        let chain_now = self.inner.view.chain_time().await?.max(now());
        // The winner needs the award grace and some time to work before the deadline.
        let close = close_ms.div_ceil(1000);
        if record.deadline <= chain_now.max(close) + 2 * self.inner.cfg.award_grace_secs {
            return Ok(false);
        }
        let detail = format!(
            "no valid bid yet; bidding extended by {} ({}/{max})",
            fmt_window(window_ms),
            done + 1
        );
        let msg_id = format!("cfp-{}-extended-{}", row.id, done + 1);
        self.reannounce(row, close_ms, msg_id, "extended", &detail).await?;
        Ok(true)
    }
}
