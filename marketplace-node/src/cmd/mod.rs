//! One module per `reef` subcommand, each with an `XArgs` struct and `async fn run(self)`.

pub mod agent;
pub mod agents;
pub mod bounty;
pub mod chain;
pub mod demo;
pub mod demo_market;
pub mod devnet;
pub mod indexer;
pub mod metered_agent;
pub mod node;
pub mod nodeapi;
pub mod pay;
