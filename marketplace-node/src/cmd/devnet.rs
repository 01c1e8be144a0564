//! `reef devnet up|down|status`: a local anvil chain with Reef's contracts deployed.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, U256, utils::format_ether};
use clap::{Args, Subcommand};
use escrow_client::{
    ClientOptions, Deployment, ReefClient,
    deploy::{DeployConfig, empty_deployment, ensure_deployed},
    devnet::{AnvilOptions, AnvilProcess, dev_signer, rpc_answers},
};
use eyre::{Context, eyre};
use serde::{Deserialize, Serialize};

use super::chain::spinner;

/// Manage a local development chain (anvil + deployed contracts + funded dev accounts).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  reef devnet up            # start anvil on 127.0.0.1:8545, deploy, seed 6 dev accounts
  anvil --block-time 2 --port 8546 & reef devnet up --rpc-url http://127.0.0.1:8546
  reef devnet status --json
  reef devnet down")]
pub struct DevnetArgs {
    #[command(subcommand)]
    cmd: DevnetCmd,
    /// Directory for the devnet's pid/state and anvil log.
    #[arg(long, global = true, default_value = ".reef/devnet")]
    state_dir: PathBuf,
    /// Directory for `<chainId>.json` deployment files.
    #[arg(long, global = true, env = "REEF_DEPLOYMENTS", default_value = "deployments")]
    deployments: PathBuf,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum DevnetCmd {
    /// Start anvil (if not running), deploy the contracts (if not deployed) and seed accounts.
    #[command(after_help = "Example:\n  reef devnet up --port 8545")]
    Up {
        /// Port for anvil's JSON-RPC.
        #[arg(long, default_value_t = 8545)]
        port: u16,
        /// Use this running anvil (started with your own options, e.g. --block-time 2) instead
        /// of starting one: deploy the contracts and test token there and seed the dev
        /// accounts. `reef devnet down` never stops an anvil it did not start.
        #[arg(long, value_name = "URL", conflicts_with = "port")]
        rpc_url: Option<String>,
    },
    /// Stop the devnet started by `reef devnet up`.
    #[command(after_help = "Example:\n  reef devnet down")]
    Down,
    /// Show whether the devnet runs, its block height and contracts.
    #[command(after_help = "Example:\n  reef devnet status --json")]
    Status,
}

/// What `reef devnet up` leaves behind so `down`/`status` can find the process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevnetState {
    pid: u32,
    port: u16,
    rpc_url: String,
    chain_id: u64,
    log_file: PathBuf,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    running: bool,
    rpc_url: Option<String>,
    pid: Option<u32>,
    block: Option<u64>,
    deployment: Option<Deployment>,
    dev_accounts: Vec<Address>,
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn read_state(dir: &Path) -> Option<DevnetState> {
    let text = std::fs::read_to_string(state_path(dir)).ok()?;
    serde_json::from_str(&text).ok()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl DevnetArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        match self.cmd {
            DevnetCmd::Up { rpc_url: Some(ref url), .. } => self.attach(url).await,
            DevnetCmd::Up { port, rpc_url: None } => self.up(port).await,
            DevnetCmd::Down => self.down().await,
            DevnetCmd::Status => self.status().await,
        }
    }

    async fn up(&self, port: u16) -> eyre::Result<()> {
        std::fs::create_dir_all(&self.state_dir)
            .wrap_err_with(|| format!("cannot create {}", self.state_dir.display()))?;
        let state = match read_state(&self.state_dir) {
            Some(s) if pid_alive(s.pid) && rpc_answers(&s.rpc_url).await => {
                eprintln!("devnet already running (pid {}, {})", s.pid, s.rpc_url);
                s
            }
            _ => {
                let url = format!("http://127.0.0.1:{port}");
                if rpc_answers(&url).await {
                    return Err(eyre!(
                        "something already answers JSON-RPC on {url} but it was not started by `reef devnet up`; stop it or pass --port"
                    ));
                }
                let pb = spinner(format!("starting anvil on {url}"));
                let log_file = self.state_dir.join("anvil.log");
                let anvil = AnvilProcess::spawn(AnvilOptions {
                    port,
                    log_file: Some(log_file.clone()),
                    ..AnvilOptions::default()
                })
                .await?;
                let s = DevnetState {
                    pid: anvil.pid().unwrap_or_default(),
                    port,
                    rpc_url: anvil.rpc_url.clone(),
                    chain_id: anvil.chain_id,
                    log_file,
                };
                anvil.detach();
                std::fs::write(state_path(&self.state_dir), serde_json::to_string_pretty(&s)?)?;
                pb.finish_with_message(format!("anvil running (pid {})", s.pid));
                s
            }
        };
        let deployer = ReefClient::connect(
            &state.rpc_url,
            dev_signer(0),
            empty_deployment(state.chain_id),
            ClientOptions::default(),
        )
        .await?;
        self.deploy_and_report(Some(&state), &deployer).await
    }

    /// Deploys the devnet's contracts and test token if missing (dev accounts 0..6 seeded),
    /// then prints the status.
    async fn deploy_and_report(
        &self,
        state: Option<&DevnetState>,
        deployer: &ReefClient,
    ) -> eyre::Result<()> {
        let pb = spinner(format!("deploying contracts on {}", deployer.rpc_url()));
        let seed: Vec<Address> = (0..6).map(|i| dev_signer(i).address()).collect();
        std::fs::create_dir_all(&self.deployments)
            .wrap_err_with(|| format!("cannot create {}", self.deployments.display()))?;
        let (dep, fresh) =
            ensure_deployed(deployer, &self.deployments, &DeployConfig::devnet(seed.clone()))
                .await?;
        pb.finish_with_message(if fresh {
            "contracts deployed"
        } else {
            "contracts already deployed"
        });
        self.print_status(state, Some(dep), deployer, seed).await
    }

    /// `up --rpc-url`: the devnet's contracts on an anvil someone else started.
    async fn attach(&self, url: &str) -> eyre::Result<()> {
        if !rpc_answers(url).await {
            return Err(eyre!("nothing answers JSON-RPC on {url}: start anvil there first"));
        }
        let chain_id = ReefClient::chain_id_at(url).await?;
        let deployer =
            ReefClient::connect(url, dev_signer(0), empty_deployment(chain_id), Default::default())
                .await?;
        if deployer.eth_balance(deployer.address()).await?.is_zero() {
            return Err(eyre!(
                "{url} (chain {chain_id}) does not fund anvil's dev account 0: `reef devnet up --rpc-url` needs an anvil with its default accounts; for another chain use `reef deploy`"
            ));
        }
        self.deploy_and_report(None, &deployer).await
    }

    async fn down(&self) -> eyre::Result<()> {
        let Some(state) = read_state(&self.state_dir) else {
            if self.json {
                println!("{}", serde_json::json!({"stopped": false, "reason": "not running"}));
            } else {
                eprintln!("no devnet state in {}: nothing to stop", self.state_dir.display());
            }
            return Ok(());
        };
        if pid_alive(state.pid) {
            let status = std::process::Command::new("kill").arg(state.pid.to_string()).status()?;
            if !status.success() {
                return Err(eyre!("could not stop anvil (pid {}); stop it by hand", state.pid));
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while pid_alive(state.pid) && rpc_answers(&state.rpc_url).await {
                if std::time::Instant::now() > deadline {
                    return Err(eyre!("anvil (pid {}) did not stop within 10 s", state.pid));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        let _ = std::fs::remove_file(state_path(&self.state_dir));
        // The chain's state is gone, so its deployment file would point at nothing.
        let _ = std::fs::remove_file(Deployment::path_in(&self.deployments, state.chain_id));
        if self.json {
            println!("{}", serde_json::json!({"stopped": true, "pid": state.pid}));
        } else {
            eprintln!("devnet stopped (pid {})", state.pid);
        }
        Ok(())
    }

    async fn status(&self) -> eyre::Result<()> {
        let state = read_state(&self.state_dir).filter(|s| pid_alive(s.pid));
        let Some(state) = state else {
            let report = StatusReport {
                running: false,
                rpc_url: None,
                pid: None,
                block: None,
                deployment: None,
                dev_accounts: vec![],
            };
            if self.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("devnet: not running (start it with `reef devnet up`)");
            }
            return Ok(());
        };
        let client = ReefClient::connect(
            &state.rpc_url,
            dev_signer(0),
            empty_deployment(state.chain_id),
            ClientOptions::default(),
        )
        .await?;
        let dep = Deployment::load(&Deployment::path_in(&self.deployments, state.chain_id)).ok();
        let seed: Vec<Address> = (0..6).map(|i| dev_signer(i).address()).collect();
        self.print_status(Some(&state), dep, &client, seed).await
    }

    async fn print_status(
        &self,
        state: Option<&DevnetState>,
        dep: Option<Deployment>,
        client: &ReefClient,
        accounts: Vec<Address>,
    ) -> eyre::Result<()> {
        let block = client.block_number().await?;
        if self.json {
            let report = StatusReport {
                running: true,
                rpc_url: state.map(|s| s.rpc_url.clone()),
                pid: state.map(|s| s.pid),
                block: Some(block),
                deployment: dep,
                dev_accounts: accounts,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        if let Some(s) = state {
            println!(
                "devnet running: {} (chain {}, pid {}, block {block})",
                s.rpc_url, s.chain_id, s.pid
            );
            println!("anvil log: {}", s.log_file.display());
        }
        match &dep {
            Some(d) => {
                println!(
                    "contracts ({}):",
                    Deployment::path_in(&self.deployments, d.chain_id).display()
                );
                for (name, addr) in d.contracts() {
                    println!("  {name:<20} {addr}");
                }
            }
            None => println!("contracts: not deployed (run `reef devnet up`)"),
        }
        println!("dev accounts (use --dev-account N):");
        for (i, a) in accounts.iter().enumerate() {
            let eth = client.eth_balance(*a).await.unwrap_or(U256::ZERO);
            let tok = match dep.as_ref().and_then(|d| d.test_token) {
                Some(t) => client.token_balance(t, *a).await.map(format_ether).unwrap_or_default(),
                None => String::new(),
            };
            println!("  [{i}] {a}  {} ETH  {tok} rUSD", format_ether(eth));
        }
        Ok(())
    }
}
