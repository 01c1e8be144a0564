//! The call for proposals: the bounty's group, the agents invited to it (rendezvous fan-out),
//! agents that come online while it is open, and re-opening a window after a restart.

use super::*;

impl Market {
    /// Re-announces with a new window when this process started after the window opened and
    /// no bid arrived (the node was down while agents tried to bid). Once per bounty.
    pub(super) async fn maybe_reopen(&self, row: &BountyRow) -> Result<bool> {
        let window = row.spec["bid_window_secs"].as_u64().unwrap_or(0);
        let window_ms = row.spec["bid_window_ms"].as_u64().unwrap_or(window * 1000);
        // To the millisecond: `bid_close_at` is rounded up to a whole second, which made a
        // window opened just before a crash look as if this process had opened it.
        let opened_ms = close_ms_of(row).saturating_sub(window_ms);
        if self.inner.started_ms <= opened_ms {
            return Ok(false);
        }
        let reopened =
            self.inner.store.events(&row.id).await?.iter().any(|e| e["event"] == "reopened");
        if reopened || self.inner.store.bid_count(&row.id).await? > 0 {
            return Ok(false);
        }
        // At least REOPEN_MIN_SECS: the agents' connections died with the old process, and
        // the SDK's reconnect back-off grows to 5 s before they can join and bid again.
        let close_ms = (now() + window.max(REOPEN_MIN_SECS)).saturating_mul(1000);
        self.reannounce(
            row,
            close_ms,
            format!("cfp-{}-reopened", row.id),
            "reopened",
            "the node restarted during the bid window; bidding re-opened",
        )
        .await?;
        Ok(true)
    }

    /// Moves an announced window's close to `close_ms`, logs `event`, and sends the call for
    /// proposals again into its group (as message `msg_id`, with the new close), so the
    /// invited agents bid (again). Re-opening after a restart and extending a window without
    /// bids both go through here.
    pub(super) async fn reannounce(
        &self,
        row: &BountyRow,
        close_ms: u64,
        msg_id: String,
        event: &str,
        detail: &str,
    ) -> Result<()> {
        self.inner.store.set_close_ms(&row.id, close_ms).await?;
        self.inner.store.log(&row.id, event, detail).await?;
        let row = self.row(&row.id).await?;
        if let Some(group) = row.cfp_group.as_ref().filter(|_| announced(&row)) {
            let body = self.cfp_body(&row);
            self.send_as_market(group, msg_id, MsgState::Discussion, None, body).await?;
        }
        Ok(())
    }

    pub(super) fn cfp_body(&self, row: &BountyRow) -> Value {
        let skills: Vec<String> =
            serde_json::from_value(row.spec["skills"].clone()).unwrap_or_default();
        json!({
            "kind": "cfp",
            "bounty_id": row.id,
            "record": row.spec["record"],
            "terms_hash": row.spec["terms_hash"],
            "description": row.spec["description"],
            "input": row.spec["input"],
            "skills": skills,
            "verify": row.spec["verify"]["mode"],
            "bid_close_at": row.bid_close_at,
            "bid_close_ms": close_ms_of(row),
            "award_grace_secs": self.inner.cfg.award_grace_secs,
            "chain_id": self.inner.cfg.deployment.chain_id,
            "escrow": self.inner.cfg.deployment.bounty_escrow,
            "from_reward": row.spec["from_reward"],
            "policy": row.spec["policy"],
        })
    }

    /// Sends the call for proposals to matching online agents (once; safe to repeat).
    pub(super) async fn announce(&self, row: &BountyRow) -> Result<usize> {
        if announced(row) || !matches!(row.phase, Phase::Bidding | Phase::Contest) {
            return Ok(0);
        }
        // Right after a restart the agents the previous process held are reconnecting (the
        // SDK backs off up to 5 s): hold the call until they are back or the grace is over,
        // or they would not be invited (the window starts when the call goes out).
        if self.inner.node.reconnecting() > 0 {
            return Ok(0);
        }
        // Exactly one announcement even if the REST handler and the work loop (or two nodes
        // of a mesh) get here at once.
        if !self.inner.store.claim(&row.id, "cfp_group", 30_000, &self.inner.claimant).await? {
            return Ok(0);
        }
        let me = self.address();
        let skills: Vec<String> =
            serde_json::from_value(row.spec["skills"].clone()).unwrap_or_default();
        let poster = row.poster;
        let agents = self
            .inner
            .node
            .discover_without_identities(&AgentQuery {
                // Skills select the agents; the description only ranks them (an empty query
                // matches everyone with the skills, so no capable agent is left out).
                query: String::new(),
                skills: skills.clone(),
                online_only: true,
                limit: Some(100),
                ..Default::default()
            })
            .await?;
        let mut members: Vec<Address> =
            agents.iter().map(|a| a.address).filter(|a| *a != poster && *a != me).collect();
        let fanout = self.inner.cfg.cfp_fanout;
        if fanout > 0 && members.len() > fanout {
            members = fanout_pick(&row.id, members, fanout);
        }
        let group = self
            .inner
            .node
            .create_group(&me, &format!("cfp {}", &row.id[..12]), &members, None)
            .await?;
        // The sealed window runs from the call for proposals, not from the post: under a burst
        // of posts, announcing can take a while, and the agents must get the whole window.
        // Group and close are stored (one write) before the call goes out, so the bids it
        // brings find the row settled (read from the cache, not behind a write in flight). A
        // call lost after this write is sent again by the window's extension (no bid came) or,
        // after a restart, by the re-opening.
        let close_ms = (row.phase == Phase::Bidding).then(|| {
            let window_ms = row.spec["bid_window_ms"]
                .as_u64()
                .unwrap_or_else(|| row.spec["bid_window_secs"].as_u64().unwrap_or(0) * 1000);
            reef_wire::unix_now_ms() + window_ms
        });
        self.inner.store.set_announced(&row.id, &group.group_id, close_ms).await?;
        let row = &self.row(&row.id).await?;
        let body = self.cfp_body(row);
        self.send_as_market(
            &group.group_id,
            format!("cfp-{}", row.id),
            MsgState::Discussion,
            None,
            body,
        )
        .await?;
        self.inner
            .store
            .log(&row.id, "announced", &format!("call for proposals to {} agents", members.len()))
            .await?;
        Ok(members.len())
    }

    /// `agent` came online (connected, reconnected or registered its card on this node or on a
    /// mesh peer without a marketplace): invites it to the open calls for proposals it has the
    /// skills for, while their fan-out has room. Agents online at the call were invited then;
    /// this covers an agent that starts during a window, and one that comes back after its
    /// connection or this node restarted.
    pub(super) async fn invite_latecomer(&self, agent: Address) -> Result<()> {
        let me = self.address();
        if agent == me {
            return Ok(());
        }
        let open = self.inner.store.in_phase(Phase::Bidding, LATE_INVITE_SCAN).await?;
        if open.is_empty() {
            return Ok(());
        }
        // Connected but no card yet: it is considered again when it registers one.
        let info = match self.inner.node.get_agent(&agent).await {
            Ok(info) => info,
            Err(crate::ioa::Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let now_ms = reef_wire::unix_now_ms();
        for row in open {
            let Some(group) = row.cfp_group.as_deref().filter(|_| announced(&row)) else {
                continue;
            };
            if now_ms >= close_ms_of(&row) || row.poster == agent {
                continue;
            }
            let wanted: Vec<String> =
                serde_json::from_value(row.spec["skills"].clone()).unwrap_or_default();
            if !crate::ioa::has_skills(&info.card, &wanted) {
                continue;
            }
            // Room is checked and taken in one step: latecomers arriving together (or seen by
            // several nodes of a mesh) cannot push the call past its fan-out.
            let fanout = self.inner.cfg.cfp_fanout;
            let cap = if fanout == 0 { usize::MAX } else { fanout };
            if !self.inner.node.invite_capped(&me, group, &agent, cap).await? {
                continue;
            }
            self.inner
                .store
                .log(&row.id, "invited", &format!("{agent} came (back) online during the window"))
                .instrument(tracing::info_span!("late_invite", bounty = %row.id, agent = %agent))
                .await?;
        }
        Ok(())
    }
}
