//! What posters and agents read about a bounty: its public view and the long-polled follow.

use super::*;

impl Market {
    /// [`Self::view`], long-polled: waits up to `wait` (at most [`MAX_VIEW_WAIT`]) until the
    /// bounty's log holds more than `after_events` entries or it is final, then answers. A
    /// client following a bounty asks again with the count it has seen, instead of polling.
    /// `client` names the asker for the long-poll bounds ([`crate::market::longpoll`]): past them the
    /// view is answered at once with a `long_poll_declined` reason.
    pub async fn view_wait(
        &self,
        caller: Option<Address>,
        client: &str,
        key: &str,
        after_events: usize,
        wait: Duration,
    ) -> Result<Value> {
        let _slot = match self.inner.long_polls.acquire(client) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(client, bounty = %key, %why, "long-poll declined");
                let mut v = self.view(caller, key).await?;
                v["long_poll_declined"] = Value::String(why);
                return Ok(v);
            }
        };
        let until = tokio::time::Instant::now() + wait.min(MAX_VIEW_WAIT);
        // Woken by every log line this process appends for the bounty (after its commit), not
        // by every step: a step that changed nothing costs a follower no re-read.
        let watchers = self.inner.store.log_watchers();
        let notify = watchers.watch(key);
        let answer = loop {
            // Registered before the read, so a line appended in between is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let v = match self.view(caller, key).await {
                Ok(v) => v,
                Err(e) => break Err(e),
            };
            let events = v["events"].as_array().map_or(0, Vec::len);
            let done = matches!(v["phase"].as_str(), Some("settled" | "failed"));
            if events > after_events || done || tokio::time::Instant::now() >= until {
                tracing::debug!(bounty = %key, events, after_events, phase = %v["phase"], "view answered");
                break Ok(v);
            }
            let _ = tokio::time::timeout_at(until, notified).await;
        };
        watchers.unwatch(key, notify);
        answer
    }

    /// A bounty's public view; the poster also sees the ranking and the winning signed bid.
    pub async fn view(&self, caller: Option<Address>, key: &str) -> Result<Value> {
        // The log before the row: a transition commits its phase and its log line together, so
        // read this way the phase is never older than the log (a follower waiting for "more
        // events than I saw" would otherwise miss a phase it never saw).
        let (events, bids) = self.inner.store.events_and_bid_count(key).await?;
        let row = self.row(key).await?;
        let is_poster = caller == Some(row.poster);
        let mut v = json!({
            "id": row.id,
            "phase": row.phase,
            "poster": row.poster,
            "bid_close_at": row.bid_close_at,
            "bids": bids,
            "winner": row.winner,
            "cfp_group": row.cfp_group,
            "work_group": row.work_group,
            "verdict": row.verdict.as_ref().map(|v| {
                let mut v = v.clone();
                if !is_poster && let Some(o) = v.as_object_mut() {
                    o.remove("result");
                }
                v
            }),
            "note": row.note,
            "events": events,
            "description": row.spec["description"],
            "verify": row.spec["verify"]["mode"],
            "policy": row.spec["policy"],
            "erased": row.spec["erased"].as_bool().unwrap_or(false),
        });
        // Ranked when the window closed (a contest has entries instead).
        let ranked = !matches!(row.phase, Phase::Bidding | Phase::Contest);
        if is_poster
            && ranked
            && let Some(r) = self.inner.store.ranking(key).await?
        {
            v["ranking"] = serde_json::to_value(&*r)
                .map_err(|e| MarketError::Internal(format!("ranking: {e}")))?;
            v["winning_bid"] = r.first().map_or(Value::Null, |w| json!(w.signed));
            v["record"] = row.spec["record"].clone();
            v["salt"] = row.spec["salt"].clone();
        }
        Ok(v)
    }
}
