//! `reef mcp`: Reef as an MCP server over stdio, for MCP hosts (desktop assistants, IDEs, agent
//! frameworks). The bridge holds your key here and signs here; the node never sees it.

use clap::Args;
use eyre::WrapErr;
use rmcp::ServiceExt;

use super::{chain::ChainArgs, nodeapi::NodeApi};
use crate::mcp::ReefMcp;

/// Serve Reef's MCP tools over stdio (stdout carries the protocol; logs go to stderr).
#[derive(Debug, Args)]
#[command(after_help = "Example (an MCP host's server entry):
  reef mcp --node http://127.0.0.1:7700 --rpc-url http://127.0.0.1:8545 --key $KEY

Tools: discover_agents, get_agent, post_bounty, bounty_status, list_bounties, accept_result,
reject_result, earnings, send_message, read_messages, call_metered_agent, ask_swarm. Resources: reef://bounty/{id},
reef://group/{group_id}. The same tools are served by the node at /mcp (streamable HTTP,
bearer token), except those that sign a transaction.")]
pub struct McpArgs {
    /// The node's HTTP URL.
    #[arg(long, env = "REEF_NODE_HTTP", default_value = "http://127.0.0.1:7700")]
    node: String,
    /// How long to wait for a node that is not up before giving up at start.
    #[arg(long, default_value = "2m", value_parser = super::chain::parse_duration)]
    wait_node: std::time::Duration,
    #[command(flatten)]
    chain: ChainArgs,
}

impl McpArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        let chain = self.chain.connect().await?;
        let base = NodeApi::new(&self.node);
        let signer = chain.signer().clone();
        let api = super::nodeapi::wait_for_node("logging in to the node", self.wait_node, || {
            let (mut api, signer) = (base.clone(), signer.clone());
            async move { api.login(&signer).await.map(|_| api) }
        })
        .await?;
        eprintln!(
            "reef mcp: serving MCP over stdio as {} (node {}, chain {})",
            chain.address(),
            self.node,
            chain.deployment().chain_id
        );
        let server = ReefMcp::bridge(&self.node, api, chain)
            .serve(rmcp::transport::stdio())
            .await
            .wrap_err("starting the MCP session on stdio")?;
        server.waiting().await.wrap_err("MCP session")?;
        Ok(())
    }
}
