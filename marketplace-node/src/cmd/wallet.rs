//! `reef wallet`: encrypted keystores in the format `cast wallet` reads and writes (Web3 Secret
//! Storage, scrypt), kept in Foundry's keystore folder so both tools see the same accounts.
//! Every command that signs takes `--account NAME` or `--keystore FILE` to use one.

use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;
use clap::{Args, Subcommand};
use escrow_client::wallet;
use eyre::eyre;
use serde_json::json;

use super::chain::password_for;

/// Manage encrypted keystores.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  reef wallet new deployer                 # asks for a password\n  reef wallet import agent1 --password-file pw.txt   # the key is read from stdin or a prompt\n  reef wallet list --json\n  reef wallet address --account deployer --password-file pw.txt\n  reef bounty post --account deployer --rpc-url $RPC …   # any signing command"
)]
pub struct WalletArgs {
    #[command(subcommand)]
    cmd: WalletCmd,
}

#[derive(Debug, Subcommand)]
enum WalletCmd {
    /// Create a new random key, encrypted under a password, as keystore NAME.
    #[command(after_help = "Example:\n  reef wallet new deployer --password-file pw.txt --json")]
    New(NewArgs),
    /// Encrypt an existing private key (read from stdin, never from a flag) as keystore NAME.
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$KEY\" | reef wallet import agent1 --password-file pw.txt\n\nThe key is the first line of stdin (hex, 0x optional); in a terminal it is asked for without echo."
    )]
    Import(ImportArgs),
    /// List the keystores in the folder.
    #[command(after_help = "Example:\n  reef wallet list --json")]
    List(ListArgs),
    /// Print the address of a keystore (decrypts it).
    #[command(
        after_help = "Example:\n  reef wallet address --account deployer --password-file pw.txt"
    )]
    Address(AddressArgs),
}

/// Where keystores live and how to unlock them.
#[derive(Debug, Args)]
struct StoreFlags {
    /// The keystore folder (default: $REEF_KEYSTORE_DIR, else $FOUNDRY_KEYSTORES_DIR, else
    /// ~/.foundry/keystores, where `cast wallet` keeps its accounts).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// File whose first line is the password (else $REEF_KEYSTORE_PASSWORD, else a prompt).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

impl StoreFlags {
    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(wallet::keystore_dir)
    }
}

#[derive(Debug, Args)]
struct NewArgs {
    /// The keystore's name (its file name in the folder).
    name: String,
    #[command(flatten)]
    store: StoreFlags,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The keystore's name (its file name in the folder).
    name: String,
    #[command(flatten)]
    store: StoreFlags,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// The keystore folder (default as for `reef wallet new`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct AddressArgs {
    /// A keystore in the folder, by name.
    #[arg(long, value_name = "NAME", required_unless_present = "keystore")]
    account: Option<String>,
    /// A keystore file anywhere.
    #[arg(long, value_name = "FILE", conflicts_with = "account")]
    keystore: Option<PathBuf>,
    #[command(flatten)]
    store: StoreFlags,
}

impl WalletArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> eyre::Result<()> {
        match self.cmd {
            WalletCmd::New(a) => {
                let dir = a.store.dir();
                let password = password_for(&a.name, a.store.password_file.as_deref(), true)?;
                let key = PrivateKeySigner::random();
                let path = wallet::encrypt(&dir, &a.name, &key, &password)?;
                print_created(&a.name, &key, &path, a.store.json);
            }
            WalletCmd::Import(a) => {
                let dir = a.store.dir();
                let key = read_key_from_stdin()?;
                let password = password_for(&a.name, a.store.password_file.as_deref(), true)?;
                let path = wallet::encrypt(&dir, &a.name, &key, &password)?;
                print_created(&a.name, &key, &path, a.store.json);
            }
            WalletCmd::List(a) => {
                let dir = a.dir.unwrap_or_else(wallet::keystore_dir);
                let entries = wallet::list(&dir)?;
                if a.json {
                    println!("{}", json!({ "dir": dir, "accounts": entries }));
                } else if entries.is_empty() {
                    eprintln!("no keystores in {}", dir.display());
                } else {
                    for e in entries {
                        match e.address {
                            Some(addr) => println!("{} ({addr})", e.name),
                            None => println!("{}", e.name),
                        }
                    }
                }
            }
            WalletCmd::Address(a) => {
                let path = match (&a.account, &a.keystore) {
                    (_, Some(file)) => file.clone(),
                    (Some(name), None) => wallet::account_path(&a.store.dir(), name)?,
                    (None, None) => return Err(eyre!("pass --account NAME or --keystore FILE")),
                };
                let what = path.display().to_string();
                let password = password_for(&what, a.store.password_file.as_deref(), false)?;
                let signer = wallet::decrypt(&path, &password)?;
                if a.store.json {
                    println!("{}", json!({ "address": signer.address(), "keystore": path }));
                } else {
                    println!("{}", signer.address());
                }
            }
        }
        Ok(())
    }
}

fn print_created(name: &str, key: &PrivateKeySigner, path: &std::path::Path, json: bool) {
    if json {
        println!("{}", json!({ "name": name, "address": key.address(), "keystore": path }));
    } else {
        println!("{}", key.address());
        eprintln!("keystore {name:?} written to {}", path.display());
    }
}

/// The private key to import: the first line of stdin, asked for without echo in a terminal.
fn read_key_from_stdin() -> eyre::Result<PrivateKeySigner> {
    use std::io::IsTerminal;
    let line = if std::io::stdin().is_terminal() {
        zeroize::Zeroizing::new(rpassword::prompt_password("private key (hex): ")?)
    } else {
        let mut s = zeroize::Zeroizing::new(String::new());
        std::io::stdin().read_line(&mut s)?;
        s
    };
    if line.trim().is_empty() {
        return Err(eyre!(
            "no private key on stdin: pipe it in (`printf '%s\\n' \"$KEY\" | reef wallet import NAME`)"
        ));
    }
    line.trim()
        .parse::<PrivateKeySigner>()
        .map_err(|_| eyre!("stdin does not hold a hex private key (64 hex digits, 0x optional)"))
}
