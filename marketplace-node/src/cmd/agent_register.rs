//! `reef agent register`: gives an agent an ERC-8004 identity in the AgentRegistry whose
//! `agentURI` is its registration file on a node (`GET /v1/agents/{address}/registration.json`,
//! [`crate::erc8004`]), then reads the file back.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use clap::Args;
use eyre::{bail, eyre};
use serde_json::{Value, json};

use super::nodeapi::{NodeApi, http_base};

/// Arguments of `reef agent register`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example (the agent has connected to the node once with `reef agent run`):\n  reef agent register --node http://127.0.0.1:7700 --account sorter --json\n\nIdempotent: an identity whose agentURI is already this file is reused (no transaction);\none with another agentURI is pointed here with setAgentURI. Exit status 0 when the file lists\nthe identity, 1 on any error."
)]
pub struct RegisterArgs {
    #[command(flatten)]
    chain: super::chain::ChainArgs,
    /// The node that serves the registration file (http(s) or ws(s) URL); the agent must have
    /// connected to it once so that it knows the agent's card.
    #[arg(long)]
    node: String,
    /// Which of the address's agent ids to point here (default: the oldest, or a new one).
    #[arg(long, value_name = "ID")]
    agent_id: Option<U256>,
    /// Seconds to wait for the node's index to list the identity.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
    /// JSON on stdout: `{"agent_id", "agent_uri", "tx", "registration"}`.
    #[arg(long)]
    json: bool,
}

impl RegisterArgs {
    /// Runs the command.
    pub async fn run(self) -> eyre::Result<()> {
        let client = self.chain.connect().await?;
        let me = client.address();
        let base = http_base(&self.node);
        let api = NodeApi::new(&self.node);
        let path = format!("/v1/agents/{me}/registration.json");
        // The node must know the agent (its card) before its file can be served.
        api.get(&format!("/v1/agents/{me}")).await.map_err(|e| {
            eyre!("the node at {base} does not know agent {me} ({e}); run it there once: `reef agent run --node {} …`", self.node)
        })?;
        let uri = format!("{base}{path}");

        let owned = client.agent_ids_of(me).await?;
        let target = match self.agent_id {
            Some(id) if !owned.contains(&id) => {
                bail!("{me} does not own agent {id} (it owns {owned:?})")
            }
            Some(id) => Some(id),
            None => owned.first().copied(),
        };
        let (agent_id, tx) = match target {
            None => {
                let (id, tx) = client.register_agent(&uri).await?;
                (id, Some(tx.hash))
            }
            Some(id) if client.agent_uri(id).await? == uri => (id, None),
            Some(id) => (id, Some(client.set_agent_uri(id, &uri).await?.hash)),
        };
        if !self.json {
            match tx {
                Some(h) => eprintln!("agent {agent_id}: agentURI {uri} (tx {h})"),
                None => eprintln!("agent {agent_id}: agentURI already {uri}"),
            }
        }

        // The file lists the identity once the node's index has seen it.
        let t0 = Instant::now();
        let registration = loop {
            let file = api.get(&path).await.map_err(|e| eyre!("GET {uri}: {e}"))?;
            if lists(&file, agent_id) {
                break file;
            }
            if t0.elapsed() > Duration::from_secs(self.wait_secs) {
                bail!(
                    "the node's index does not list agent {agent_id} after {} s (is its embedded indexer running and caught up?): {file}",
                    self.wait_secs
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        if self.json {
            let out = json!({ "agent_id": agent_id.to_string(), "agent_uri": uri, "tx": tx, "registration": registration });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("{}", serde_json::to_string_pretty(&registration)?);
        }
        Ok(())
    }
}

/// Whether a registration file's `registrations` name `id`.
fn lists(file: &Value, id: U256) -> bool {
    file["registrations"].as_array().is_some_and(|r| {
        r.iter().any(|e| match &e["agentId"] {
            Value::Number(n) => n.as_u64().map(U256::from) == Some(id),
            Value::String(s) => s.parse::<U256>().ok() == Some(id),
            _ => false,
        })
    })
}
