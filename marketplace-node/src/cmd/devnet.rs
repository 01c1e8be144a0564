//! `reef devnet` (being written).

use clap::Args;

/// Arguments of `reef devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {}

impl DevnetArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        eyre::bail!("`reef devnet` is not available in this build")
    }
}
