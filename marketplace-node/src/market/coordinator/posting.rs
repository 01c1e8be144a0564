//! Posting: a poster registers a bounty with the node (checks of the record, the terms and
//! the task, admission control, the evaluator panel), before its call for proposals goes out.

use super::*;

impl Market {
    /// Registers a bounty from `caller` and announces it. Idempotent per bounty id.
    pub async fn post(&self, caller: Address, req: PostRequest) -> Result<Value> {
        let span = tracing::info_span!(
            "post",
            bounty = %id_hex(bounty_id(caller, req.salt)),
            poster = %caller
        );
        self.post_in_span(caller, req).instrument(span).await
    }

    pub(super) async fn post_in_span(&self, caller: Address, req: PostRequest) -> Result<Value> {
        let cfg = &self.inner.cfg;
        let rules = crate::market::intake::PostRules {
            evaluator: self.address(),
            escrow: cfg.deployment.bounty_escrow,
            panel: cfg.deployment.evaluator_panel,
            verifiers: &cfg.verifiers,
            max_bid_window_secs: cfg.max_bid_window_secs,
            region: cfg.region.as_deref(),
        };
        let crate::market::intake::CheckedPost { record, contest, from_reward, window_ms } =
            crate::market::intake::check_post(&req, caller, &rules)?;
        let id = bounty_id(caller, req.salt);
        let key = id_hex(id);
        // Admission control: a node at its limit refuses new bounties without registering
        // anything (a repeated post of a registered one goes through). Contests have no window.
        let cap = if contest { 0 } else { cfg.max_open_windows as u64 };
        let busy = |open: u64| MarketError::Busy {
            message: format!(
                "this node has {open} bounties in their bid window (its limit, --max-open-windows, is {cap})"
            ),
            // The windows open now drain in about one window each.
            retry_after_ms: window_ms.clamp(BUSY_RETRY_MS, 30_000),
        };
        // Found full a moment ago: refused before any chain read or write.
        let admission =
            if cap > 0 { self.inner.store.admission() } else { Admission::Ask { probe: false } };
        if let Admission::Full(open) = admission
            && self.inner.store.bounty(&key).await?.is_none()
        {
            return Err(busy(open));
        }
        if let Some(parent) = &from_reward {
            self.check_onward_sharing(parent, &req).await?;
        }
        let bad = |m: String| Err(MarketError::BadRequest(m));
        // The head's time as of the last pass (at most a tick old), or wall time if later.
        let chain_now = self.inner.view.chain_time().await?.max(now());
        let close_ms = reef_wire::unix_now_ms() + window_ms;
        // Whole seconds for everything the chain compares (bid validity, deadlines).
        let close = close_ms.div_ceil(1000);
        if record.deadline <= chain_now.max(close) + cfg.award_grace_secs {
            return bad("deadline leaves no time to bid, award and work; extend it".into());
        }
        let fee = self.inner.view.fee_bps().await?;
        if record.feeBps != fee {
            return bad(format!(
                "record.feeBps {} differs from the escrow's current fee {fee}",
                record.feeBps
            ));
        }
        // Through the chain view (from the embedded indexer and the view's scans when they
        // can tell, else `statusOf`): a `None` answer is cached, and the view then builds the
        // record from its own log scan when the poster posts (no full read later).
        let (status, _) = self.inner.view.status_of_new(id).await?;
        if status != Status::None {
            return Err(MarketError::Conflict(format!(
                "bounty {} already exists on-chain ({status})",
                id_hex(id)
            )));
        }
        let verify = match req.verify.panel() {
            Some((_, n, _)) => {
                let members = self.choose_evaluators(caller, usize::from(n)).await?;
                req.verify.with_members(members)
            }
            None => req.verify.clone(),
        };
        let spec = json!({
            "salt": req.salt,
            "record": req.record,
            "terms_hash": terms_hash(&record),
            "description": req.description,
            "input": req.input,
            "skills": req.skills,
            "verify": verify,
            "bid_window_secs": window_ms.div_ceil(1000),
            "bid_window_ms": window_ms,
            "split": req.split,
            "from_reward": from_reward,
            "policy": req.policy,
        });
        // Contests take entries until the deadline instead of bids during a window.
        let (close, phase) =
            if contest { (record.deadline, Phase::Contest) } else { (close, Phase::Bidding) };
        // Admission control in the insert itself.
        let fresh =
            self.inner.store.insert_bounty_in(&key, caller, &spec, close, phase, cap).await?;
        if !fresh && cap > 0 && self.inner.store.bounty(&key).await?.is_none() {
            let open = self.inner.store.count_in_phase(Phase::Bidding).await?;
            self.inner.store.mark_full(open);
            return Err(busy(open));
        }
        if fresh && admission == (Admission::Ask { probe: true }) {
            self.inner.store.probe_admitted();
        }
        if fresh {
            self.inner
                .store
                .log(&key, "posted", &format!("bid window {}", fmt_window(window_ms)))
                .await?;
        }
        let row = self.row(&key).await?;
        let invited = self.announce(&row).await?;
        let reconnecting = self.inner.node.reconnecting();
        if fresh && reconnecting > 0 && !announced(&*self.row(&key).await?) {
            self.inner
                .store
                .log(&key, "held", &format!("the node just restarted: the call for proposals waits for {reconnecting} agents to reconnect (at most {} s)", crate::ioa::RECONNECT_GRACE.as_secs_f32()))
                .await?;
        }
        // The work loop plans the bounty's timers (the window's end) on its first step.
        self.inner.sched.wake(&key);
        let row = self.row(&key).await?;
        // The panel as stored (a repeated post returns the first choice).
        let panel =
            Self::verify_spec(&row)?.panel().map(|(k, _, m)| json!({ "quorum": k, "members": m }));
        Ok(
            json!({ "id": key, "bid_close_at": row.bid_close_at, "bid_close_ms": close_ms_of(&row), "cfp_group": row.cfp_group, "invited": invited, "reconnecting": reconnecting, "new": fresh, "panel": panel }),
        )
    }

    /// A sub-bounty funded from `parent` must not carry the parent's task input when the
    /// parent's terms forbid passing it on (what the node can see: a verbatim copy, or a
    /// sizeable piece of it, in the sub-bounty's input or description).
    pub(super) async fn check_onward_sharing(&self, parent: &str, req: &PostRequest) -> Result<()> {
        let Some(prow) = self.inner.store.bounty(parent).await? else { return Ok(()) };
        if policy_of(&prow).is_none_or(|p| p.onward_sharing) {
            return Ok(());
        }
        let fps = crate::ioa::terms::fingerprints(&prow.spec["input"]);
        let text = format!(
            "{}\n{}",
            crate::ioa::terms::canonical(&req.input),
            Value::String(req.description.clone())
        );
        if crate::ioa::terms::leak(&fps, &text).is_some() {
            return Err(MarketError::Forbidden(format!(
                "the terms of bounty {parent} forbid passing its task input on (policy.onward_sharing = false); this sub-bounty carries it"
            )));
        }
        Ok(())
    }

    /// Picks `n` online evaluator agents (skill `evaluate`) for a panel, best reputation first
    /// (the reputation engine's score, or the neutral prior), ties by address; never the poster
    /// or this node.
    pub(super) async fn choose_evaluators(
        &self,
        poster: Address,
        n: usize,
    ) -> Result<Vec<Address>> {
        let me = self.address();
        let found = self
            .inner
            .node
            .discover_without_identities(&AgentQuery {
                query: String::new(),
                skills: vec!["evaluate".into()],
                online_only: true,
                limit: Some(100),
                ..Default::default()
            })
            .await?;
        let engine = self.reputation_book().await;
        let mut scored: Vec<(f64, Address)> = found
            .iter()
            .map(|a| a.address)
            .filter(|a| *a != poster && *a != me)
            .map(|a| (engine.as_ref().map(|b| b.score(&a).value).unwrap_or(0.5), a))
            .collect();
        scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        scored.dedup_by_key(|x| x.1);
        if scored.len() < n {
            return Err(MarketError::Conflict(format!(
                "only {} evaluator agents (skill `evaluate`) are online; the panel needs {n}",
                scored.len()
            )));
        }
        Ok(scored.into_iter().take(n).map(|(_, a)| a).collect())
    }
}
