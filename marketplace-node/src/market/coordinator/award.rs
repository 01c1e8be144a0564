//! The award: the poster awards the best bid on-chain (bound to its signature); the node waits
//! for it and tells the winner to start.

use super::*;

impl Market {
    /// Waits for the poster's award on-chain, then assigns the task.
    pub(super) async fn await_award(&self, row: &BountyRow) -> Result<()> {
        let id = row.id.id();
        let (status, stamp) = self.inner.view.status_of(id).await?;
        match status {
            Status::None | Status::Open | Status::Funded => {
                let expiry = match row.award_expiry {
                    0 => self
                        .inner
                        .store
                        .ranking(&row.id)
                        .await?
                        .map_or(0, |r| top_bid_expiry(r.top())),
                    at => at,
                };
                if now() > expiry + 60 {
                    self.inner
                        .store
                        .transition(
                            &row.id,
                            Phase::AwaitingAward,
                            Phase::Failed,
                            "the poster did not award before the winning bid expired",
                        )
                        .await?;
                }
                Ok(())
            }
            _ => {
                self.inner
                    .store
                    .transition_awarded(
                        &row.id,
                        Phase::AwaitingAward,
                        Phase::Working,
                        &format!("awarded on-chain ({status})"),
                        stamp,
                    )
                    .await?;
                let fresh = self.row(&row.id).await?;
                self.assign(&fresh).await
            }
        }
    }

    /// Opens the work group with poster and provider and assigns the task (idempotent).
    pub(super) async fn assign(&self, row: &BountyRow) -> Result<()> {
        let me = self.address();
        let (record, _, _) = self.chain_record(row).await?;
        let provider = record.provider;
        if row.winner != Some(provider) {
            self.inner.store.set_winner(&row.id, provider).await?;
        }
        let group_id = match row.work_group.as_deref().filter(|g| !g.starts_with("claimed:")) {
            Some(g) => g.to_string(),
            None => {
                if !self
                    .inner
                    .store
                    .claim(&row.id, "work_group", 30_000, &self.inner.claimant)
                    .await?
                {
                    return Ok(()); // another worker is opening it
                }
                let poster = row.poster;
                let g = self
                    .inner
                    .node
                    .create_group(
                        &me,
                        &format!("task {}", &row.id[..12]),
                        &[poster, provider],
                        None,
                    )
                    .await?;
                self.inner.store.set_field(&row.id, "work_group", &g.group_id).await?;
                crate::market::crash_point("work_group_saved");
                g.group_id
            }
        };
        self.send_assignment(row, &group_id, &record).await
    }

    /// Sends the task to the provider in the work group and logs it. Idempotent: the message
    /// id is fixed per bounty and provider, so a repeat is a duplicate the group ignores.
    pub(super) async fn send_assignment(
        &self,
        row: &BountyRow,
        group_id: &str,
        record: &Bounty,
    ) -> Result<()> {
        let provider = record.provider;
        let task = json!({
            "task_id": task_id(&row.id),
            "assignee": provider,
            "mode": "sync",
            "input": {
                "bounty_id": row.id,
                "description": row.spec["description"],
                "input": row.spec["input"],
                "record": RecordJson::from(record),
                "verify": row.spec["verify"]["mode"],
                "policy": row.spec["policy"],
            },
        });
        // Terms that forbid passing the input on: the provider's messages elsewhere must not
        // carry it (before the assignment goes out, so no message can slip through first).
        if policy_of(row).is_some_and(|p| !p.onward_sharing) {
            self.inner.node.terms().protect(provider, &row.id, group_id, &row.spec["input"]);
        }
        let body = json!({ "kind": "assignment", "bounty_id": row.id });
        self.send_as_market(
            group_id,
            format!("assign-{}-{provider}", row.id),
            MsgState::TaskAssignment,
            Some(task),
            body,
        )
        .await?;
        self.inner.store.log(&row.id, "assigned", &format!("task assigned to {provider}")).await?;
        Ok(())
    }
}
