//! Retention: ended bounties' task input and result are erased once their terms' (or the
//! node's) retention has passed.

use super::*;

impl Market {
    /// Deletes, every `retention_sweep`, the task input and result of bounties that ended
    /// longer ago than their retention (their terms', else the node's `--task-retention`).
    pub(super) async fn retention_loop(self) {
        let mut tick =
            tokio::time::interval(self.inner.cfg.retention_sweep.max(Duration::from_millis(200)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.erase_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(bounties = n, "task data past its retention deleted"),
                Err(e) => tracing::warn!(error = %e, "task-data retention sweep failed"),
            }
        }
    }

    /// One retention sweep; returns how many bounties' task data was deleted.
    pub async fn erase_expired(&self) -> Result<usize> {
        let now = reef_wire::unix_now_ms();
        let mut erased = 0;
        for (row, ended_ms) in self.inner.store.ended_unerased(256).await? {
            let keep_ms = match policy_of(&row).and_then(|p| p.retention_days) {
                Some(days) => u64::from(days) * 86_400_000,
                None => match self.inner.cfg.task_retention {
                    Some(d) => d.as_millis() as u64,
                    None => continue,
                },
            };
            if ended_ms.saturating_add(keep_ms) > now {
                continue;
            }
            let eval_group =
                row.verdict.as_ref().and_then(|v| v["eval_group"].as_str().map(str::to_string));
            let store = self.inner.node.store();
            for g in row.cfp_group.iter().chain(row.work_group.iter()).chain(eval_group.iter()) {
                if !g.starts_with("claimed:") {
                    store.erase_group(g).await?;
                }
            }
            let mut spec = row.spec.clone();
            spec["input"] = Value::Null;
            spec["erased"] = Value::Bool(true);
            let verdict = row.verdict.clone().map(|mut v| {
                if let Value::Object(o) = &mut v {
                    o.remove("result");
                }
                v
            });
            self.inner.store.erase_task_data(&row.id, &spec, verdict.as_ref()).await?;
            self.inner.node.terms().release(&row.id);
            self.inner
                .store
                .log(&row.id, "erased", "task input and result deleted (retention)")
                .await?;
            erased += 1;
        }
        if erased > 0 {
            self.inner.node.store().checkpoint().await?;
            self.inner.store.checkpoint().await?;
        }
        Ok(erased)
    }
}
