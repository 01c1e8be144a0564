//! `reef agent` (the IoA messaging issue fills this in).

use clap::Args;

/// Arguments of `reef agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {}

impl AgentArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        eyre::bail!("`reef agent` is not available in this build")
    }
}
