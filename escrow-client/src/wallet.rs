//! Keys kept in Foundry-compatible encrypted keystores (the Web3 Secret Storage JSON that
//! `cast wallet new|import` writes and `cast wallet address|sign` reads), plus the rules for raw
//! hex keys. Named keystores live in one folder, Foundry's `~/.foundry/keystores` unless
//! `REEF_KEYSTORE_DIR` or `FOUNDRY_KEYSTORES_DIR` say otherwise, one file per name.
//!
//! This module reads and writes files and decides which key a command signs with; it never
//! prints or logs a key or a password.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};

/// Result alias with this module's [`WalletError`].
pub type Result<T, E = WalletError> = std::result::Result<T, E>;

/// Everything that can go wrong finding, decrypting or writing a key.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// No keystore of this name in the folder.
    #[error(
        "no keystore named {name:?} in {}: `reef wallet list` shows the names there; `reef wallet import {name}` or `cast wallet import {name}` adds one",
        dir.display()
    )]
    NoSuchAccount {
        /// The name asked for.
        name: String,
        /// The folder searched.
        dir: PathBuf,
    },
    /// A keystore of this name already exists (it is never overwritten).
    #[error("a keystore named {name:?} already exists at {}; pick another name or remove the file", path.display())]
    Exists {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
    },
    /// The name would escape the keystore folder or is empty.
    #[error("{0:?} is not a keystore name: use letters, digits, '-', '_' or '.', not a path")]
    BadName(String),
    /// The file could not be read or decrypted.
    #[error("cannot open keystore {}: {reason}", path.display())]
    Decrypt {
        /// The keystore file.
        path: PathBuf,
        /// Why (a wrong password says so).
        reason: String,
    },
    /// The key could not be encrypted or written.
    #[error("cannot write keystore in {}: {reason}", dir.display())]
    Write {
        /// The folder.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A password is needed and none was given.
    #[error(
        "the keystore {what} needs a password: pass --password-file FILE, set {env}, or run in a terminal to be asked"
    )]
    NoPassword {
        /// The keystore (name or file).
        what: String,
        /// The environment variable that may hold it.
        env: &'static str,
    },
    /// The password file could not be read.
    #[error("cannot read the password file {}: {source}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A raw hex key was given for a chain that is not a local devnet.
    #[error(
        "{flag} (a raw private key) is refused on chain {chain_id}: keep real keys in a keystore (`reef wallet import NAME`, then --account NAME), or pass --allow-raw-key if you accept the risk"
    )]
    RawKeyRefused {
        /// The flag that carried the key.
        flag: &'static str,
        /// The chain.
        chain_id: u64,
    },
    /// The hex key does not parse.
    #[error("{flag} is not a valid hex private key (64 hex digits, optionally 0x-prefixed)")]
    BadKey {
        /// The flag that carried the key.
        flag: &'static str,
    },
    /// The folder could not be listed.
    #[error("cannot list {}: {source}", dir.display())]
    List {
        /// The folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The environment variable holding a keystore password (never echoed).
pub const PASSWORD_ENV: &str = "REEF_KEYSTORE_PASSWORD";

/// Chain ids of local development chains (anvil, hardhat, ganache), where raw keys are fine.
pub fn is_local_chain(chain_id: u64) -> bool {
    matches!(chain_id, 31337 | 1337)
}

/// The folder of named keystores: `$REEF_KEYSTORE_DIR`, else `$FOUNDRY_KEYSTORES_DIR`, else
/// `$HOME/.foundry/keystores` (where `cast wallet import` writes).
pub fn keystore_dir() -> PathBuf {
    for var in ["REEF_KEYSTORE_DIR", "FOUNDRY_KEYSTORES_DIR"] {
        if let Some(d) = std::env::var_os(var).filter(|d| !d.is_empty()) {
            return PathBuf::from(d);
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".foundry").join("keystores")
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(WalletError::BadName(name.to_string())) }
}

/// The file of the keystore `name` in `dir` (it must exist).
pub fn account_path(dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(WalletError::NoSuchAccount { name: name.to_string(), dir: dir.to_path_buf() })
    }
}

/// Decrypts the keystore file at `path`.
pub fn decrypt(path: &Path, password: &Password) -> Result<PrivateKeySigner> {
    PrivateKeySigner::decrypt_keystore(path, password.expose()).map_err(|e| {
        let text = e.to_string();
        let reason = if text.contains("Mac Mismatch") || text.contains("MacMismatch") {
            "wrong password".to_string()
        } else {
            text
        };
        WalletError::Decrypt { path: path.to_path_buf(), reason }
    })
}

/// Encrypts `key` into a new keystore `name` in `dir` (created if missing; an existing name is
/// refused). Returns the file written.
pub fn encrypt(
    dir: &Path,
    name: &str,
    key: &PrivateKeySigner,
    password: &Password,
) -> Result<PathBuf> {
    check_name(name)?;
    let path = dir.join(name);
    if path.exists() {
        return Err(WalletError::Exists { name: name.to_string(), path });
    }
    let write = |reason: String| WalletError::Write { dir: dir.to_path_buf(), reason };
    std::fs::create_dir_all(dir).map_err(|e| write(e.to_string()))?;
    let mut rng = rand08::thread_rng();
    PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rng,
        key.to_bytes(),
        password.expose(),
        Some(name),
    )
    .map_err(|e| write(e.to_string()))?;
    restrict(&path);
    Ok(path)
}

/// Owner-only permissions on a keystore file (best effort, as `cast` leaves them to the umask).
fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// One named keystore in the folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountEntry {
    /// Its name (the file name).
    pub name: String,
    /// The address, when the file records it (Foundry's files do not: decrypt to learn it).
    pub address: Option<Address>,
}

/// The keystores in `dir`, by name (an absent folder has none).
pub fn list(dir: &Path) -> Result<Vec<AccountEntry>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(WalletError::List { dir: dir.to_path_buf(), source }),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| WalletError::List { dir: dir.to_path_buf(), source })?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if !path.is_file() || check_name(&name).is_err() {
            continue;
        }
        // A keystore is JSON with a `crypto` object; anything else in the folder is skipped.
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        if !json.get("crypto").or_else(|| json.get("Crypto")).is_some_and(|c| c.is_object()) {
            continue;
        }
        let address = json
            .get("address")
            .and_then(|a| a.as_str())
            .and_then(|a| format!("0x{}", a.trim_start_matches("0x")).parse().ok());
        out.push(AccountEntry { name, address });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A password, zeroed in memory when dropped; `Debug` never shows it.
pub struct Password(zeroize::Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(p: impl Into<String>) -> Self {
        Self(zeroize::Zeroizing::new(p.into()))
    }

    /// The bytes, for the KDF.
    fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Reads the first line of a password file (the trailing newline is not part of it, as
    /// with `cast --password-file`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
                WalletError::PasswordFile { path: path.to_path_buf(), source }
            })?);
        Ok(Self::new(text.lines().next().unwrap_or("")))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

/// Parses a raw hex key carried by `flag`, refused on a chain that is not local unless
/// `allow_raw` (chain unknown = `None`: allowed, the caller checks once it knows).
pub fn raw_key(
    flag: &'static str,
    hex: &str,
    chain_id: Option<u64>,
    allow_raw: bool,
) -> Result<PrivateKeySigner> {
    let signer: PrivateKeySigner = hex.trim().parse().map_err(|_| WalletError::BadKey { flag })?;
    if let Some(id) = chain_id
        && !allow_raw
        && !is_local_chain(id)
    {
        return Err(WalletError::RawKeyRefused { flag, chain_id: id });
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("reef-wallet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn encrypt_then_decrypt_round_trips_and_a_wrong_password_says_so() {
        let dir = tmp("rt");
        let key = PrivateKeySigner::random();
        let path = encrypt(&dir, "alice", &key, &Password::new("pw")).unwrap();
        assert_eq!(decrypt(&path, &Password::new("pw")).unwrap().address(), key.address());
        let err = decrypt(&path, &Password::new("nope")).unwrap_err().to_string();
        assert!(err.contains("wrong password"), "{err}");
        let again = encrypt(&dir, "alice", &key, &Password::new("pw")).unwrap_err();
        assert!(matches!(again, WalletError::Exists { .. }), "{again}");
        let names: Vec<_> = list(&dir).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["alice"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_cannot_escape_the_folder() {
        for bad in ["", "..", "../x", "a/b", "a b"] {
            assert!(matches!(check_name(bad), Err(WalletError::BadName(_))), "{bad:?}");
        }
        assert!(check_name("deployer.v2_main-1").is_ok());
    }

    #[test]
    fn raw_keys_are_refused_off_local_chains_unless_allowed() {
        let hex = crate::devnet::DEV_KEYS[1];
        assert!(raw_key("--key", hex, Some(31337), false).is_ok());
        assert!(raw_key("--key", hex, None, false).is_ok());
        let err = raw_key("--key", hex, Some(84532), false).unwrap_err();
        assert!(matches!(err, WalletError::RawKeyRefused { chain_id: 84532, .. }));
        assert!(raw_key("--key", hex, Some(84532), true).is_ok());
        let bad = raw_key("--key", "0x12", Some(31337), false).unwrap_err().to_string();
        assert!(!bad.contains("0x12"), "the key is never echoed: {bad}");
    }

    #[test]
    fn debug_of_a_password_hides_it() {
        assert_eq!(format!("{:?}", Password::new("hunter2")), "Password(…)");
    }
}
