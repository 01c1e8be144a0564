//! `reef agents top|show`: reputation scores computed from the index, with explanations.

use alloy::primitives::Address;
use clap::{Args, Subcommand};
use reef_reputation::{Params, Score};

use super::indexer::IndexArgs;

/// `reef agents`.
#[derive(Debug, Args)]
#[command(after_help = "Example: reef agents top -n 5")]
pub struct AgentsArgs {
    #[command(flatten)]
    index: IndexArgs,
    #[command(subcommand)]
    cmd: AgentsCmd,
}

#[derive(Debug, Subcommand)]
enum AgentsCmd {
    /// The best-reputed agents.
    #[command(after_help = "Example: reef agents top -n 10 --json")]
    Top {
        /// How many.
        #[arg(short, default_value_t = 10)]
        n: usize,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// One agent's score with every component explained.
    #[command(after_help = "Example: reef agents show 0x70997970C51812dc3A010C7d01b50e0d17dc79C8")]
    Show {
        /// The agent's address.
        addr: Address,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

impl AgentsArgs {
    /// Runs the subcommand.
    pub async fn run(self) -> eyre::Result<()> {
        let (store, chain) = self.index.open().await?;
        let confirmations = self.index.confirmations_of(chain);
        let book =
            reef_indexer::reputation::load_book(&store, confirmations, Params::default()).await?;
        let validations = match &self.cmd {
            AgentsCmd::Show { addr, .. } => {
                Some(reef_indexer::reputation::validations_of(&store, confirmations, *addr).await?)
            }
            AgentsCmd::Top { .. } => None,
        };
        store.close().await;
        match self.cmd {
            AgentsCmd::Top { n, json } => {
                let top = book.top(n);
                if json {
                    println!("{}", serde_json::to_string_pretty(&top)?);
                } else if top.is_empty() {
                    println!("no agent has a settled, confirmed job yet (run `reef indexer run`)");
                } else {
                    println!(
                        "{:<4} {:<42} {:>6} {:>6} {:>5} {:>5}",
                        "#", "agent", "score", "conf", "done", "fail"
                    );
                    for (i, s) in top.iter().enumerate() {
                        let c = s.counts;
                        println!(
                            "{:<4} {:<42} {:>6.3} {:>6.3} {:>5} {:>5}",
                            i + 1,
                            s.agent.to_string(),
                            s.value,
                            s.confidence,
                            c.completed + c.disputes_won,
                            c.rejected + c.expired + c.disputes_lost
                        );
                    }
                }
            }
            AgentsCmd::Show { addr, json } => {
                let s = book.score(&addr);
                let v = validations.unwrap_or_default();
                if json {
                    let mut out = serde_json::to_value(&s)?;
                    out["validations"] = serde_json::to_value(&v)?;
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    print_score(&s);
                    print_validations(&v);
                }
            }
        }
        Ok(())
    }
}

/// `reef agent show <addr>`: one agent's score with its explanation.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  reef agent show 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --json"
)]
pub struct ShowAgentArgs {
    #[command(flatten)]
    index: IndexArgs,
    /// The agent's address.
    addr: Address,
    /// JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl ShowAgentArgs {
    /// Runs the command.
    pub async fn run(self) -> eyre::Result<()> {
        AgentsArgs { index: self.index, cmd: AgentsCmd::Show { addr: self.addr, json: self.json } }
            .run()
            .await
    }
}

fn print_score(s: &Score) {
    println!("agent       {}", s.agent);
    println!("score       {:.3}  (confidence {:.3})", s.value, s.confidence);
    for c in &s.components {
        println!("  {:<9} {:.3} × {:.2}  {}", c.name, c.value, c.weight, c.explanation);
    }
}

fn print_validations(v: &reef_indexer::reputation::Validations) {
    if v.count == 0 {
        println!("validations none (ERC-8004 ValidationRegistry; not part of the score)");
        return;
    }
    println!(
        "validations {} answered, average {}/100, {} of them bounty verdicts, from {} validator(s) (ERC-8004; not part of the score)",
        v.count,
        v.average,
        v.bounty_verdicts,
        v.validators.len()
    );
}
