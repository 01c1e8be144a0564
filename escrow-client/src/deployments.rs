//! `deployments/<chainId>.json`: where Reef's contracts live on a chain.
//!
//! Written by `reef devnet up` (and by `contracts/script/Deploy.s.sol`), read by every command
//! that talks to the chain. The file is the single source of addresses; nothing is hard-coded.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Addresses of one deployment of Reef's contracts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Chain the contracts live on.
    pub chain_id: u64,
    /// Block in which the first contract was deployed (indexers start here).
    pub start_block: u64,
    /// The bounty/job escrow.
    pub bounty_escrow: Address,
    /// Micropayment channels.
    pub payment_channel: Address,
    /// ERC-8004 identity registry with stake bonds.
    pub agent_registry: Address,
    /// ERC-8004 reputation registry gated by paid bounties.
    pub reputation_registry: Address,
    /// ERC-8004 validation registry (the escrow's verdicts as validation responses); absent in
    /// deployments made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_registry: Option<Address>,
    /// Evaluator panels (k-of-n third-party evaluators as one ERC-1271 evaluator); absent in
    /// deployments made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_panel: Option<Address>,
    /// Mintable ERC-20 for development chains (absent on real networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_token: Option<Address>,
}

impl Deployment {
    /// The conventional path of a chain's deployment file under `dir`.
    pub fn path_in(dir: &Path, chain_id: u64) -> PathBuf {
        dir.join(format!("{chain_id}.json"))
    }

    /// Reads a deployment file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Deployment {
            path: path.to_path_buf(),
            reason: format!(
                "{e}; run `reef devnet up` (local) or deploy with contracts/script/Deploy.s.sol"
            ),
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Deployment { path: path.to_path_buf(), reason: e.to_string() })
    }

    /// Writes the file atomically (temp file + rename), creating the directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::Deployment {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Deployment { path: path.to_path_buf(), reason: e.to_string() })?;
        std::fs::write(&tmp, text + "\n").map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// All contract addresses with their names (for code checks and display).
    pub fn contracts(&self) -> Vec<(&'static str, Address)> {
        let mut v = vec![
            ("BountyEscrow", self.bounty_escrow),
            ("PaymentChannel", self.payment_channel),
            ("AgentRegistry", self.agent_registry),
            ("ReputationRegistry", self.reputation_registry),
        ];
        if let Some(a) = self.validation_registry {
            v.push(("ValidationRegistry", a));
        }
        if let Some(p) = self.evaluator_panel {
            v.push(("EvaluatorPanel", p));
        }
        if let Some(t) = self.test_token {
            v.push(("ReefTestToken", t));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_missing_file_error() {
        let dir = std::env::temp_dir().join(format!("reef-dep-{}", std::process::id()));
        let d = Deployment {
            chain_id: 31337,
            start_block: 1,
            bounty_escrow: Address::repeat_byte(1),
            payment_channel: Address::repeat_byte(2),
            agent_registry: Address::repeat_byte(3),
            reputation_registry: Address::repeat_byte(4),
            validation_registry: Some(Address::repeat_byte(5)),
            evaluator_panel: None,
            test_token: None,
        };
        let p = Deployment::path_in(&dir, 31337);
        d.save(&p).unwrap();
        assert_eq!(Deployment::load(&p).unwrap(), d);
        let err = Deployment::load(&dir.join("1.json")).unwrap_err().to_string();
        assert!(err.contains("reef devnet up"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
