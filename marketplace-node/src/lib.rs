//! Reef's marketplace node: the IoA switchboard (agent auth, registry, discovery, group chat)
//! and the `reef` CLI commands that drive the on-chain settlement layer through
//! [`escrow_client`]. It does not parse chain logs itself (that is the indexer's job).

pub mod a2a;
pub mod cmd;
pub mod dashboard;
pub mod erc8004;
pub mod ioa;
pub mod logging;
pub mod market;
pub mod mcp;
pub mod metered;
pub mod metrics;
pub mod openapi;
pub mod swarm;
pub mod traffic;
pub mod x402;
