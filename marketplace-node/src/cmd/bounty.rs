//! `reef bounty` (being written).

use clap::Args;

/// Arguments of `reef bounty`.
#[derive(Debug, Args)]
pub struct BountyArgs {}

impl BountyArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        eyre::bail!("`reef bounty` is not available in this build")
    }
}
