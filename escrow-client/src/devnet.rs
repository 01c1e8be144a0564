//! A local development chain: find and start `anvil`, wait until it answers, stop it.
//!
//! The anvil binary comes from the repo's pinned npm toolchain (`node_modules/@foundry-rs/…`),
//! from `$REEF_ANVIL`, or from `PATH`, in that order of preference.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{primitives::B256, signers::local::PrivateKeySigner};

use crate::{Error, Result};

/// Anvil's well-known development keys (from its default mnemonic); public knowledge, for
/// local chains only.
pub const DEV_KEYS: [&str; 6] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
];

/// The `i`-th dev key, or why not: only anvil's first [`DEV_KEYS`] are known (the CLI's
/// `--dev-account` and `--market-dev-account` use this, so an index past them is an error
/// instead of another account).
pub fn dev_signer_checked(i: usize) -> std::result::Result<PrivateKeySigner, String> {
    if i >= DEV_KEYS.len() {
        return Err(format!(
            "dev account {i} is not one of the {} funded dev accounts this build knows (0..={}); pass --key instead",
            DEV_KEYS.len(),
            DEV_KEYS.len() - 1
        ));
    }
    Ok(dev_signer(i))
}

/// The `i`-th anvil development signer (wraps around past [`DEV_KEYS`]: tests only; the CLI
/// uses [`dev_signer_checked`]).
pub fn dev_signer(i: usize) -> PrivateKeySigner {
    let key: B256 = DEV_KEYS[i % DEV_KEYS.len()].parse().expect("constant key is valid hex");
    PrivateKeySigner::from_bytes(&key).expect("constant key is a valid secp256k1 scalar")
}

/// Locates a Foundry tool (`anvil`, `forge`, `cast`).
pub fn find_tool(name: &str) -> Result<PathBuf> {
    let env_key = format!("REEF_{}", name.to_uppercase());
    if let Ok(p) = std::env::var(&env_key) {
        return Ok(PathBuf::from(p));
    }
    let rel = format!("node_modules/@foundry-rs/{name}-linux-amd64/bin/{name}");
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    roots.extend(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().map(Path::to_path_buf));
    if let Some(found) = roots.iter().map(|r| r.join(&rel)).find(|p| p.is_file()) {
        return Ok(found);
    }
    if let Some(paths) = std::env::var_os("PATH")
        && let Some(found) =
            std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file())
    {
        return Ok(found);
    }
    Err(Error::ToolMissing {
        tool: name.to_string(),
        hint: format!("run `npm ci` in the repo root (or `make deps`), or set {env_key}"),
    })
}

/// Asks the OS for a free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Devnet(format!("no free port: {e}")))?;
    l.local_addr().map(|a| a.port()).map_err(|e| Error::Devnet(e.to_string()))
}

/// Free ports [`AnvilProcess::spawn`] tries before it gives up.
pub const PORT_TRIES: u32 = 3;

/// How a start-up failure of anvil begins (its port taken, for one).
const EXITED_AT_START: &str = "anvil exited during start-up";

/// Options for starting anvil.
#[derive(Debug, Clone)]
pub struct AnvilOptions {
    /// Port to listen on (0 = pick a free one).
    pub port: u16,
    /// Chain id to report.
    pub chain_id: u64,
    /// Seconds per block (None = automine every transaction).
    pub block_time: Option<u64>,
    /// Where anvil's stdout/stderr go (None = discarded).
    pub log_file: Option<PathBuf>,
}

impl Default for AnvilOptions {
    fn default() -> Self {
        Self { port: 0, chain_id: 31337, block_time: None, log_file: None }
    }
}

/// A running anvil process. Killed on drop unless [`AnvilProcess::detach`] is called.
#[derive(Debug)]
pub struct AnvilProcess {
    child: Option<Child>,
    /// Port anvil listens on.
    pub port: u16,
    /// HTTP JSON-RPC endpoint.
    pub rpc_url: String,
    /// Chain id anvil reports.
    pub chain_id: u64,
}

impl AnvilProcess {
    /// Starts anvil and waits (up to 20 s) until it answers JSON-RPC. With `port` 0 the port
    /// is picked free and released before anvil binds it, so another process can take it in
    /// between (parallel tests do): anvil then exits at start-up, and a new port is tried, up
    /// to [`PORT_TRIES`] times.
    pub async fn spawn(opts: AnvilOptions) -> Result<Self> {
        if opts.port != 0 {
            return Self::spawn_on(opts.port, &opts).await;
        }
        let mut tries = 1;
        loop {
            match Self::spawn_on(free_port()?, &opts).await {
                Err(Error::Devnet(e)) if tries < PORT_TRIES && e.contains(EXITED_AT_START) => {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn spawn_on(port: u16, opts: &AnvilOptions) -> Result<Self> {
        let bin = find_tool("anvil")?;
        let mut cmd = Command::new(&bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &opts.chain_id.to_string()])
            .stdin(Stdio::null());
        if let Some(bt) = opts.block_time {
            cmd.args(["--block-time", &bt.to_string()]);
        }
        match &opts.log_file {
            Some(path) => {
                let f = std::fs::File::create(path)
                    .map_err(|e| Error::Devnet(format!("cannot create {}: {e}", path.display())))?;
                let f2 = f.try_clone().map_err(|e| Error::Devnet(e.to_string()))?;
                cmd.stdout(f).stderr(f2);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Own process group: a Ctrl-C in the terminal does not kill a detached devnet.
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::Devnet(format!("cannot start {}: {e}", bin.display())))?;
        let mut me = Self {
            child: Some(child),
            port,
            rpc_url: format!("http://127.0.0.1:{port}"),
            chain_id: opts.chain_id,
        };
        me.wait_ready(Duration::from_secs(20)).await?;
        Ok(me)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::Devnet(format!(
                    "{EXITED_AT_START} ({status}); is port {} taken?",
                    self.port
                )));
            }
            if rpc_answers(&self.rpc_url).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Devnet(format!(
                    "anvil did not answer on {} within {timeout:?}",
                    self.rpc_url
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// OS process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Leaves anvil running after this value is dropped; returns its pid.
    pub fn detach(mut self) -> Option<u32> {
        self.child.take().map(|c| c.id())
    }

    /// Stops anvil now.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for AnvilProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True if `url` answers `eth_chainId`.
pub async fn rpc_answers(url: &str) -> bool {
    use alloy::providers::{Provider, ProviderBuilder};
    let Ok(parsed) = url.parse() else { return false };
    let p = ProviderBuilder::new().disable_recommended_fillers().connect_http(parsed);
    tokio::time::timeout(Duration::from_secs(2), p.get_chain_id()).await.is_ok_and(|r| r.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_signers_are_anvils() {
        use alloy::primitives::address;
        assert_eq!(dev_signer(0).address(), address!("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"));
        assert_eq!(dev_signer(1).address(), address!("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"));
    }

    #[test]
    fn missing_tool_says_what_to_do() {
        let err = find_tool("definitely-not-a-foundry-tool").unwrap_err().to_string();
        assert!(err.contains("npm ci"), "{err}");
    }
}
