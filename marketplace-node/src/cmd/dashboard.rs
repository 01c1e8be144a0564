//! `reef dashboard login`: a login for the node's dashboard (the pages `reef node` serves at
//! `/`), made by signing the node's challenge with the account's key here, so the key never
//! goes near a browser.

use alloy::signers::local::PrivateKeySigner;
use clap::{Args, Subcommand};

use super::nodeapi::{NodeApi, http_base};

/// `reef dashboard`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: reef dashboard login --node http://127.0.0.1:7700 --dev-account 0\n\nOpen the printed URL: the page trades the token for a session cookie (docs/dashboard.md)."
)]
pub struct DashboardArgs {
    #[command(subcommand)]
    cmd: DashboardCmd,
}

#[derive(Debug, Subcommand)]
enum DashboardCmd {
    /// Log in as an account: prints a dashboard URL that logs the browser in (and the token,
    /// to paste in the page's login form instead).
    #[command(
        after_help = "Examples:\n  reef dashboard login --node http://127.0.0.1:7700 --dev-account 0\n  REEF_PRIVATE_KEY=0x… reef dashboard login --node http://node.example:7700 --json"
    )]
    Login(LoginArgs),
}

/// Arguments of `reef dashboard login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The node (http(s)://host:port).
    #[arg(long, env = "REEF_NODE", default_value = "http://127.0.0.1:7700")]
    node: String,
    /// Hex private key of the account to log in as.
    #[arg(long, env = "REEF_PRIVATE_KEY", hide_env_values = true, conflicts_with = "dev_account")]
    key: Option<String>,
    /// Log in as anvil's N-th development account (local devnets only).
    #[arg(long, value_name = "N")]
    dev_account: Option<usize>,
    /// Print `{"url", "token", "address"}` as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl DashboardArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> eyre::Result<()> {
        match self.cmd {
            DashboardCmd::Login(a) => a.run().await,
        }
    }
}

impl LoginArgs {
    fn signer(&self) -> eyre::Result<PrivateKeySigner> {
        super::nodeapi::login_signer(self.key.as_deref(), self.dev_account)
    }

    async fn run(self) -> eyre::Result<()> {
        let signer = self.signer()?;
        let mut api = NodeApi::new(&self.node);
        api.login(&signer)
            .await
            .map_err(|e| eyre::eyre!("login at {} failed: {e}", http_base(&self.node)))?;
        let token = api
            .token()
            .ok_or_else(|| eyre::eyre!("the node answered the login without a token"))?
            .to_string();
        let url = format!("{}/#login={token}", http_base(&self.node));
        if self.json {
            println!(
                "{}",
                serde_json::json!({ "url": url, "token": token, "address": signer.address() })
            );
        } else {
            eprintln!(
                "logged in as {}; open the URL (it logs the browser in and is then removed from the address bar), or paste the token in the page's login form:",
                signer.address()
            );
            println!("{url}");
            println!("token: {token}");
        }
        Ok(())
    }
}
