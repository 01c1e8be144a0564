//! One module per `reef` subcommand, each with an `XArgs` struct and `async fn run(self)`.

pub mod agent;
pub mod agent_register;
pub mod agents;
pub mod bounty;
pub mod chain;
pub mod dashboard;
pub mod demo;
pub mod demo_market;
pub mod deploy;
pub mod devnet;
pub mod group;
pub mod indexer;
pub mod mcp;
pub mod metered_agent;
pub mod node;
pub mod nodeapi;
pub mod pay;
pub mod swarm;
pub mod wallet;

/// A command's end that is not a success and was already reported on stdout (`--json`) or
/// stderr: `reef` prints `message` on stderr and exits with `code`, so a script can tell the
/// ends apart (each command's `--help` lists its codes).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The process exit status (never 0).
    pub code: u8,
    /// One line on what happened.
    pub message: String,
}
