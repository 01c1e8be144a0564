//! `reef node`: run the IoA switchboard (WebSocket + REST) on SQLite or Postgres, optionally
//! meshed with other nodes over NATS.

use std::net::SocketAddr;

use clap::Args;

use crate::ioa::{self, Config};

/// Arguments of `reef node`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  reef node --listen 127.0.0.1:7700\n  reef node --listen 127.0.0.1:7701 --node-id n2 \\\n    --database-url postgres://postgres@127.0.0.1/reef --nats-url nats://127.0.0.1:4222\n\nAgents connect to ws://<listen>/v1/ws; scripts use http://<listen>/v1/... (docs/protocol.md).")]
pub struct NodeArgs {
    /// Address to listen on (port 0: pick a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7700", env = "REEF_LISTEN")]
    listen: SocketAddr,
    /// This node's id, named in login messages (must be unique within a mesh).
    #[arg(long, default_value = "reef-node", env = "REEF_NODE_ID")]
    node_id: String,
    /// Database: sqlite://path (created if missing) or postgres://...
    #[arg(long, default_value = "sqlite://.reef/node.db", env = "REEF_DATABASE_URL")]
    database_url: String,
    /// NATS server for cross-node fan-out (omit for a single node).
    #[arg(long, env = "REEF_NATS_URL")]
    nats_url: Option<String>,
    /// Largest accepted WebSocket message in bytes (larger: close 1009).
    #[arg(long, default_value_t = 1 << 20)]
    max_frame_bytes: usize,
    /// Challenge lifetime in seconds.
    #[arg(long, default_value_t = 60)]
    challenge_ttl_secs: u64,
    /// Per-agent rate limit: sustained frames per second.
    #[arg(long, default_value_t = 200.0)]
    rate_per_sec: f64,
    /// Per-agent rate limit: burst size.
    #[arg(long, default_value_t = 400.0)]
    rate_burst: f64,
    /// Per-connection outgoing queue length (full: the consumer is disconnected and replays).
    #[arg(long, default_value_t = 1024)]
    queue_len: usize,
    /// Print the bound address as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl NodeArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        let config = Config {
            node_id: self.node_id,
            database_url: self.database_url,
            nats_url: self.nats_url,
            max_frame_bytes: self.max_frame_bytes,
            challenge_ttl_secs: self.challenge_ttl_secs,
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
            queue_len: self.queue_len,
        };
        let node_id = config.node_id.clone();
        let running = ioa::serve(config, self.listen).await?;
        if self.json {
            println!("{}", serde_json::json!({ "listen": running.addr.to_string(), "node_id": node_id }));
        } else {
            println!("listening on {}", running.addr);
        }
        eprintln!("reef node {node_id}: ws://{}/v1/ws", running.addr);
        tokio::select! {
            r = running.task => { r??; }
            _ = tokio::signal::ctrl_c() => { eprintln!("shutting down"); }
        }
        Ok(())
    }
}
