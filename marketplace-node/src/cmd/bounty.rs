//! `reef bounty post|show|list|refund|rate|…`: the poster's on-chain verbs.

use alloy::primitives::{Address, B256, U256, utils::format_units};
use clap::{Args, Subcommand};
use escrow_client::{
    NewBounty, ReefClient, Status, TxOutcome,
    escrow::{BountyJson, random_salt},
};
use eyre::{WrapErr, eyre};

use super::chain::{
    ChainArgs, parse_amount, parse_bounty_id, parse_duration, parse_token, short_id, spinner,
};

/// Post, inspect and refund bounties on-chain.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  reef bounty post \"Sort these 10,000 numbers\" --reward 5 --token test --deadline 1h --approve
  reef bounty list --mine --json
  reef bounty show 0x3f2a…
  reef bounty refund 0x3f2a…
  reef bounty post \"Sort half of it\" --reward 4 --from-reward 0x3f2a… --node http://127.0.0.1:8080
  reef bounty redeem 0x51c0…
  reef bounty rate 0x3f2a… --score 90 --tag sort")]
pub struct BountyArgs {
    #[command(subcommand)]
    cmd: BountyCmd,
    #[command(flatten)]
    chain: ChainArgs,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BountyCmd {
    /// Escrow a reward for a task (post + fund in one transaction), or run it through a node's
    /// marketplace (--node) and follow it to its end.
    #[command(after_help = "Examples:
  reef bounty post \"Sort these 10,000 numbers\" --reward 5 --token test --deadline 1h --approve
  reef bounty post \"Find a nonce\" --reward 0.1 --token eth --evaluator 0xabc… --arbiter 0xdef…
  reef bounty post \"Sort\" --reward 5 --node http://127.0.0.1:8080 --skills sort --json

Exit status with --node: 0 the work was paid (settled completed or resolved; with --detach:
awarded), 3 the bounty ended without paying for work (no valid bid, refunded, expired,
cancelled), 4 the result was rejected (the poster is refunded), 1 any error on the way
(node or chain unreachable past --wait-node, reverted transaction), 2 bad flags.")]
    Post(Box<PostArgs>),
    /// Show one bounty rebuilt from its on-chain events.
    #[command(after_help = "Example:\n  reef bounty show 0x3f2a… --json")]
    Show {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// List bounties on this deployment.
    #[command(after_help = "Example:\n  reef bounty list --mine")]
    List {
        /// Only bounties posted by this account.
        #[arg(long)]
        mine: bool,
        /// Only bounties posted by this address.
        #[arg(long, conflicts_with = "mine")]
        poster: Option<Address>,
    },
    /// Refund the poster of a bounty whose deadline passed (anyone may call).
    #[command(after_help = "Example:\n  reef bounty refund 0x3f2a…")]
    Refund {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Accept the submitted result and pay the provider (you must be the evaluator).
    #[command(after_help = "Example:\n  reef bounty accept 0x3f2a…")]
    Accept {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Reject the submitted result (you must be the evaluator); the poster is refunded.
    #[command(after_help = "Example:\n  reef bounty reject 0x3f2a…")]
    Reject {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Escalate to the bounty's arbiter, posting the dispute bond (poster or provider).
    #[command(after_help = "Example:\n  reef bounty dispute 0x3f2a…")]
    Dispute {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Arbiter: rule a split, giving the provider this share of the price in basis points.
    #[command(after_help = "Example:\n  reef bounty resolve 0x3f2a… --provider-bps 3000")]
    Resolve {
        /// Bounty id (hex or decimal).
        id: String,
        /// Provider's share of the price (0..=10000 bps).
        #[arg(long)]
        provider_bps: u16,
    },
    /// Take-over: the provider missed the delivery time it signed (its bid's ETA) and delivered
    /// nothing; hand the job to the next-ranked bidder (poster or evaluator; needs --node for
    /// the sealed ranking).
    #[command(after_help = "Example:\n  reef bounty reassign 0x3f2a… --node http://127.0.0.1:8080")]
    Reassign {
        /// Bounty id (hex or decimal).
        id: String,
        /// The node that ran the auction (it holds the ranked, signed bids).
        #[arg(long, env = "REEF_NODE_HTTP")]
        node: String,
    },
    /// The provider missed its signed ETA: end the award and refund the poster (poster or
    /// evaluator; before the deadline; after it use `refund`).
    #[command(after_help = "Example:\n  reef bounty revoke 0x3f2a…")]
    Revoke {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Cancel a funded bounty before it is awarded (poster only); the escrow is refunded.
    #[command(after_help = "Example:\n  reef bounty cancel 0x3f2a…")]
    Cancel {
        /// Bounty id (hex or decimal).
        id: String,
    },
    /// Rate the provider of your settled bounty (ERC-8004 `giveFeedback` in the
    /// ReputationRegistry, one rating per bounty, poster only); the reputation engine weighs it
    /// by the bounty's paid value.
    #[command(after_help = "Examples:
  reef bounty rate 0x3f2a… --score 90
  reef bounty rate 0x3f2a… --score 40 --tag sort --tag slow --json

The score is on ERC-8004's 0-100 scale (100 best). The bounty must be settled (completed,
refunded after a rejection, or resolved by the arbiter) and not rated yet; the provider must
own (or be the payment wallet of) an agent in the AgentRegistry (--agent-id picks one).

Exit status: 0 rated, 1 any error (not the poster, not settled, already rated, no agent,
reverted transaction), 2 bad flags (a score outside 0..=100).")]
    Rate(RateArgs),
    /// Redeem your credits from a sub-bounty funded from a pending reward (`post
    /// --from-reward`) for the parent's token, once the parent bounty is settled. Its provider,
    /// its poster (the unspent budget) and the fee recipient hold such credits.
    #[command(
        after_help = "Examples:\n  reef bounty redeem 0x51c0…            (a sub-bounty id)\n  reef bounty redeem 0x8f3e…c2 --json   (its pledge token address)"
    )]
    Redeem {
        /// A sub-bounty funded from a reward (id), or its pledge token (address).
        target: String,
    },
}

#[derive(Debug, Clone, Args)]
struct RateArgs {
    /// Bounty id (hex or decimal).
    id: String,
    /// Rating on ERC-8004's 0-100 scale (100 best).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    score: u8,
    /// Tag (ERC-8004 tag1, then tag2; at most two).
    #[arg(long)]
    tag: Vec<String>,
    /// The provider's agent id in the AgentRegistry (default: the oldest it owns or is the
    /// payment wallet of).
    #[arg(long)]
    agent_id: Option<U256>,
}

#[derive(Debug, Clone, Args)]
struct PostArgs {
    /// Task description (its keccak256 is committed on-chain).
    description: String,
    /// Reward in whole token units (e.g. 5 or 0.25).
    #[arg(long)]
    reward: String,
    /// Reward token: `eth`, `test` (devnet rUSD) or an ERC-20 address.
    #[arg(long, default_value = "test")]
    token: String,
    /// Time until the submission deadline (e.g. 90s, 30m, 1h, 2d).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    deadline: std::time::Duration,
    /// Evaluator address (default: you, with optimistic auto-accept after the review window).
    #[arg(long)]
    evaluator: Option<Address>,
    /// Arbiter for disputes (default: none, no disputes).
    #[arg(long)]
    arbiter: Option<Address>,
    /// Window after submission for a verdict.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    review_window: std::time::Duration,
    /// Window after a rejection in which the provider may dispute.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    challenge_window: std::time::Duration,
    /// Approve the escrow for the reward if the allowance is short (without it, a terminal
    /// session is asked first; a script gets an error).
    #[arg(long)]
    approve: bool,
    /// `auction`: sealed bids, one provider chosen by price/ETA/reputation/stake. `contest`:
    /// anyone enters a result before the deadline; the best verified entries are paid.
    #[arg(long, default_value = "auction", value_parser = ["auction", "contest"])]
    mode: String,
    /// Contest: how many verified entries are paid (1..=32).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
    winners: u8,
    /// Contest: how the reward is split between the paid entries, in percent, best first
    /// (e.g. `70,30`; must sum to 100; default: equal shares). With fewer verified entries than
    /// shares, the shares that are used are scaled up to the whole reward.
    #[arg(long, value_delimiter = ',')]
    split: Vec<f64>,
    /// Salt that, with your address, determines the bounty id (default: random).
    #[arg(long)]
    salt: Option<B256>,
    /// Run the marketplace through this node (sealed bidding, verification, settlement);
    /// without it the bounty is only escrowed on-chain.
    #[arg(long, env = "REEF_NODE_HTTP")]
    node: Option<String>,
    /// Skills a provider needs (comma separated; with --node).
    #[arg(long, value_delimiter = ',')]
    skills: Vec<String>,
    /// Verification with --node: `hash` (needs --expect), `command` (needs --verifier), `poster`,
    /// `evaluator` (a third-party evaluator agent chosen by reputation, paid --eval-fee) or
    /// `quorum` (--quorum K/N evaluator agents must agree).
    #[arg(long, default_value = "poster")]
    verify: String,
    /// `--verify quorum`: matching verdicts needed of the panel size, as `K/N` (e.g. `2/3`).
    #[arg(long)]
    quorum: Option<String>,
    /// `--verify evaluator|quorum`: fee paid to each evaluator whose verdict settles the
    /// bounty, in the reward token's units, out of --reward: quorum × fee is escrowed with the
    /// panel, the rest of --reward is the provider's reward.
    #[arg(long, default_value = "0")]
    eval_fee: String,
    /// Expected result (JSON text or @file) for `--verify hash`; only its hash is sent.
    #[arg(long)]
    expect: Option<String>,
    /// Verifier program name on the node for `--verify command`.
    #[arg(long)]
    verifier: Option<String>,
    /// Task input (JSON text or @file) handed to the provider.
    #[arg(long)]
    input: Option<String>,
    /// Sealed-bid window with --node (e.g. 10s, or 500ms for machine bidders; at least 100ms).
    #[arg(long, default_value = "10s", value_parser = super::chain::parse_window)]
    bid_window: std::time::Duration,
    /// Return after the award instead of following the bounty to its end.
    #[arg(long)]
    detach: bool,
    /// With --node: how long to keep trying a node that is down (not started yet, restarting)
    /// or busy (at its admission limit) before giving up on the post.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    wait_node: std::time::Duration,
    /// Fund this sub-bounty from your pending reward on the bounty PARENT (you must be its
    /// provider, while it is awarded): nothing is transferred. The sub-bounty is paid in a
    /// pledge token whose credits redeem for the parent's token once the parent settles in
    /// your favour (`reef bounty redeem`), and are void if it does not. --token is ignored.
    #[arg(long, value_name = "PARENT")]
    from_reward: Option<String>,
    /// Data-usage terms: delete the task input and result this many days after the bounty
    /// ends (0: at once). Committed on-chain with the description (docs/earning.md).
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
    /// Data-usage terms: the provider must not pass the task input on (sub-bounties, other
    /// agents); the node refuses verbatim copies.
    #[arg(long)]
    no_onward_sharing: bool,
    /// Data-usage terms: the data must stay in this region (only a node started with the same
    /// `--region` accepts the bounty).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// With --node: once the bounty settles (completed, or resolved), rate its provider with
    /// this score (0-100, as `reef bounty rate`). A failed rating is reported, not fatal.
    #[arg(long, value_name = "SCORE", requires = "node",
        value_parser = clap::value_parser!(u8).range(0..=100))]
    rate: Option<u8>,
}

impl PostArgs {
    /// The data-usage terms the flags describe (`None` without any of them).
    fn policy(&self) -> eyre::Result<Option<escrow_client::policy::Policy>> {
        if self.retention_days.is_none() && !self.no_onward_sharing && self.region.is_none() {
            return Ok(None);
        }
        let p = escrow_client::policy::Policy {
            onward_sharing: !self.no_onward_sharing,
            region: self.region.clone(),
            retention_days: self.retention_days,
        };
        p.validate().map_err(|e| eyre!(e))?;
        Ok(Some(p))
    }

    /// `record` with its `specHash` committing to the terms too, when there are terms.
    fn commit_policy(
        &self,
        mut record: escrow_client::bindings::escrow::IBountyTypes::Bounty,
    ) -> eyre::Result<escrow_client::bindings::escrow::IBountyTypes::Bounty> {
        if let Some(p) = self.policy()? {
            record.specHash = escrow_client::policy::spec_hash(&self.description, Some(&p));
        }
        Ok(record)
    }
}

/// `reef bounty post` exit status: 0 when the work was paid (the bounty settled `completed`
/// or `resolved`), or `--detach` returned after the award; [`EXIT_REJECTED`] when the verdict
/// rejected the result (the poster is refunded); [`EXIT_NOT_SETTLED`] for every other end (no
/// valid bid, refunded, expired, cancelled). Errors before the end exit 1, bad flags 2.
fn post_exit_code(phase: &str, status: Option<Status>, rejected: bool, detached: bool) -> u8 {
    match (phase, status) {
        _ if detached => 0,
        ("settled", Some(Status::Completed | Status::Resolved)) => 0,
        _ if rejected => EXIT_REJECTED,
        _ => EXIT_NOT_SETTLED,
    }
}

/// `reef bounty post`: the bounty ended without paying for the work.
pub const EXIT_NOT_SETTLED: u8 = 3;
/// `reef bounty post`: the verdict rejected the result.
pub const EXIT_REJECTED: u8 = 4;

/// Whether the poster, asked at a terminal, agreed to approve the escrow for `amount` of
/// `token` because its allowance is short. False (nothing asked) for ETH, an allowance that
/// suffices, or when stdin or stderr is not a terminal: the transaction path then fails with
/// [`escrow_client::Error::InsufficientAllowance`] before anything is sent. A "no" is an error.
async fn offer_approval(
    client: &ReefClient,
    token: Address,
    amount: U256,
    decimals: u8,
) -> eyre::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if token.is_zero() || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    let escrow = client.deployment().bounty_escrow;
    let have = client.allowance(token, client.address(), escrow).await?;
    if have >= amount {
        return Ok(false);
    }
    let (have_s, need_s) = (format_units(have, decimals)?, format_units(amount, decimals)?);
    eprint!(
        "The escrow {escrow} may spend {have_s} of your token {token}; this bounty needs {need_s}.\n\
         Approve it for {need_s} now (one transaction)? [y/N] "
    );
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).wrap_err("cannot read the answer")?;
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(true),
        _ => Err(eyre!(
            "not approved: nothing was sent. Approve the escrow for {need_s} (answer y, or pass --approve) to post this bounty"
        )),
    }
}

/// Checks that an award can be taken over now: caller is poster or evaluator, the bounty is
/// awarded, its delivery time (`dueBy`, the stamp of an awarded record) passed and the
/// deadline did not.
async fn overdue(
    client: &ReefClient,
    state: &escrow_client::escrow::BountyState,
) -> eyre::Result<()> {
    let me = client.address();
    let r = &state.record;
    if me != r.poster && me != r.evaluator {
        return Err(eyre!(
            "only the poster {} or the evaluator {} may take a job back; you are {me}",
            r.poster,
            r.evaluator
        ));
    }
    if state.status != Status::Awarded {
        return Err(eyre!(
            "bounty is {}: only an awarded, undelivered job can be taken over",
            state.status
        ));
    }
    // The next block's time: an idle devnet's latest block can be far behind the clock.
    let now = client.chain_time().await?.max(reef_wire::unix_now());
    if now <= state.stamp {
        return Err(eyre!(
            "the provider has until {} (another {}s) to deliver; try again after that",
            state.stamp,
            state.stamp - now
        ));
    }
    if now > r.deadline {
        return Err(eyre!("the deadline passed: use `reef bounty refund` instead"));
    }
    Ok(())
}

/// `K/N` → (K, N) with 1 <= K <= N <= 16.
fn parse_quorum(s: &str) -> eyre::Result<(u8, u8)> {
    let bad = || eyre!("--quorum {s:?}: use K/N with 1 <= K <= N <= 16 (e.g. 2/3)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (u8, u8) =
        (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if k == 0 || k > n || n > 16 {
        return Err(bad());
    }
    Ok((k, n))
}

/// `--split` percentages → basis points (empty = equal shares, decided by the node).
fn split_bps(split: &[f64], winners: u8, contest: bool) -> eyre::Result<Vec<u16>> {
    if split.is_empty() {
        return Ok(Vec::new());
    }
    if !contest {
        return Err(eyre!("--split applies to --mode contest only"));
    }
    if split.len() != usize::from(winners) {
        return Err(eyre!(
            "--split has {} shares but --winners is {winners}: give one share per winner",
            split.len()
        ));
    }
    if split.iter().any(|p| !p.is_finite() || *p <= 0.0) {
        return Err(eyre!("--split shares must be positive percentages"));
    }
    let bps: Vec<u16> = split.iter().map(|p| (p * 100.0).round() as u16).collect();
    let total: u32 = bps.iter().map(|b| u32::from(*b)).sum();
    if total != 10_000 {
        return Err(eyre!("--split must sum to 100 (it sums to {})", f64::from(total) / 100.0));
    }
    Ok(bps)
}

/// JSON text or `@path` → value.
fn json_arg(s: &str) -> eyre::Result<serde_json::Value> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| eyre!("cannot read {path}: {e}"))?
        }
        None => s.to_string(),
    };
    serde_json::from_str(&text)
        .map_err(|e| eyre!("not valid JSON ({e}): {}", text.chars().take(80).collect::<String>()))
}

impl BountyArgs {
    /// Run the command.
    pub async fn run(self) -> eyre::Result<()> {
        // Reads need no key (a throwaway one reads when none is given); `list --mine` does.
        let reads =
            matches!(&self.cmd, BountyCmd::Show { .. } | BountyCmd::List { mine: false, .. });
        let client =
            if reads { self.chain.connect_read().await? } else { self.chain.connect().await? };
        match &self.cmd {
            BountyCmd::Post(p) => self.post(&client, p).await,
            BountyCmd::Show { id } => self.show(&client, parse_bounty_id(id)?).await,
            BountyCmd::List { mine, poster } => {
                let who = if *mine { Some(client.address()) } else { *poster };
                self.list(&client, who).await
            }
            BountyCmd::Refund { id } => self.refund(&client, parse_bounty_id(id)?).await,
            BountyCmd::Reassign { id, node } => {
                self.reassign(&client, parse_bounty_id(id)?, node).await
            }
            BountyCmd::Revoke { id } => {
                self.verb(&client, parse_bounty_id(id)?, "revoke", None).await
            }
            BountyCmd::Accept { id } => {
                self.verb(&client, parse_bounty_id(id)?, "accept", None).await
            }
            BountyCmd::Reject { id } => {
                self.verb(&client, parse_bounty_id(id)?, "reject", None).await
            }
            BountyCmd::Dispute { id } => {
                self.verb(&client, parse_bounty_id(id)?, "dispute", None).await
            }
            BountyCmd::Resolve { id, provider_bps } => {
                self.verb(&client, parse_bounty_id(id)?, "resolve", Some(*provider_bps)).await
            }
            BountyCmd::Cancel { id } => {
                self.verb(&client, parse_bounty_id(id)?, "cancel", None).await
            }
            BountyCmd::Redeem { target } => self.redeem(&client, target).await,
            BountyCmd::Rate(r) => {
                let v = rate(&client, parse_bounty_id(&r.id)?, r.score, &r.tag, r.agent_id).await?;
                if self.json {
                    println!("{v}");
                } else {
                    println!(
                        "rated bounty {}: agent {} ({}) scored {} (feedback #{}, tx {}, gas {})",
                        v["id"].as_str().unwrap_or(""),
                        v["agent_id"].as_str().unwrap_or(""),
                        v["provider"].as_str().unwrap_or(""),
                        v["score"],
                        v["feedback_index"],
                        v["tx"]["hash"].as_str().unwrap_or(""),
                        v["tx"]["gas_used"]
                    );
                }
                Ok(())
            }
        }
    }

    async fn decimals(client: &ReefClient, token: Address) -> eyre::Result<u8> {
        if token.is_zero() {
            return Ok(18);
        }
        let asked = client
            .view(token, escrow_client::bindings::token::ReefTestToken::decimalsCall {})
            .await;
        let e = match asked {
            Ok(d) => return Ok(d),
            Err(e) => e,
        };
        if client.has_code(token).await? {
            return Err(eyre!("token {token} does not answer decimals(): {e}"));
        }
        // No contract there: a typo, another chain's token, or a pledge token (escrow credits,
        // which only postFromReward can use).
        if let Some(p) = client.pledge(token).await? {
            return Err(eyre!(
                "token {token} is the pledge token on bounty {:#066x} (escrow credits, not an ERC-20): post the sub-bounty with --from-reward {:#066x}",
                p.parent,
                p.parent
            ));
        }
        Err(eyre!(
            "token {token} has no code on chain {}: it is not an ERC-20 here. Pass --token eth, an ERC-20's address, or --from-reward <bounty> to pay from your pending reward on a bounty",
            client.deployment().chain_id
        ))
    }

    async fn post(&self, client: &ReefClient, p: &PostArgs) -> eyre::Result<()> {
        let (p, nb, decimals, parent) = prepare_post(client, p).await?;
        let p = &p;
        let token = nb.token;
        if let Some(node) = &p.node {
            let bar = |_: String| {};
            let mut o = post_via_node(client, p, nb, node, decimals, parent, &bar).await?;
            if let Some(score) = p.rate {
                o.rating = Some(rate_after_settlement(client, &o, score).await);
            }
            return self.print_outcome(&o);
        }
        let terms = p.commit_policy(client.terms(&nb).await?)?;
        let salt = p.salt.unwrap_or_else(random_salt);
        let pb = spinner("posting and funding the bounty");
        let res = match parent {
            Some(parent) => {
                client.post_from_reward(salt, terms, parent).await.map(|(i, r, t)| (i, r, vec![t]))
            }
            None => client.post_and_fund(salt, terms, p.approve).await,
        };
        pb.finish_and_clear();
        let (id, record, txs) = res?;
        if self.json {
            let v = serde_json::json!({
                "id": format!("{id:#066x}"),
                "poster": record.poster,
                "token": record.token,
                "amount": record.amount.to_string(),
                "deadline": record.deadline,
                "specHash": record.specHash,
                "transactions": txs,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for t in &txs {
                eprintln!("  {:<12} tx {}  gas {}", t.action, t.hash, t.gas_used);
            }
            println!("bounty {id:#066x}");
            println!(
                "  reward   {} ({})",
                format_units(U256::from(record.amount), decimals)?,
                token_name(token)
            );
            if let Some(parent) = parent {
                println!("  funded from your reward on {parent:#066x}, in pledge token {token}");
            }
            println!("  deadline in {}s", p.deadline.as_secs());
        }
        Ok(())
    }
}

/// How a `post --node` ended: the node's last view of the bounty, the chain's, and the award.
#[derive(Debug)]
pub struct PostOutcome {
    /// The bounty id (0x + 64 hex digits).
    pub id: String,
    /// The node's last view of the bounty (phase, winner, verdict, note, events...).
    pub result: serde_json::Value,
    /// The bounty as the chain has it (None: never posted on-chain, e.g. no valid bid).
    pub onchain: Option<escrow_client::escrow::BountyState>,
    /// The award transaction, when the poster awarded.
    pub award: Option<TxOutcome>,
    /// The reward token's decimals.
    pub decimals: u8,
    /// `--detach`: returned after the award.
    pub detached: bool,
    /// `--rate`: what `reef bounty rate` answered, or `{"error": …}`.
    pub rating: Option<serde_json::Value>,
}

impl PostOutcome {
    /// The one-object summary `reef bounty post --json` prints (and MCP returns).
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "phase": self.result["phase"],
            "winner": self.result["winner"],
            "verdict": self.result["verdict"],
            "note": self.result["note"],
            "status": self.onchain.as_ref().map(|s| s.status.name()),
            "award_tx": self.award,
            "paid": post_exit_code(
                self.result["phase"].as_str().unwrap_or(""),
                self.onchain.as_ref().map(|s| s.status),
                self.result["verdict"]["accept"] == false,
                false,
            ) == 0,
            "rating": self.rating,
        })
    }
}

/// `post --rate`: rates the provider once the bounty settled in a state that grants a feedback
/// credit; a failure is reported in the answer (the bounty's own outcome stands).
async fn rate_after_settlement(
    client: &ReefClient,
    o: &PostOutcome,
    score: u8,
) -> serde_json::Value {
    let Some(state) = &o.onchain else {
        return serde_json::json!({ "error": "not rated: the bounty was never posted on-chain" });
    };
    if !matches!(state.status, Status::Completed | Status::Resolved | Status::Refunded) {
        return serde_json::json!({
            "error": format!("not rated: the bounty is {}, not settled (rate it later with `reef bounty rate {}`)", state.status, o.id)
        });
    }
    match rate(client, state.id, score, &[], None).await {
        Ok(v) => {
            eprintln!(
                "  rated            agent {} scored {score}",
                v["agent_id"].as_str().unwrap_or("")
            );
            v
        }
        Err(e) => {
            eprintln!("  not rated: {e:#}");
            serde_json::json!({ "error": format!("{e:#}") })
        }
    }
}

/// `reef bounty rate`: the poster's ERC-8004 feedback for the provider of a settled bounty,
/// with the gate's conditions checked first so each failure reads plainly.
async fn rate(
    client: &ReefClient,
    id: U256,
    score: u8,
    tags: &[String],
    agent_id: Option<U256>,
) -> eyre::Result<serde_json::Value> {
    if score > 100 {
        return Err(eyre!("score {score} is out of range: ratings are 0..=100"));
    }
    if tags.len() > 2 {
        return Err(eyre!("at most two --tag values (ERC-8004 tag1 and tag2), got {}", tags.len()));
    }
    let state = client.bounty(id).await?;
    let r = &state.record;
    let me = client.address();
    if r.poster != me {
        return Err(eyre!("only the poster {} may rate bounty {id:#066x}; you are {me}", r.poster));
    }
    if !matches!(state.status, Status::Completed | Status::Refunded | Status::Resolved) {
        return Err(eyre!(
            "bounty {id:#066x} is {}, not settled: only a completed, refunded (rejection final) or resolved bounty can be rated",
            state.status
        ));
    }
    if r.provider.is_zero() {
        return Err(eyre!("bounty {id:#066x} was never awarded: there is no provider to rate"));
    }
    if client.bounty_credited(id).await? {
        return Err(eyre!("bounty {id:#066x} is already rated (its one feedback credit is used)"));
    }
    let agent_id = match agent_id {
        Some(a) => a,
        None => client.agent_ids_of(r.provider).await?.first().copied().ok_or_else(|| {
            eyre!(
                "provider {} has no agent in the AgentRegistry (it neither owns one nor is one's payment wallet), so ERC-8004 feedback has nothing to rate",
                r.provider
            )
        })?,
    };
    let rating = escrow_client::feedback::Rating {
        value: i128::from(score),
        decimals: 0,
        tag1: tags.first().cloned().unwrap_or_default(),
        tag2: tags.get(1).cloned().unwrap_or_default(),
    };
    let pb = spinner(format!("rating {id:#066x}"));
    let out = client.give_bounty_feedback(id, r, agent_id, &rating).await;
    pb.finish_and_clear();
    let (index, tx) = out?;
    Ok(serde_json::json!({
        "id": format!("{id:#066x}"),
        "provider": r.provider,
        "agent_id": agent_id.to_string(),
        "score": score,
        "tags": tags,
        "feedback_index": index,
        "tx": tx,
    }))
}

/// Where `post --node` reports each step (a transaction, an event of the bounty's log): the
/// CLI's progress bar, or an MCP host's progress notifications.
pub type Progress<'a> = &'a (dyn Fn(String) + Send + Sync);

/// Posts a bounty through a node and follows it to its end (or to the award with `--detach`),
/// as `reef bounty post --node` does: `argv` are that command's arguments after `post`
/// (description first). Used by the MCP bridge; prints nothing on stdout.
pub async fn post_through_node(
    client: &ReefClient,
    argv: &[String],
    progress: Progress<'_>,
) -> eyre::Result<PostOutcome> {
    use clap::Parser;
    #[derive(Parser)]
    #[command(name = "post", no_binary_name = true)]
    struct PostCli {
        #[command(flatten)]
        post: PostArgs,
    }
    let cli = PostCli::try_parse_from(argv).map_err(|e| eyre!("{}", e.render()))?;
    let p = cli.post;
    let node =
        p.node.clone().ok_or_else(|| eyre!("a node is needed to run the marketplace (node)"))?;
    let (p, nb, decimals, parent) = prepare_post(client, &p).await?;
    post_via_node(client, &p, nb, &node, decimals, parent, progress).await
}

/// The checks and values `post` needs before anything is sent: the token (or the pledge of
/// `--from-reward`), its decimals, the amount, the record's windows, the room in a parent's
/// reward, and an approval offered at a terminal.
async fn prepare_post(
    client: &ReefClient,
    p: &PostArgs,
) -> eyre::Result<(PostArgs, NewBounty, u8, Option<U256>)> {
    let parent = p.from_reward.as_deref().map(parse_bounty_id).transpose()?;
    let token = match parent {
        Some(parent) => client.pledge_token_of(parent, client.address()),
        None => parse_token(&p.token, client.deployment())?,
    };
    // A pledge's amounts are in the units of the real token behind it.
    let parent_state = match parent {
        Some(parent) => Some(client.bounty(parent).await?),
        None => None,
    };
    let real = match &parent_state {
        Some(s) => client.underlying_token(s.record.token).await?,
        None => token,
    };
    let decimals = BountyArgs::decimals(client, real).await?;
    let amount = parse_amount(&p.reward, decimals)?;
    let amount: u128 = amount.try_into().map_err(|_| eyre!("reward does not fit in 128 bits"))?;
    let secs =
        |d: std::time::Duration| u32::try_from(d.as_secs()).map_err(|_| eyre!("window too long"));
    let now = client.chain_time().await?;
    let nb = NewBounty {
        token,
        amount,
        evaluator: p.evaluator,
        arbiter: p.arbiter.unwrap_or(Address::ZERO),
        deadline: now + p.deadline.as_secs(),
        review_window: secs(p.review_window)?,
        challenge_window: secs(p.challenge_window)?,
        description: p.description.clone(),
        contest_winners: (p.mode == "contest").then_some(p.winners),
    };
    // A short allowance is found before anything is sent; at a terminal the poster is offered
    // the approval instead of being told to start over with --approve. A pledge transfers
    // nothing: its room in the parent's reward is checked instead.
    if let Some(s) = &parent_state {
        client.check_pledge_on(s, amount).await?;
    }
    let mut p = p.clone();
    if parent.is_none()
        && !p.approve
        && offer_approval(client, token, U256::from(amount), decimals).await?
    {
        p.approve = true;
    }
    Ok((p, nb, decimals, parent))
}

async fn post_via_node(
    client: &ReefClient,
    p: &PostArgs,
    mut nb: NewBounty,
    node_url: &str,
    decimals: u8,
    parent: Option<U256>,
    progress: Progress<'_>,
) -> eyre::Result<PostOutcome> {
    use super::nodeapi::NodeApi;
    use serde_json::json;
    // Each step: on stderr (the progress bar's line once it runs) and to `progress`.
    let note = |line: String| {
        eprintln!("{line}");
        progress(line.trim().to_string());
    };
    let mut api = NodeApi::new(node_url);
    let info = super::nodeapi::wait_for_node("reaching the node", p.wait_node, || {
        api.get("/v1/market/info")
    })
    .await
    .map_err(|e| eyre!("{e} (is the node started with --rpc-url?)"))?;
    let node_chain = info["deployment"]["chainId"].as_u64().unwrap_or_default();
    if node_chain != client.deployment().chain_id {
        return Err(eyre!(
            "the node settles on chain {node_chain} but --rpc-url serves chain {}",
            client.deployment().chain_id
        ));
    }
    let evaluator: Address = info["evaluator"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| eyre!("node reported no evaluator"))?;
    // Set for the evaluator-panel modes (the fee each paid evaluator gets).
    let mut eval_fee: u128 = 0;
    let verify = match p.verify.as_str() {
        "hash" => {
            let expected = p
                .expect
                .as_deref()
                .ok_or_else(|| eyre!("--verify hash needs --expect <json|@file>"))?;
            let v = json_arg(expected)?;
            nb.evaluator = Some(evaluator);
            json!({ "mode": "hash", "expected": crate::market::verify::result_hash(&v) })
        }
        "command" => {
            let name = p
                .verifier
                .as_deref()
                .ok_or_else(|| eyre!("--verify command needs --verifier <name>"))?;
            nb.evaluator = Some(evaluator);
            json!({ "mode": "command", "verifier": name })
        }
        "poster" => {
            nb.evaluator = None;
            json!({ "mode": "poster" })
        }
        "evaluator" | "quorum" => {
            let panel = client.evaluator_panel().ok_or_else(|| {
                    eyre!("this deployment has no EvaluatorPanel; redeploy (`reef devnet up`) to use --verify {}", p.verify)
                })?;
            nb.evaluator = Some(panel);
            let (k, spec) = if p.verify == "evaluator" {
                (1, json!({ "mode": "evaluator" }))
            } else {
                let (k, n) = parse_quorum(p.quorum.as_deref().unwrap_or("2/3"))?;
                (k, json!({ "mode": "quorum", "quorum": k, "size": n }))
            };
            // The evaluators are paid from the bounty: --reward is the poster's whole
            // budget, of which quorum × --eval-fee goes to the panel's fee escrow and the
            // rest is the reward the bidders compete for.
            eval_fee = super::chain::parse_amount(&p.eval_fee, decimals)
                .wrap_err("--eval-fee")?
                .try_into()
                .map_err(|_| eyre!("--eval-fee is too large"))?;
            let fees = eval_fee.saturating_mul(u128::from(k));
            if fees >= nb.amount {
                return Err(eyre!(
                    "--eval-fee × quorum ({}) must be less than --reward ({}): the evaluators are paid out of the reward",
                    format_units(U256::from(fees), decimals).unwrap_or_default(),
                    format_units(U256::from(nb.amount), decimals).unwrap_or_default()
                ));
            }
            nb.amount -= fees;
            spec
        }
        other => {
            return Err(eyre!(
                "--verify {other:?}: use hash, command, poster, evaluator or quorum"
            ));
        }
    };
    let input = match &p.input {
        Some(s) => json_arg(s)?,
        None => serde_json::Value::Null,
    };
    let grace = info["award_grace_secs"].as_u64().unwrap_or(300);
    let window_secs = p.bid_window.as_millis().div_ceil(1000) as u64;
    if nb.deadline <= client.chain_time().await? + window_secs + grace {
        return Err(eyre!(
            "--deadline is too short: it must exceed the bid window ({window_secs}s) plus the node's award grace ({grace}s)"
        ));
    }
    // Pre-flight before anything is announced: funds and allowance for the award (a
    // pledge's room in the parent's reward was checked by `post`).
    let terms = p.commit_policy(client.terms(&nb).await?)?;
    let amount = U256::from(terms.amount);
    if parent.is_none()
        && let Some(tx) = client
            .ensure_can_pay(terms.token, client.deployment().bounty_escrow, amount, p.approve)
            .await?
    {
        note(format!("  approve      tx {}  gas {}", tx.hash, tx.gas_used));
    }
    let signer = client.signer().clone();
    let login = api.clone();
    api = super::nodeapi::wait_for_node("logging in to the node", p.wait_node, || {
        let (mut api, signer) = (login.clone(), signer.clone());
        async move { api.login(&signer).await.map(|_| api) }
    })
    .await?;
    let salt = p.salt.unwrap_or_else(random_salt);
    let req = json!({
        "salt": salt,
        "record": escrow_client::escrow::RecordJson::from(&terms),
        "description": p.description,
        "input": input,
        "skills": p.skills,
        "verify": verify,
        "bid_window_secs": window_secs,
        "bid_window_ms": p.bid_window.as_millis() as u64,
        "split": split_bps(&p.split, p.winners, p.mode == "contest")?,
        "from_reward": parent.map(|id| format!("{id:#066x}")),
        "policy": p.policy()?,
    });
    // Posting is idempotent per (poster, salt): if the node restarts mid-request, or is
    // at its admission limit (503 busy: nothing registered), post again.
    let posted = {
        let t0 = std::time::Instant::now();
        loop {
            let sent = super::nodeapi::wait_for_node("posting", p.wait_node, || {
                api.post("/v1/market/bounties", req.clone())
            })
            .await;
            match sent {
                Ok(v) => break v,
                Err(e) => match e.busy_retry() {
                    Some(pause) if t0.elapsed() + pause < p.wait_node => {
                        note(format!("  {e}; posting again in {:.1} s", pause.as_secs_f32()));
                        tokio::time::sleep(pause).await;
                    }
                    _ => return Err(e.into()),
                },
            }
        }
    };
    let id = posted["id"].as_str().unwrap_or_default().to_string();
    // An evaluator panel is registered on-chain before the bounty exists (bidders can
    // inspect it), with the members' fees escrowed.
    if let Some(panel) = posted["panel"].as_object() {
        let members: Vec<Address> = serde_json::from_value(panel["members"].clone())
            .map_err(|e| eyre!("node sent a malformed panel: {e}"))?;
        let quorum = panel["quorum"].as_u64().unwrap_or(1) as u8;
        let bid = parse_bounty_id(&id)?;
        if client.panel_of(bid).await?.is_none() {
            let txs = client
                .open_panel(salt, members.clone(), quorum, terms.token, eval_fee, p.approve)
                .await?;
            for t in &txs {
                note(format!("  {:<16} tx {}  gas {}", t.action, t.hash, t.gas_used));
            }
        }
        note(format!(
            "  evaluator panel: {quorum} of {} ({}), fee {} each, out of the reward",
            members.len(),
            members.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", "),
            p.eval_fee
        ));
    }
    let mut award: Option<TxOutcome> = None;
    if p.mode == "contest" {
        // Contests are escrowed up front; entries arrive on-chain until the deadline.
        let txs = match parent {
            Some(parent) => vec![client.post_from_reward(salt, terms.clone(), parent).await?.2],
            None => client.post_and_fund(salt, terms.clone(), p.approve).await?.2,
        };
        for t in &txs {
            note(format!("  {:<16} tx {}  gas {}", t.action, t.hash, t.gas_used));
        }
        award = txs.last().cloned();
    }
    match posted["reconnecting"].as_u64() {
        Some(n) if n > 0 && posted["invited"] == 0 => note(format!(
            "bounty {id}: the node just restarted; its call for proposals waits for {n} agents to reconnect"
        )),
        _ => note(format!("bounty {id}: call for proposals sent to {} agents", posted["invited"])),
    }
    let pb = spinner("collecting sealed bids");
    let say = |line: String| {
        pb.println(&line);
        progress(line.trim().to_string());
    };
    let mut seen_events = 0usize;
    let mut unreachable_since: Option<std::time::Instant> = None;
    let result = loop {
        // Long-poll: the node answers as soon as the bounty logs a new event (or after
        // 5 s). The node may restart mid-lifecycle (its state is durable): keep asking.
        let path = format!("/v1/market/bounties/{id}?wait_ms=5000&after_events={seen_events}");
        let asked = std::time::Instant::now();
        let v = match api.get(&path).await {
            Ok(v) => {
                unreachable_since = None;
                // A node without long-polling answers at once: poll gently instead.
                let grew = v["events"].as_array().is_some_and(|e| e.len() > seen_events);
                if !grew && asked.elapsed() < std::time::Duration::from_millis(200) {
                    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                }
                v
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > std::time::Duration::from_secs(120) {
                    return Err(eyre::Report::from(e).wrap_err(format!(
                        "lost the node for 2 minutes; follow later with `reef bounty show {id}`"
                    )));
                }
                pb.set_message(format!("node unreachable, retrying ({e})"));
                if e.status() == Some(401) {
                    let _ = api.login(client.signer()).await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Some(evs) = v["events"].as_array() {
            for e in evs.iter().skip(seen_events) {
                say(format!(
                    "  {:<16} {}",
                    e["event"].as_str().unwrap_or(""),
                    e["detail"].as_str().unwrap_or("")
                ));
            }
            seen_events = evs.len();
        }
        let phase = v["phase"].as_str().unwrap_or("").to_string();
        pb.set_message(format!("{phase} ({} bids)", v["bids"]));
        if phase == "awaiting_award" && award.is_none() {
            let (bid, sig) = serde_json::from_value::<crate::market::ranking::SignedBid>(
                v["winning_bid"].clone(),
            )
            .map_err(|e| e.to_string())
            .and_then(|s| s.decode())
            .map_err(|e| eyre!("node sent a bad winning bid: {e}"))?;
            let txs = match parent {
                // Funded from the reward: post it from the pledge, then award the bid.
                Some(parent) => {
                    pb.set_message("posting from your reward, then awarding on-chain");
                    let sub_id = escrow_client::escrow::bounty_id(client.address(), salt);
                    // Posted already (a run that stopped between the two transactions).
                    let mut txs = Vec::new();
                    if client.status_of(sub_id).await?.0 == Status::None {
                        txs.push(client.post_from_reward(salt, terms.clone(), parent).await?.2);
                    }
                    txs.push(client.award(sub_id, &terms, bid.clone(), sig).await?.1);
                    txs
                }
                None => {
                    pb.set_message("awarding on-chain (create + fund + award)");
                    client
                        .post_fund_and_award(salt, terms.clone(), bid.clone(), sig, p.approve)
                        .await?
                        .2
                }
            };
            for t in &txs {
                say(format!("  {:<16} tx {}  gas {}", t.action, t.hash, t.gas_used));
            }
            say(format!(
                "  awarded to {} at {} ({} decimals)",
                bid.bidder,
                format_units(bid.amount, decimals).unwrap_or_default(),
                decimals
            ));
            award = txs.last().cloned();
            if p.detach {
                break v;
            }
        }
        if phase == "settled" || phase == "failed" {
            break v;
        }
        // A rejection settles by refund (after the challenge window or the deadline): the
        // outcome is known now, so stop following.
        if phase == "settling" && v["verdict"]["accept"] == false {
            say("  rejected: the poster is refunded when the deadline passes (`reef bounty refund`)".to_string());
            break v;
        }
    };
    pb.finish_and_clear();
    let onchain = client.bounty(parse_bounty_id(&id)?).await.ok();
    Ok(PostOutcome { id, result, onchain, award, decimals, detached: p.detach, rating: None })
}

impl BountyArgs {
    /// Prints how a `post --node` ended (`--json`: one object) and turns an end that did not
    /// pay for work into its exit status.
    fn print_outcome(&self, o: &PostOutcome) -> eyre::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&o.summary())?);
        } else {
            println!("bounty {}", o.id);
            println!("  phase    {}", o.result["phase"].as_str().unwrap_or(""));
            if let Some(s) = &o.onchain {
                println!("  on-chain {}", s.status);
                if !s.record.provider.is_zero() {
                    println!(
                        "  provider {} at price {}",
                        s.record.provider,
                        format_units(U256::from(s.record.price), o.decimals)?
                    );
                }
            }
            if let Some(v) = o.result["verdict"].as_object() {
                println!(
                    "  verdict  {} ({})",
                    if v["accept"] == true { "accept" } else { "reject" },
                    v["reason"].as_str().unwrap_or("")
                );
            }
            if let Some(n) = o.result["note"].as_str() {
                println!("  note     {n}");
            }
        }
        let code = post_exit_code(
            o.result["phase"].as_str().unwrap_or(""),
            o.onchain.as_ref().map(|s| s.status),
            o.result["verdict"]["accept"] == false,
            o.detached && o.award.is_some(),
        );
        if code != 0 {
            let why = o.result["note"].as_str().unwrap_or("");
            return Err(super::Exit {
                code,
                message: format!(
                    "bounty {} did not settle in the provider's favour (phase {}, on-chain {}{}{})",
                    o.id,
                    o.result["phase"].as_str().unwrap_or("?"),
                    o.onchain.as_ref().map(|s| s.status.name()).unwrap_or("not posted"),
                    if why.is_empty() { "" } else { ": " },
                    why
                ),
            }
            .into());
        }
        Ok(())
    }

    async fn show(&self, client: &ReefClient, id: U256) -> eyre::Result<()> {
        let state = client.bounty(id).await?;
        let j = BountyJson::from(&state);
        // Funded from a pending reward: its token is a pledge on the parent bounty.
        let pledge = client.pledge(state.record.token).await?;
        if self.json {
            let mut v = serde_json::to_value(&j)?;
            if let Some(p) = &pledge {
                v["pledge"] = serde_json::to_value(p)?;
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        let r = &state.record;
        println!("bounty   {id:#066x}");
        println!("status   {}", state.status);
        println!("mode     {}", j.mode);
        println!("poster   {}", r.poster);
        println!("token    {}", token_name(r.token));
        if let Some(p) = &pledge {
            println!(
                "funding  from {}'s reward on bounty {:#066x} (parent {}): paid in credits, {}",
                p.provider,
                p.parent,
                p.parent_status,
                match p.state {
                    escrow_client::pledge::PledgeState::Pending => "redeemable once it settles",
                    escrow_client::pledge::PledgeState::Redeemable =>
                        "redeemable now (`reef bounty redeem`)",
                    escrow_client::pledge::PledgeState::Void =>
                        "void: the parent did not pay its provider",
                }
            );
        }
        println!("amount   {}", r.amount);
        if !r.provider.is_zero() {
            println!("provider {} at price {}", r.provider, r.price);
        }
        println!("evaluator {}", r.evaluator);
        if !r.arbiter.is_zero() {
            println!("arbiter  {}", r.arbiter);
        }
        println!("deadline {} (unix)", r.deadline);
        if r.resultHash != B256::ZERO {
            println!("result   {}", r.resultHash);
        }
        println!("history:");
        for h in &state.history {
            println!(
                "  block {:>6}  {:<16} {}",
                h.block,
                h.event,
                h.tx.map(|t| t.to_string()).unwrap_or_default()
            );
        }
        Ok(())
    }

    async fn list(&self, client: &ReefClient, poster: Option<Address>) -> eyre::Result<()> {
        let ids = client.bounty_ids(poster).await?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            rows.push(client.bounty(id).await?);
        }
        if self.json {
            let v: Vec<BountyJson> = rows.iter().map(BountyJson::from).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        if rows.is_empty() {
            println!("no bounties");
            return Ok(());
        }
        println!("{:<20} {:<10} {:>24} {:<8} provider", "id", "status", "amount", "token");
        for s in &rows {
            let prov = if s.record.provider.is_zero() {
                "-".to_string()
            } else {
                s.record.provider.to_string()
            };
            println!(
                "{:<20} {:<10} {:>24} {:<8} {}",
                short_id(s.id),
                s.status.to_string(),
                s.record.amount,
                token_name(s.record.token),
                prov
            );
        }
        Ok(())
    }

    /// accept / reject / dispute / resolve / cancel, with the role and state checked first.
    async fn verb(
        &self,
        client: &ReefClient,
        id: U256,
        verb: &str,
        bps: Option<u16>,
    ) -> eyre::Result<()> {
        let state = client.bounty(id).await?;
        let r = &state.record;
        let me = client.address();
        let need = |ok: bool, why: String| if ok { Ok(()) } else { Err(eyre!(why)) };
        match verb {
            "accept" | "reject" => {
                need(
                    r.evaluator == me,
                    format!("only the evaluator {} may {verb}; you are {me}", r.evaluator),
                )?;
                need(
                    state.status == Status::Submitted,
                    format!("bounty is {}, not submitted: nothing to {verb} yet", state.status),
                )?;
            }
            "dispute" => {
                need(
                    !r.arbiter.is_zero(),
                    "this bounty has no arbiter, so it cannot be disputed".into(),
                )?;
                need(
                    me == r.poster || me == r.provider,
                    "only the poster or the provider may dispute".into(),
                )?;
            }
            "resolve" => {
                need(r.arbiter == me, format!("only the arbiter {} may resolve", r.arbiter))?
            }
            "revoke" => {
                overdue(client, &state).await?;
            }
            "cancel" => {
                need(r.poster == me, "only the poster may cancel".into())?;
                need(
                    matches!(state.status, Status::Open | Status::Funded),
                    format!("bounty is {}: only unawarded bounties can be cancelled", state.status),
                )?;
            }
            _ => {}
        }
        let pb = spinner(format!("{verb} {id:#066x}"));
        let out = match verb {
            "accept" => client.release(id, r).await,
            "reject" => client.reject(id, r).await,
            "dispute" => client.dispute(id, r).await,
            "resolve" => client.resolve(id, r, bps.unwrap_or_default()).await,
            "revoke" => client.revoke_award(id, r).await,
            _ => client.cancel(id, r).await,
        };
        pb.finish_and_clear();
        let out = out?;
        let (status, _) = client.status_of(id).await?;
        if self.json {
            println!(
                "{}",
                serde_json::json!({ "id": format!("{id:#066x}"), "action": verb, "status": status, "tx": out })
            );
        } else {
            println!(
                "{verb}: bounty {id:#066x} is now {status} (tx {}, gas {})",
                out.hash, out.gas_used
            );
        }
        Ok(())
    }

    /// Hands an overdue award to the best remaining bid of the node's sealed ranking.
    async fn reassign(&self, client: &ReefClient, id: U256, node: &str) -> eyre::Result<()> {
        use super::nodeapi::NodeApi;
        let state = client.bounty(id).await?;
        overdue(client, &state).await?;
        let (base, signer) = (NodeApi::new(node), client.signer().clone());
        let patience = std::time::Duration::from_secs(60);
        let api = super::nodeapi::wait_for_node("logging in to the node", patience, || {
            let (mut api, signer) = (base.clone(), signer.clone());
            async move { api.login(&signer).await.map(|_| api) }
        })
        .await?;
        let key = crate::market::id_hex(id);
        let path = format!("/v1/market/bounties/{key}");
        let view =
            super::nodeapi::wait_for_node("reading the ranking", patience, || api.get(&path))
                .await?;
        if view["ranking"].is_null() {
            return Err(eyre!(
                "the node shows no ranking for {key} (only the poster sees it; is this the node that ran the auction?)"
            ));
        }
        let ranking: crate::market::ranking::Ranking =
            serde_json::from_value(view["ranking"].clone())
                .map_err(|e| eyre!("the node sent a malformed ranking for {key}: {e}"))?;
        let now = client.chain_time().await?;
        let late = state.record.provider;
        // An evaluator (not the poster) may not raise the price or take the job itself.
        let evaluator = (client.address() != state.record.poster)
            .then(|| (state.record.evaluator, alloy::primitives::U256::from(state.record.price)));
        let next = crate::market::ranking::next_runner_up(&ranking, late, now, evaluator);
        let Some((bid, sig)) = next else {
            return Err(eyre!(
                "no other valid bid in the ranking of {key}; end the award with `reef bounty revoke {key}` to be refunded"
            ));
        };
        let pb = spinner(format!("reassigning {key} to {}", bid.bidder));
        let out = client.reassign(id, &state.record, &bid, sig).await;
        pb.finish_and_clear();
        let (_, out) = out?;
        if self.json {
            println!(
                "{}",
                serde_json::json!({ "id": key, "action": "reassign", "from": late, "to": bid.bidder, "price": bid.amount.to_string(), "eta": bid.eta, "tx": out })
            );
        } else {
            println!(
                "reassign: bounty {key} moved from {late} to {} at price {} (tx {}, gas {})",
                bid.bidder, bid.amount, out.hash, out.gas_used
            );
        }
        Ok(())
    }

    async fn refund(&self, client: &ReefClient, id: U256) -> eyre::Result<()> {
        let state = client.bounty(id).await?;
        if state.status.is_terminal() {
            return Err(eyre!("bounty {id:#066x} is already {} — nothing to refund", state.status));
        }
        if !matches!(state.status, Status::Open | Status::Funded | Status::Awarded) {
            return Err(eyre!(
                "bounty {id:#066x} is {}: refunds after a submission go through the verdict, review window or dispute",
                state.status
            ));
        }
        let now = client.chain_time().await?;
        if now <= state.record.deadline {
            return Err(eyre!(
                "bounty {id:#066x} is still running: its deadline passes in {}s (chain time)",
                state.record.deadline - now
            ));
        }
        let pb = spinner("refunding");
        let out = client.refund_expired(id, &state.record).await;
        pb.finish_and_clear();
        let out = out?;
        if self.json {
            println!(
                "{}",
                serde_json::json!({"id": format!("{id:#066x}"), "refunded": state.record.amount.to_string(), "tx": out})
            );
        } else {
            println!(
                "refunded {} to {} (tx {}, gas {})",
                state.record.amount, state.record.poster, out.hash, out.gas_used
            );
        }
        Ok(())
    }

    async fn redeem(&self, client: &ReefClient, target: &str) -> eyre::Result<()> {
        // An address (20 bytes) is the pledge token itself; anything else is a sub-bounty id.
        let token = match target.parse::<Address>() {
            Ok(a) => a,
            Err(_) => client.bounty(parse_bounty_id(target)?).await?.record.token,
        };
        let pledge = client.pledge(token).await?.ok_or_else(|| {
            eyre!("{token} is not a pledge token: only sub-bounties funded from a reward (`post --from-reward`) pay in credits")
        })?;
        let credit = client.ledger_credit(token, client.address()).await?;
        let paid = pledge.value_of(credit);
        let real = client.underlying_token(token).await?;
        let decimals = Self::decimals(client, real).await?;
        let pb = spinner("redeeming pledge credits");
        let out = client.redeem_read_pledge(&pledge, credit).await;
        pb.finish_and_clear();
        let out = out?;
        let nested = pledge.underlying != real;
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "pledge_token": token,
                    "parent": format!("{:#066x}", pledge.parent),
                    "credit": credit.to_string(),
                    "paid": paid.to_string(),
                    "paid_in": pledge.underlying,
                    "tx": out,
                })
            );
        } else {
            println!(
                "redeemed {} credits for {} {} (tx {}, gas {})",
                format_units(credit, decimals)?,
                format_units(paid, decimals)?,
                token_name(pledge.underlying),
                out.hash,
                out.gas_used
            );
            if nested {
                println!(
                    "  that is a credit in the parent's own pledge: redeem {} once bounty {:#066x}'s parent settles",
                    pledge.underlying, pledge.parent
                );
            }
        }
        Ok(())
    }
}

fn token_name(token: Address) -> String {
    if token.is_zero() { "ETH".into() } else { format!("{token}") }
}
