//! `reef group retention|erase|purge`: the privacy lifecycle of group messages. `retention`
//! and `erase` go through a node's REST API (signed in with the account's key); `purge` runs
//! the node's own deletion sweep directly on a database (an operator's command).

use alloy::signers::local::PrivateKeySigner;
use clap::{Args, Subcommand};
use serde_json::json;

use super::nodeapi::{NodeApi, http_base};
use crate::ioa::store::{Store, now_ms};

/// `reef group`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  reef group retention g_1a2b… --ttl 7d --dev-account 0\n  reef group erase g_1a2b… --key $KEY\n  reef group purge --database-url sqlite://.reef/node.db"
)]
pub struct GroupArgs {
    #[command(subcommand)]
    cmd: GroupCmd,
}

#[derive(Debug, Subcommand)]
enum GroupCmd {
    /// Set how long a group you created keeps its messages (older ones are deleted, not
    /// hidden, and never replayed), or `--keep` to keep everything.
    #[command(
        after_help = "Examples:\n  reef group retention g_1a2b… --ttl 24h --node http://127.0.0.1:7700 --dev-account 0\n  reef group retention g_1a2b… --keep --key $KEY --json"
    )]
    Retention(RetentionArgs),
    /// Delete every message you sent to a group (you must be a member).
    #[command(
        after_help = "Example: reef group erase g_1a2b… --node http://127.0.0.1:7700 --key $KEY"
    )]
    Erase(EraseArgs),
    /// Delete now, in a node's database, every message past its group's retention, and on
    /// SQLite truncate the write-ahead log and vacuum the freed pages, so the bytes are gone
    /// from the files (safe while the node runs; the node also does this every
    /// `--retention-sweep-secs`).
    #[command(
        after_help = "Example: reef group purge --database-url sqlite://.reef/node.db --json"
    )]
    Purge(PurgeArgs),
}

/// Who signs in, and where.
#[derive(Debug, Args)]
struct Login {
    /// The node (http(s)://host:port).
    #[arg(long, env = "REEF_NODE", default_value = "http://127.0.0.1:7700")]
    node: String,
    /// Hex private key of the account.
    #[arg(long, env = "REEF_PRIVATE_KEY", hide_env_values = true, conflicts_with = "dev_account")]
    key: Option<String>,
    /// Anvil's N-th development account (local devnets only).
    #[arg(long, value_name = "N")]
    dev_account: Option<usize>,
    /// JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl Login {
    fn signer(&self) -> eyre::Result<PrivateKeySigner> {
        super::nodeapi::login_signer(self.key.as_deref(), self.dev_account)
    }

    async fn api(&self) -> eyre::Result<NodeApi> {
        let signer = self.signer()?;
        let mut api = NodeApi::new(&self.node);
        api.login(&signer)
            .await
            .map_err(|e| eyre::eyre!("login at {} failed: {e}", http_base(&self.node)))?;
        Ok(api)
    }
}

/// Arguments of `reef group retention`.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// The group id.
    group_id: String,
    /// Keep messages this long (e.g. `90s`, `30m`, `24h`, `7d`).
    #[arg(long, value_parser = parse_ttl, conflicts_with = "keep", required_unless_present = "keep")]
    ttl: Option<u64>,
    /// Keep every message (no retention).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    login: Login,
}

/// Arguments of `reef group erase`.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The group id.
    group_id: String,
    #[command(flatten)]
    login: Login,
}

/// Arguments of `reef group purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The node's database: sqlite://path or postgres://…
    #[arg(long, env = "REEF_DATABASE_URL", default_value = "sqlite://.reef/node.db")]
    database_url: String,
    /// JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// `90s`, `30m`, `24h`, `7d` or plain seconds, at least one second.
fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 =
        num.parse().map_err(|_| format!("`{s}` is not a duration like 90s, 30m, 24h, 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit `{other}` (s, m, h or d)")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err("a retention must be at least 1s (--keep keeps everything)".into()),
        Some(v) => Ok(v),
        None => Err(format!("`{s}` is too long")),
    }
}

impl GroupArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> eyre::Result<()> {
        match self.cmd {
            GroupCmd::Retention(a) => {
                let api = a.login.api().await?;
                let secs = if a.keep { None } else { a.ttl };
                let out = api
                    .put(
                        &format!("/v1/groups/{}/retention", a.group_id),
                        json!({ "retention_secs": secs }),
                    )
                    .await
                    .map_err(|e| eyre::eyre!("{e}"))?;
                if a.login.json {
                    println!("{out}");
                } else {
                    match secs {
                        Some(s) => {
                            println!("{}: messages older than {s} s are deleted", a.group_id)
                        }
                        None => println!("{}: every message is kept", a.group_id),
                    }
                }
            }
            GroupCmd::Erase(a) => {
                let api = a.login.api().await?;
                let out = api
                    .delete(&format!("/v1/groups/{}/messages/mine", a.group_id))
                    .await
                    .map_err(|e| eyre::eyre!("{e}"))?;
                if a.login.json {
                    println!("{out}");
                } else {
                    println!("{}: {} of your messages deleted", a.group_id, out["erased"]);
                }
            }
            GroupCmd::Purge(a) => {
                let store = Store::connect(&a.database_url).await?;
                let deleted = store.purge_expired(now_ms()).await?;
                let vacuumed = store.vacuum_freed().await?;
                let log_emptied = store.checkpoint().await?;
                if a.json {
                    println!(
                        "{}",
                        json!({ "deleted": deleted, "vacuumed": vacuumed, "log_emptied": log_emptied })
                    );
                } else {
                    println!(
                        "{deleted} expired messages deleted; freed pages {}; write-ahead log {}",
                        if vacuumed { "vacuumed" } else { "not vacuumed" },
                        if log_emptied {
                            "emptied"
                        } else {
                            "still in use by a reader (run again)"
                        }
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("5w").is_err());
        assert!(parse_ttl("x").is_err());
        assert!(parse_ttl("99999999999999999999d").is_err());
    }
}
