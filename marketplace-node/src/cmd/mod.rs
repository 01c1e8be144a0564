//! One module per `reef` subcommand, each with an `XArgs` struct and `async fn run(self)`.

pub mod agent;
pub mod bounty;
pub mod chain;
pub mod demo;
pub mod devnet;
pub mod node;
