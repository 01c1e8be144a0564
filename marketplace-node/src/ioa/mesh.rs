//! Cross-node fan-out over NATS: every sequenced message is published on
//! `reef.ioa.g.<group_id>`; every node subscribes to `reef.ioa.g.>` and feeds its local hub,
//! which delivers in seq order (deduplicating, buffering and filling gaps from the shared DB).
//! Control events (agent updated, member removed, agent notified) go on `reef.ioa.ctl`.

use alloy_primitives::Address;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::Node;
use super::error::{Error, Result};

const MSG_PREFIX: &str = "reef.ioa.g.";
const CTL_SUBJECT: &str = "reef.ioa.ctl";

/// A NATS connection of this node.
#[derive(Debug, Clone)]
pub struct Mesh {
    client: async_nats::Client,
    node_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Ctl {
    AgentUpdated { address: Address },
    Removed { group_id: String, agent: Address },
    Notify { agent: Address, frame: String },
}

/// Group ids are node-generated (`g_<hex>`); anything else is refused as a subject token.
fn subject_safe(group_id: &str) -> bool {
    !group_id.is_empty()
        && group_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Mesh {
    /// Connect to NATS.
    pub async fn connect(url: &str, node_id: &str) -> Result<Self> {
        let client = async_nats::connect(url).await.map_err(|e| Error::Mesh(e.to_string()))?;
        Ok(Self { client, node_id: node_id.to_owned() })
    }

    /// Subscribe and feed `node`'s hub.
    pub async fn spawn_listener(&self, node: Node) -> Result<()> {
        let mut msgs = self
            .client
            .subscribe(format!("{MSG_PREFIX}>"))
            .await
            .map_err(|e| Error::Mesh(e.to_string()))?;
        let mut ctl =
            self.client.subscribe(CTL_SUBJECT).await.map_err(|e| Error::Mesh(e.to_string()))?;
        // Make sure the subscriptions are registered before we serve.
        self.client.flush().await.map_err(|e| Error::Mesh(e.to_string()))?;
        let me = self.node_id.clone();
        let hub = node.hub().clone();
        tokio::spawn(async move {
            while let Some(m) = msgs.next().await {
                let Some(group_id) = m.subject.as_str().strip_prefix(MSG_PREFIX) else { continue };
                let Ok(text) = std::str::from_utf8(&m.payload) else { continue };
                // Payload: "<node_id> <seq>\n<frame>"
                let Some((head, frame)) = text.split_once('\n') else { continue };
                let Some((from, seq)) = head.split_once(' ') else { continue };
                if from == me {
                    continue;
                }
                let Ok(seq) = seq.parse::<u64>() else { continue };
                hub.publish(group_id, seq, Utf8Bytes::from(frame), None);
            }
        });
        let me = self.node_id.clone();
        tokio::spawn(async move {
            while let Some(m) = ctl.next().await {
                let Some((from, body)) =
                    std::str::from_utf8(&m.payload).ok().and_then(|t| t.split_once('\n'))
                else {
                    continue;
                };
                if from == me {
                    continue;
                }
                match serde_json::from_str::<Ctl>(body) {
                    Ok(Ctl::AgentUpdated { address }) => {
                        if let Err(e) = node.reindex_agent(&address).await {
                            tracing::warn!(error = %e, "reindex failed");
                        }
                    }
                    Ok(Ctl::Removed { group_id, agent }) => node.removed_locally(&group_id, &agent),
                    Ok(Ctl::Notify { agent, frame }) => {
                        node.hub().notify_agent(&agent, &Utf8Bytes::from(frame))
                    }
                    Err(e) => tracing::warn!(error = %e, "bad control event"),
                }
            }
        });
        Ok(())
    }

    /// Publish a sequenced message to the other nodes.
    pub async fn publish(&self, group_id: &str, seq: u64, frame: &Utf8Bytes) {
        if !subject_safe(group_id) {
            return;
        }
        let payload = format!("{} {seq}\n{}", self.node_id, frame.as_str());
        if let Err(e) = self.client.publish(format!("{MSG_PREFIX}{group_id}"), payload.into()).await
        {
            // Other nodes recover through gap filling from the shared database.
            tracing::warn!(error = %e, "mesh publish failed");
        }
    }

    async fn ctl(&self, c: &Ctl) {
        let Ok(body) = serde_json::to_string(c) else { return };
        let payload = format!("{}\n{body}", self.node_id);
        if let Err(e) = self.client.publish(CTL_SUBJECT, payload.into()).await {
            tracing::warn!(error = %e, "mesh control publish failed");
        }
    }

    /// Tell other nodes an agent card changed.
    pub async fn agent_updated(&self, address: &Address) {
        self.ctl(&Ctl::AgentUpdated { address: *address }).await;
    }

    /// Tell other nodes a member was removed.
    pub async fn removed(&self, group_id: &str, agent: &Address) {
        self.ctl(&Ctl::Removed { group_id: group_id.into(), agent: *agent }).await;
    }

    /// Deliver a notification frame to the agent's connections on other nodes.
    pub async fn notify(&self, agent: &Address, frame: &Utf8Bytes) {
        self.ctl(&Ctl::Notify { agent: *agent, frame: frame.as_str().to_owned() }).await;
    }
}
