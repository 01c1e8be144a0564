//! The work loop: which bounty is stepped when (event- and timer-driven) and which phase's step
//! runs for it.

use super::*;

impl Market {
    /// Runs the work loop until the task is aborted.
    ///
    /// Event-driven (see [`crate::market::scheduler`]): every `tick` the chain view reads the head and
    /// the new escrow events, and the bounties they name are stepped; so are bounties with a new
    /// message in one of their groups and bounties whose timer is due. Every unfinished bounty
    /// is stepped once at start, and again whenever the chain view cannot say what changed (a
    /// reorg, a long gap) or the message feed overflowed.
    pub async fn run(self) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        // The inputs this node's previous process was guarding (assigned, not erased).
        match self.inner.store.protected_assignments().await {
            Ok(rows) => {
                for row in rows {
                    if let (Some(provider), Some(g)) = (row.winner, &row.work_group)
                        && policy_of(&row).is_some_and(|p| !p.onward_sharing)
                    {
                        self.inner.node.terms().protect(provider, &row.id, g, &row.spec["input"]);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading guarded assignments failed"),
        }
        tokio::spawn(self.clone().retention_loop());
        let sched = &self.inner.sched;
        let tick = self.inner.cfg.tick;
        let steps = Arc::new(tokio::sync::Semaphore::new(STEP_CONCURRENCY));
        let mut activity = self.inner.node.group_activity();
        let mut activity_open = true;
        let mut arrivals = self.inner.node.arrivals();
        let mut arrivals_open = true;
        let mut wake_all = true;
        let mut last_sync: Option<std::time::Instant> = None;
        let mut last_sweep = std::time::Instant::now();
        loop {
            if last_sync.is_none_or(|t| t.elapsed() >= tick) {
                last_sync = Some(std::time::Instant::now());
                match self.inner.view.sync().await {
                    Ok(Some(ids)) => {
                        ids.iter().for_each(|id| sched.wake(&crate::market::id_hex(*id)))
                    }
                    Ok(None) => wake_all = true,
                    Err(e) => tracing::warn!(error = %e, "chain sync failed; retrying"),
                }
            }
            while activity_open {
                match activity.try_recv() {
                    Ok(a) => self.on_activity(&a),
                    Err(TryRecvError::Lagged(_)) => wake_all = true,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => activity_open = false,
                }
            }
            // Everything, or (every MAX_IDLE_MS) the unfinished bounties this loop has no plan
            // for: registered by another node of a mesh (whose loop may have died) or missed.
            let sweep = last_sweep.elapsed() >= Duration::from_millis(MAX_IDLE_MS);
            if wake_all || sweep {
                match self.inner.store.active_ids().await {
                    Ok(rows) => {
                        let ids = rows.iter().map(String::as_str);
                        if wake_all {
                            sched.wake_all(ids);
                        } else {
                            sched.wake_unknown(ids);
                        }
                        wake_all = false;
                        last_sweep = std::time::Instant::now();
                    }
                    Err(e) => tracing::warn!(error = %e, "reading unfinished bounties failed"),
                }
            }
            let clock = self.clock_ms();
            for key in sched.take(clock) {
                let (me, steps) = (self.clone(), steps.clone());
                let span = tracing::info_span!("bounty_step", bounty = %key);
                tokio::spawn(
                    async move {
                        let Ok(_permit) = steps.acquire_owned().await else { return };
                        me.step_scheduled(&key).await;
                    }
                    .instrument(span),
                );
            }
            let since_sync = last_sync.map(|t| t.elapsed()).unwrap_or_default();
            let mut wait = tick.saturating_sub(since_sync);
            if let Some(at) = sched.next_timer() {
                wait = wait.min(Duration::from_millis(at.saturating_sub(clock)));
            }
            tokio::select! {
                _ = sched.notified() => {}
                r = activity.recv(), if activity_open => match r {
                    Ok(a) => self.on_activity(&a),
                    Err(RecvError::Lagged(_)) => wake_all = true,
                    Err(RecvError::Closed) => activity_open = false,
                },
                r = arrivals.recv(), if arrivals_open => match r {
                    Ok(agent) => {
                        // Shares the steps' concurrency bound: a burst of agents starting
                        // queues here instead of running its scans all at once.
                        let (me, steps) = (self.clone(), steps.clone());
                        tokio::spawn(async move {
                            let Ok(_permit) = steps.acquire_owned().await else { return };
                            if let Err(e) = me.invite_latecomer(agent).await {
                                tracing::warn!(%agent, error = %e, "inviting an agent that came online failed");
                            }
                        });
                    }
                    // Missed arrivals only miss late invitations; the calls went out.
                    Err(RecvError::Lagged(n)) => tracing::debug!(missed = n, "arrivals lagged"),
                    Err(RecvError::Closed) => arrivals_open = false,
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// A message in one of a bounty's groups wakes the bounty, unless this node sent it: the
    /// step that sent it plans the bounty's next step itself.
    pub(super) fn on_activity(&self, a: &crate::ioa::hub::Activity) {
        if a.sender != Some(self.address()) {
            self.inner.sched.wake_group(&a.group);
        }
    }

    /// The clock timers are compared with: wall time, or the chain's if it is ahead (a devnet
    /// whose time was moved forward).
    pub(super) fn clock_ms(&self) -> u64 {
        let chain = self.inner.view.synced_time().unwrap_or(0).saturating_mul(1000);
        reef_wire::unix_now_ms().max(chain)
    }

    /// Steps one bounty the scheduler handed out, then plans its next step.
    pub(super) async fn step_scheduled(&self, key: &str) {
        let sched = &self.inner.sched;
        let planned = async {
            let Some(row) = self.inner.store.bounty(key).await? else {
                sched.forget(key);
                return Ok(());
            };
            if !matches!(row.phase, Phase::Settled | Phase::Failed) {
                let t0 = std::time::Instant::now();
                self.step(&row).await?;
                tracing::debug!(bounty = %key, phase = ?row.phase, ms = t0.elapsed().as_millis() as u64, "stepped");
            }
            let after = self.row(key).await?;
            self.plan(&after, row.phase);
            Ok::<_, MarketError>(())
        }
        .await;
        if let Err(e) = planned {
            tracing::warn!(bounty = %key, error = %e, "bounty step failed; will retry");
            sched.set_timer(key, reef_wire::unix_now_ms() + RETRY_MS);
        }
        sched.done(key);
    }

    /// After a step: routes the bounty's groups to it, steps it again at once if it changed
    /// phase, and sets the timer for the next instant its step may act on by itself.
    pub(super) fn plan(&self, row: &BountyRow, before: Phase) {
        let sched = &self.inner.sched;
        if matches!(row.phase, Phase::Settled | Phase::Failed) {
            sched.forget(&row.id);
            return;
        }
        let eval_group =
            row.verdict.as_ref().and_then(|v| v["eval_group"].as_str().map(str::to_string));
        for g in row.work_group.iter().chain(eval_group.iter()) {
            // A message may have arrived before the route existed: look once more.
            if !g.starts_with("claimed:") && sched.route(g, &row.id) {
                sched.wake(&row.id);
            }
        }
        if row.phase != before {
            sched.wake(&row.id);
        }
        sched.set_timer(&row.id, self.wake_at(row));
    }

    /// When the bounty's step may next act without an event (unix ms).
    pub(super) fn wake_at(&self, row: &BountyRow) -> u64 {
        let now = self.clock_ms();
        let Ok(record) = Self::record_of(row) else { return now + MAX_IDLE_MS };
        let cached = self.inner.view.cached_status(row.id.id());
        // The status's time stamp (the due time while awarded, the submission or verdict
        // time after); unknown until the chain view has read it.
        let stamp = cached.map(|(_, t)| t);
        let mut at: Vec<u64> = vec![record.deadline];
        match row.phase {
            Phase::Bidding => {
                let close = close_ms_of(row);
                return if !announced(row) || close <= now {
                    now + RETRY_MS
                } else {
                    close.min(now + MAX_IDLE_MS)
                };
            }
            Phase::Contest => at.push(record.deadline + u64::from(record.reviewWindow)),
            Phase::AwaitingAward => {
                // 0 (ranked before the expiry was stored): the idle cap; the step then reads
                // the expiry from the ranking.
                at = (row.award_expiry > 0).then_some(row.award_expiry + 60).into_iter().collect();
            }
            Phase::Working | Phase::Evaluating => at.extend(stamp),
            Phase::Settling | Phase::AwaitingPoster => {
                if let Some(t) = stamp {
                    at.push(t + u64::from(record.reviewWindow));
                    at.push(t + u64::from(record.challengeWindow));
                }
            }
            Phase::Settled | Phase::Failed => {}
        }
        if stamp.is_none() && !matches!(row.phase, Phase::AwaitingAward | Phase::Contest) {
            // The chain view dropped the status (an event named the bounty): that event
            // wakes the bounty anyway; meanwhile look again soon.
            return now + RETRY_MS;
        }
        next_wake(now, &at)
    }

    pub(super) async fn step(&self, row: &BountyRow) -> Result<()> {
        match row.phase {
            Phase::Bidding => {
                if !announced(row) {
                    // Announcing opens the window (counted from the call for proposals); a
                    // window nobody was told about never closes, so it cannot fail unseen.
                    self.announce(row).await?;
                } else if reef_wire::unix_now_ms() >= close_ms_of(row)
                    && !self.maybe_reopen(row).await?
                {
                    self.close(row).await?;
                }
            }
            Phase::Contest => {
                self.announce(row).await?;
                self.contest(row).await?;
            }
            Phase::AwaitingAward => self.await_award(row).await?,
            Phase::Working => self.work(row).await?,
            Phase::Evaluating => self.evaluating(row).await?,
            Phase::Settling | Phase::AwaitingPoster => self.settle(row).await?,
            Phase::Settled | Phase::Failed => {}
        }
        Ok(())
    }
}
