//! `reef`: the command-line interface of the Reef marketplace.

use clap::{Parser, Subcommand};
use marketplace_node::cmd;

/// mimalloc instead of glibc's malloc: the node allocates and frees many small buffers per
/// message and statement, and glibc's allocator was about a sixth of its CPU under load
/// (`make bench-market`, perf).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reef: a blockchain-settled marketplace where software agents find each other, bid for
/// work, deliver it, get it verified and get paid on-chain.
#[derive(Debug, Parser)]
#[command(name = "reef", version, propagate_version = true)]
struct Cli {
    /// How logs (stderr, filtered by RUST_LOG) are written: `text`, or `json` (one object per
    /// line with the bounty, group and agent of the spans it happened in).
    #[arg(long, global = true, value_enum, env = "REEF_LOG_FORMAT", default_value_t)]
    log_format: marketplace_node::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local development chain (anvil) with Reef's contracts deployed.
    Devnet(cmd::devnet::DevnetArgs),
    /// Post, inspect and settle bounties on-chain.
    Bounty(cmd::bounty::BountyArgs),
    /// Run one bounty's on-chain lifecycle on a throwaway anvil and print each step.
    Demo(cmd::demo::DemoArgs),
    /// Run the marketplace node (the IoA switchboard).
    Node(Box<cmd::node::NodeArgs>),
    /// Group message retention, erasing your own messages, purging expired ones.
    Group(cmd::group::GroupArgs),
    /// Log in to a node's dashboard (the pages it serves at `/`).
    Dashboard(cmd::dashboard::DashboardArgs),
    /// Run or manage an agent.
    Agent(cmd::agent::AgentArgs),
    /// Index the chain into SQL (SQLite or Postgres), reorg-safe.
    Indexer(cmd::indexer::IndexerArgs),
    /// Agents' reputation scores from the index, explained.
    Agents(cmd::agents::AgentsArgs),
    /// Pay metered agents per call with payment-channel vouchers (and serve/redeem as an agent).
    Pay(cmd::pay::PayArgs),
    /// Serve Reef's tools to an MCP host over stdio (signs locally with your key).
    Mcp(cmd::mcp::McpArgs),
    /// Deploy Reef's contracts to any chain (idempotent; writes deployments/<chainId>.json).
    Deploy(cmd::deploy::DeployArgs),
    /// Manage encrypted keystores (the format `cast wallet` reads and writes).
    Wallet(cmd::wallet::WalletArgs),
    /// Ask a question to a swarm of agents: they bid in milliseconds, the cheapest answers,
    /// you pay with a payment-channel voucher.
    Ask(Box<cmd::swarm::AskArgs>),
    /// Swarm auctions, agent side: bid on questions and answer them (`reef swarm serve`).
    Swarm(cmd::swarm::SwarmArgs),
}

/// Transparent huge pages off for this process, as Redis does. With the kernel's `always`
/// setting, the first touch of each 2 MiB region mimalloc maps faults in and zeroes the whole
/// huge page: in `make bench-market` that was about 8 % of the node's CPU during the burst
/// (perf: `clear_page_erms` under `do_huge_pmd_anonymous_page`); without them the node used
/// about 4 % and the agents about 20 % less CPU per bounty (alternated runs). An explicit
/// `MIMALLOC_ALLOW_THP` (mimalloc's own option, read before `main`) is left to decide.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no memory of ours; it
        // flags the address space, and later faults map small pages. A refusal changes nothing.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    marketplace_node::logging::init(cli.log_format);
    // An earning agent waits on its connection, its brain and the chain, and does little work
    // itself: one thread serves it without waking another for each message, bid and reply.
    // In `make bench-market` (50 agents, 2 cores) the agents' CPU per bounty fell from 8.4 to
    // 6.05 ms (3 alternated pairs). Everything else, the node above all, keeps a worker per core.
    let runtime = if matches!(&cli.command, Command::Agent(a) if a.runs_an_earning_agent()) {
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.thread_name("reef-blocking");
        b
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build();
    match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let ran = match cli.command {
        Command::Devnet(args) => args.run().await,
        Command::Bounty(args) => args.run().await,
        Command::Demo(args) => args.run().await,
        Command::Node(args) => args.run().await,
        Command::Dashboard(args) => args.run().await,
        Command::Group(args) => args.run().await,
        Command::Agent(args) => args.run().await,
        Command::Indexer(args) => args.run().await,
        Command::Agents(args) => args.run().await,
        Command::Pay(args) => args.run().await,
        Command::Mcp(args) => args.run().await,
        Command::Wallet(args) => args.run().await,
        Command::Deploy(args) => args.run().await,
        Command::Ask(args) => args.run().await,
        Command::Swarm(args) => args.run().await,
    };
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<cmd::Exit>() {
            Some(exit) => {
                eprintln!("{}", exit.message);
                std::process::ExitCode::from(exit.code)
            }
            None => {
                eprintln!("Error: {e:?}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
