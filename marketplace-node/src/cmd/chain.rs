//! Shared plumbing for commands that talk to the chain: connection flags, key loading, amount
//! and duration parsing, progress spinners and output.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::{
    primitives::{Address, U256, utils::parse_units},
    signers::local::PrivateKeySigner,
};
use clap::Args;
use escrow_client::{
    ClientOptions, Deployment, ReefClient,
    devnet::dev_signer,
    wallet::{self, Password, WalletError},
};
use eyre::{Context, eyre};
use indicatif::{ProgressBar, ProgressStyle};

/// Flags selecting the chain, the deployment and the signing key.
#[derive(Debug, Clone, Args)]
pub struct ChainArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, global = true, env = "REEF_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// Directory holding `<chainId>.json` deployment files.
    #[arg(long, global = true, env = "REEF_DEPLOYMENTS", default_value = "deployments")]
    pub deployments: PathBuf,
    /// Hex private key that signs transactions.
    #[arg(
        long,
        global = true,
        env = "REEF_PRIVATE_KEY",
        hide_env_values = true,
        conflicts_with = "dev_account"
    )]
    pub key: Option<String>,
    /// Use anvil's N-th development account instead of --key (local chains only).
    #[arg(long, global = true, value_name = "N", conflicts_with_all = ["account", "keystore"])]
    pub dev_account: Option<usize>,
    /// Sign with the named keystore in Foundry's folder (~/.foundry/keystores, or
    /// $REEF_KEYSTORE_DIR): see `reef wallet`.
    #[arg(long, global = true, value_name = "NAME", conflicts_with_all = ["key", "keystore"])]
    pub account: Option<String>,
    /// Sign with this encrypted keystore file (the JSON `cast wallet` writes).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "key")]
    pub keystore: Option<PathBuf>,
    /// File whose first line is the keystore's password (else $REEF_KEYSTORE_PASSWORD, else a
    /// prompt on the terminal).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Accept --key (a raw hex private key) on a chain that is not a local devnet (31337, 1337).
    #[arg(long, global = true)]
    pub allow_raw_key: bool,
    /// Confirmations to wait for after inclusion.
    #[arg(long, global = true, default_value_t = 1)]
    pub confirmations: u64,
    /// Fee caps and stuck-transaction replacement.
    #[command(flatten)]
    pub fees: FeeArgs,
}

/// The EIP-1559 fee policy of a command's transactions.
#[derive(Debug, Clone, Args)]
pub struct FeeArgs {
    /// Never sign a transaction with a max fee per gas above this many gwei.
    #[arg(long, global = true, value_name = "GWEI", value_parser = escrow_client::fees::parse_gwei)]
    pub max_fee_gwei: Option<u128>,
    /// Never tip (max priority fee per gas) above this many gwei.
    #[arg(long, global = true, value_name = "GWEI", value_parser = escrow_client::fees::parse_gwei)]
    pub max_priority_fee_gwei: Option<u128>,
    /// Replace a transaction not mined within this long with higher fees at the same nonce
    /// (0s = never).
    #[arg(long, global = true, default_value = "60s", value_parser = parse_duration)]
    pub replace_after: Duration,
}

impl FeeArgs {
    /// The policy these flags describe.
    pub fn policy(&self) -> escrow_client::fees::FeePolicy {
        escrow_client::fees::FeePolicy {
            max_fee_per_gas: self.max_fee_gwei,
            max_priority_fee_per_gas: self.max_priority_fee_gwei,
            replace_after: self.replace_after,
            ..Default::default()
        }
    }
}

impl ChainArgs {
    /// The signing key from `--key`, `--account`, `--keystore` or `--dev-account` (default:
    /// dev account 0 on chain 31337). A raw `--key` is refused off local chains unless
    /// `--allow-raw-key`.
    pub fn signer(&self, chain_id: u64) -> eyre::Result<PrivateKeySigner> {
        if let Some(s) = self.key_spec().resolve(Some(chain_id))? {
            return Ok(s);
        }
        match (self.dev_account, chain_id) {
            (Some(i), 31337) => escrow_client::devnet::dev_signer_checked(i)
                .map_err(|e| eyre!("--dev-account: {e}")),
            (Some(_), other) => {
                Err(eyre!("--dev-account only works on a local anvil chain (31337), not {other}"))
            }
            (None, 31337) => Ok(dev_signer(0)),
            (None, _) => Err(eyre!(
                "no signing key: pass --account NAME (a keystore, see `reef wallet`), --keystore FILE, or --key <hex> with --allow-raw-key"
            )),
        }
    }

    /// Whether any key flag was given.
    fn has_key(&self) -> bool {
        self.key.is_some()
            || self.account.is_some()
            || self.keystore.is_some()
            || self.dev_account.is_some()
    }

    fn key_spec(&self) -> KeySpec<'_> {
        KeySpec {
            key_flag: "--key",
            key: self.key.as_deref(),
            account: self.account.as_deref(),
            keystore: self.keystore.as_deref(),
            password_file: self.password_file.as_deref(),
            allow_raw_key: self.allow_raw_key,
        }
    }

    /// Connects: reads the chain id, loads its deployment file, checks the chain, builds a client.
    pub async fn connect(&self) -> eyre::Result<ReefClient> {
        self.connect_as(false).await
    }

    /// [`ChainArgs::connect`] for commands that only read: without --key (on a chain where
    /// no dev key applies) it reads with a throwaway key instead of refusing.
    pub async fn connect_read(&self) -> eyre::Result<ReefClient> {
        self.connect_as(true).await
    }

    async fn connect_as(&self, read_only: bool) -> eyre::Result<ReefClient> {
        let chain_id = ReefClient::probe(&self.rpc_url, self.opts())?.chain_id_on_rpc().await?;
        let signer = match self.signer(chain_id) {
            Err(_) if read_only && !self.has_key() => PrivateKeySigner::random(),
            other => other?,
        };
        let path = Deployment::path_in(&self.deployments, chain_id);
        let dep = Deployment::load(&path)?;
        let client = ReefClient::connect(&self.rpc_url, signer, dep, self.opts()).await?;
        for (name, addr) in client.deployment().contracts() {
            if !client.has_code(addr).await? {
                return Err(eyre!(
                    "{name} has no code at {addr} on chain {chain_id}: {} is stale (was the devnet restarted?). Run `reef devnet up` or redeploy",
                    path.display()
                ));
            }
        }
        Ok(client)
    }

    fn opts(&self) -> ClientOptions {
        ClientOptions {
            confirmations: self.confirmations,
            fees: self.fees.policy(),
            ..ClientOptions::default()
        }
    }
}

/// Parses a token reference: `eth`, `test` (the devnet token), or an address.
pub fn parse_token(s: &str, dep: &Deployment) -> eyre::Result<Address> {
    match s.to_ascii_lowercase().as_str() {
        "eth" | "native" => Ok(Address::ZERO),
        "test" | "rusd" => dep
            .test_token
            .ok_or_else(|| eyre!("this chain has no test token; pass an ERC-20 address")),
        other => other
            .parse()
            .map_err(|e| eyre!("--token {s:?} is neither eth, test nor an address: {e}")),
    }
}

/// Parses a human amount (`5`, `0.25`) into base units with `decimals`.
pub fn parse_amount(s: &str, decimals: u8) -> eyre::Result<U256> {
    use alloy::primitives::utils::ParseUnits;
    let parsed = parse_units(s.trim(), decimals).map_err(|e| {
        eyre!("amount {s:?} is not a decimal number with at most {decimals} decimals: {e}")
    })?;
    let v = match parsed {
        ParseUnits::U256(v) => v,
        ParseUnits::I256(_) => return Err(eyre!("amount {s:?} is negative")),
    };
    if v.is_zero() {
        return Err(eyre!("amount must be greater than zero"));
    }
    Ok(v)
}

/// Parses `90s`, `10m`, `1h`, `2d` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 =
        num.parse().map_err(|_| format!("{s:?} is not a duration like 90s, 10m, 1h or 2d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3_600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}; use s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// Like [`parse_duration`], and also milliseconds (`500ms`): for a sealed-bid window, which
/// machine bidders answer in well under a second.
pub fn parse_window(s: &str) -> Result<Duration, String> {
    match s.trim().strip_suffix("ms") {
        Some(n) => n
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{s:?} is not a duration like 500ms, 10s or 5m")),
        None => parse_duration(s),
    }
}

/// Parses a bounty id given as hex (`0x…`) or decimal.
pub fn parse_bounty_id(s: &str) -> eyre::Result<U256> {
    let s = s.trim();
    let r = if let Some(hex) = s.strip_prefix("0x") {
        U256::from_str_radix(hex, 16)
    } else {
        U256::from_str_radix(s, 10)
    };
    r.wrap_err_with(|| format!("bounty id {s:?} is not a hex or decimal number"))
}

/// A spinner on stderr (hidden when stderr is not a terminal).
pub fn spinner(msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("static template"),
    );
    pb.enable_steady_tick(Duration::from_millis(100));
    pb.set_message(msg.into());
    pb
}

/// Short form of a 256-bit id for tables.
pub fn short_id(id: U256) -> String {
    let s = format!("{id:#066x}");
    format!("{}…{}", &s[..10], &s[s.len() - 6..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("42").unwrap(), Duration::from_secs(42));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("500ms").is_err(), "only windows take milliseconds");
        assert_eq!(parse_window("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_window("3s").unwrap(), Duration::from_secs(3));
        assert!(parse_window("fastms").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("5", 18).unwrap(), U256::from(5u128 * 10u128.pow(18)));
        assert_eq!(parse_amount("0.25", 6).unwrap(), U256::from(250_000u64));
        assert!(parse_amount("0", 18).is_err());
        assert!(parse_amount("-1", 18).is_err());
        assert!(parse_amount("abc", 18).is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(parse_bounty_id("0x10").unwrap(), U256::from(16));
        assert_eq!(parse_bounty_id("16").unwrap(), U256::from(16));
        assert!(parse_bounty_id("0xzz").is_err());
    }
}

/// Which key signs, from one command's flags: a raw hex key, a named keystore, or a keystore
/// file (at most one; clap enforces it). Shared by `ChainArgs`, `reef agent run` and `reef node`.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec<'a> {
    /// The flag that carries a raw key (for messages).
    pub key_flag: &'static str,
    /// The raw hex key.
    pub key: Option<&'a str>,
    /// A keystore name in the keystore folder.
    pub account: Option<&'a str>,
    /// A keystore file.
    pub keystore: Option<&'a Path>,
    /// The password file.
    pub password_file: Option<&'a Path>,
    /// Accept a raw key off local chains.
    pub allow_raw_key: bool,
}

impl KeySpec<'_> {
    /// The signer these flags name, or `None` if none is set. `chain_id` `None` = not known
    /// (no chain): a raw key is then accepted.
    pub fn resolve(&self, chain_id: Option<u64>) -> eyre::Result<Option<PrivateKeySigner>> {
        if let Some(k) = self.key {
            return Ok(Some(wallet::raw_key(self.key_flag, k, chain_id, self.allow_raw_key)?));
        }
        let path = match (self.account, self.keystore) {
            (Some(name), _) => wallet::account_path(&wallet::keystore_dir(), name)?,
            (None, Some(file)) => file.to_path_buf(),
            (None, None) => return Ok(None),
        };
        let what = self.account.map_or_else(|| path.display().to_string(), str::to_string);
        let password = password_for(&what, self.password_file, false)?;
        Ok(Some(wallet::decrypt(&path, &password)?))
    }
}

/// The password of keystore `what`: `file`'s first line, else $REEF_KEYSTORE_PASSWORD, else a
/// prompt on the terminal (asked twice when `confirm`, for a new keystore).
pub fn password_for(what: &str, file: Option<&Path>, confirm: bool) -> eyre::Result<Password> {
    if let Some(f) = file {
        return Ok(Password::from_file(f)?);
    }
    if let Ok(p) = std::env::var(wallet::PASSWORD_ENV)
        && !p.is_empty()
    {
        return Ok(Password::new(p));
    }
    if std::io::stdin().is_terminal() {
        let p = zeroize::Zeroizing::new(rpassword::prompt_password(format!(
            "password for keystore {what}: "
        ))?);
        if confirm {
            let again = zeroize::Zeroizing::new(rpassword::prompt_password("repeat it: ")?);
            if *again != *p {
                return Err(eyre!("the two passwords differ; nothing was written"));
            }
        }
        return Ok(Password::new(p.as_str()));
    }
    Err(WalletError::NoPassword { what: what.to_string(), env: wallet::PASSWORD_ENV }.into())
}
