//! What posters and agents read about a bounty: its public view and the long-polled follow.

use serde::ser::SerializeMap;

use super::*;
use crate::market::ranking::StoredRanking;

/// A bounty's view ([`Market::view`]): its fields, and for its poster the ranking, written out
/// as the JSON stored with it (`ranking`) rather than converted again for every answer.
#[derive(Debug, Clone)]
pub struct BountyView {
    fields: serde_json::Map<String, Value>,
    ranking: Option<Arc<StoredRanking>>,
}

impl BountyView {
    /// A field of the view (`Value::Null` when it has none); the ranking is not one of them.
    pub fn field(&self, name: &str) -> &Value {
        self.fields.get(name).unwrap_or(&Value::Null)
    }

    /// The view as one JSON value, the ranking included (read back from its JSON).
    pub fn into_value(self) -> Value {
        let mut fields = self.fields;
        if let Some(r) = self.ranking {
            // The JSON was written by serde_json from the ranking: it always reads back.
            let ranking = serde_json::from_str(r.json().get()).unwrap_or(Value::Null);
            fields.insert("ranking".into(), ranking);
        }
        Value::Object(fields)
    }
}

impl serde::Serialize for BountyView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map =
            s.serialize_map(Some(self.fields.len() + usize::from(self.ranking.is_some())))?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        if let Some(r) = &self.ranking {
            map.serialize_entry("ranking", r.json())?;
        }
        map.end()
    }
}

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
    ) -> Result<BountyView> {
        let _slot = match self.inner.long_polls.acquire(client) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(client, bounty = %key, %why, "long-poll declined");
                let mut v = self.view(caller, key).await?;
                v.fields.insert("long_poll_declined".into(), Value::String(why));
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
            let events = v.field("events").as_array().map_or(0, Vec::len);
            let done = matches!(v.field("phase").as_str(), Some("settled" | "failed"));
            if events > after_events || done || tokio::time::Instant::now() >= until {
                tracing::debug!(bounty = %key, events, after_events, phase = %v.field("phase"), "view answered");
                break Ok(v);
            }
            let _ = tokio::time::timeout_at(until, notified).await;
        };
        watchers.unwatch(key, notify);
        answer
    }

    /// A bounty's public view; the poster also sees the ranking and the winning signed bid.
    pub async fn view(&self, caller: Option<Address>, key: &str) -> Result<BountyView> {
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
        let ranking = if is_poster && ranked { self.inner.store.ranking(key).await? } else { None };
        if let Some(r) = &ranking {
            v["winning_bid"] = r.top().map_or(Value::Null, |w| json!(w.signed));
            v["record"] = row.spec["record"].clone();
            v["salt"] = row.spec["salt"].clone();
        }
        let Value::Object(fields) = v else {
            return Err(MarketError::Internal("a view is a JSON object".into()));
        };
        Ok(BountyView { fields, ranking })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::ranking::{RankedBid, SignedBid};

    fn ranking() -> Ranking {
        let signed = SignedBid {
            bid: escrow_client::escrow::BidJson {
                bounty_id: alloy::primitives::U256::from(1),
                terms_hash: alloy::primitives::B256::ZERO,
                bidder: Address::repeat_byte(0x0b),
                amount: "5".into(),
                deadline: 9,
                eta: 60,
                bond: "0".into(),
                nonce: "1".into(),
            },
            signature: alloy::primitives::Bytes::from(vec![0u8; 65]),
        };
        vec![RankedBid {
            bidder: Address::repeat_byte(0x0b),
            price: alloy::primitives::U256::from(5),
            eta_secs: 60,
            score: 0.75,
            components: vec![("price".into(), 0.5, 1.0)],
            signed,
            failed: false,
        }]
    }

    /// The view written out with the ranking's stored JSON is the same JSON as the view with
    /// the ranking converted to a value, and reads back to it.
    #[test]
    fn a_view_writes_the_stored_ranking_as_the_ranking_itself() {
        let Value::Object(fields) = json!({"id": "0x01", "phase": "working"}) else {
            unreachable!("an object")
        };
        let stored = Arc::new(StoredRanking::new(&ranking()).unwrap());
        let view = BountyView { fields, ranking: Some(stored) };
        let expected = json!({
            "id": "0x01",
            "phase": "working",
            "ranking": serde_json::to_value(ranking()).unwrap(),
        });
        let written: Value = serde_json::from_slice(&serde_json::to_vec(&view).unwrap()).unwrap();
        assert_eq!(written, expected);
        assert_eq!(view.field("phase"), "working");
        assert_eq!(view.field("ranking"), &Value::Null, "the ranking is not a field");
        assert_eq!(view.into_value(), expected);
    }
}
