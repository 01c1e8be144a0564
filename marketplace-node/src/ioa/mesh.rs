//! Cross-node fan-out over NATS: every sequenced message is published on
//! `reef.<mesh>.ioa.g.<group_id>`; every node subscribes to `reef.<mesh>.ioa.g.>` and feeds its
//! local hub, which delivers in seq order (deduplicating, buffering and filling gaps from the
//! shared DB). Control events (agent updated, member removed, agent notified) go on
//! `reef.<mesh>.ioa.ctl`. Request/reply services of the mesh (the marketplace gateway,
//! `crate::market::gateway`) use `reef.<mesh>.<service>`. `<mesh>` is the mesh id, kept in the
//! nodes' shared database: two meshes on one NATS server never see each other's traffic (an
//! agent connected to both would otherwise be told of the other mesh's invitations).

use alloy_primitives::Address;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::Node;
use super::error::{Error, Result};

/// Group messages: `reef.<mesh>.` + this + the group id.
const MSG_SERVICE: &str = "ioa.g.";
/// Control events: `reef.<mesh>.` + this.
const CTL_SERVICE: &str = "ioa.ctl";

/// A NATS connection of this node.
#[derive(Debug, Clone)]
pub struct Mesh {
    client: async_nats::Client,
    node_id: String,
    mesh_id: String,
    /// `reef.<mesh>.ioa.g.`: group messages are published under it (made once, not per message).
    msg_prefix: String,
    /// `reef.<mesh>.ioa.ctl`.
    ctl_subject: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Ctl {
    /// `registered`: the agent registered on a node where no marketplace listens, so the
    /// marketplaces of other nodes treat it as a registration of theirs (late invitations).
    AgentUpdated {
        address: Address,
        #[serde(default)]
        registered: bool,
    },
    Removed {
        group_id: String,
        agent: Address,
    },
    Notify {
        agent: Address,
        frame: String,
    },
    /// The agent connected to a node where no marketplace listens (a start or a reconnect).
    Online {
        address: Address,
    },
}

/// A subject of mesh `mesh_id`: `reef.<mesh id>.<service>`.
fn subject(mesh_id: &str, service: &str) -> String {
    format!("reef.{mesh_id}.{service}")
}

/// Group ids are node-generated (`g_<hex>`); anything else is refused as a subject token.
fn subject_safe(group_id: &str) -> bool {
    !group_id.is_empty()
        && group_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Mesh {
    /// Connect to NATS. `mesh_id` names the mesh (all its nodes share one database, which
    /// holds it); it keeps the subjects of two meshes on one NATS server apart.
    pub async fn connect(url: &str, node_id: &str, mesh_id: &str) -> Result<Self> {
        let client = async_nats::connect(url).await.map_err(|e| Error::Mesh(e.to_string()))?;
        Ok(Self {
            client,
            node_id: node_id.to_owned(),
            mesh_id: mesh_id.to_owned(),
            msg_prefix: subject(mesh_id, MSG_SERVICE),
            ctl_subject: subject(mesh_id, CTL_SERVICE),
        })
    }

    /// The NATS connection (request/reply services of the mesh).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The subject of a request/reply service of this mesh: `reef.<mesh id>.<service>`.
    pub fn service_subject(&self, service: &str) -> String {
        subject(&self.mesh_id, service)
    }

    /// Subscribe and feed `node`'s hub.
    pub async fn spawn_listener(&self, node: Node) -> Result<()> {
        let prefix = self.msg_prefix.clone();
        let mut msgs = self
            .client
            .subscribe(format!("{prefix}>"))
            .await
            .map_err(|e| Error::Mesh(e.to_string()))?;
        let mut ctl = self
            .client
            .subscribe(self.ctl_subject.clone())
            .await
            .map_err(|e| Error::Mesh(e.to_string()))?;
        // Make sure the subscriptions are registered before we serve.
        self.client.flush().await.map_err(|e| Error::Mesh(e.to_string()))?;
        let me = self.node_id.clone();
        let hub = node.hub().clone();
        tokio::spawn(async move {
            while let Some(m) = msgs.next().await {
                let Some(group_id) = m.subject.as_str().strip_prefix(prefix.as_str()) else {
                    continue;
                };
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
                    Ok(Ctl::AgentUpdated { address, registered }) => {
                        if let Err(e) = node.reindex_agent(&address).await {
                            tracing::warn!(error = %e, "reindex failed");
                        }
                        if registered {
                            node.arrived_elsewhere(address);
                        }
                    }
                    Ok(Ctl::Online { address }) => node.arrived_elsewhere(address),
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
        let subject = format!("{}{group_id}", self.msg_prefix);
        if let Err(e) = self.client.publish(subject, payload.into()).await {
            // Other nodes recover through gap filling from the shared database.
            tracing::warn!(error = %e, "mesh publish failed");
        }
    }

    async fn ctl(&self, c: &Ctl) {
        let Ok(body) = serde_json::to_string(c) else { return };
        let payload = format!("{}\n{body}", self.node_id);
        if let Err(e) = self.client.publish(self.ctl_subject.clone(), payload.into()).await {
            tracing::warn!(error = %e, "mesh control publish failed");
        }
    }

    /// Tell other nodes an agent card changed; `registered`: it registered here and no
    /// marketplace on this node heard it.
    pub async fn agent_updated(&self, address: &Address, registered: bool) {
        self.ctl(&Ctl::AgentUpdated { address: *address, registered }).await;
    }

    /// Tell other nodes an agent connected here while no marketplace on this node listens.
    pub async fn agent_online(&self, address: &Address) {
        self.ctl(&Ctl::Online { address: *address }).await;
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
