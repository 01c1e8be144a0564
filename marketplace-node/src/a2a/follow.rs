//! A task's follower: posts its bounty through the node's own marketplace with the node's
//! market key (the same path as `reef bounty post --node` and MCP's `post_bounty`: sealed
//! bids, then post + fund + award in one transaction, then verification and payout), and
//! when the bounty ends records the outcome and returns what was not spent to the caller.

use alloy::primitives::{Address, U256};
use escrow_client::{Status, bindings::token::ReefTestToken as Erc20};
use serde_json::Value;

use super::{
    A2a,
    tasks::{Outcome, TaskRow, TaskState},
    terms::{TaskTerms, Verify},
};

/// What a task's bounty is posted with.
#[derive(Debug, Clone)]
pub(crate) struct PostSpec<'a> {
    /// The caller's terms (verification, bid window, deadline).
    pub(crate) terms: &'a TaskTerms,
    /// The description (the message's text).
    pub(crate) description: &'a str,
    /// The task input (the message's data part, or null).
    pub(crate) input: &'a Value,
    /// The skills a provider needs.
    pub(crate) skills: &'a [String],
    /// The reward in whole token units.
    pub(crate) reward: &'a str,
    /// The reward token.
    pub(crate) token: Address,
    /// The node's own REST API.
    pub(crate) node_url: &'a str,
    /// The salt (the bounty id is `bountyIdOf(node, salt)`).
    pub(crate) salt: alloy::primitives::B256,
}

/// `reef bounty post` arguments for a task (the description last, after `--`, so a text
/// starting with `-` is never read as a flag).
pub(crate) fn post_argv(p: &PostSpec<'_>) -> Vec<String> {
    let PostSpec { terms: t, description, input, skills, reward, token, node_url, salt } = *p;
    let mut a: Vec<String> = vec![
        "--reward".into(),
        reward.into(),
        "--token".into(),
        token.to_string(),
        "--node".into(),
        node_url.into(),
        "--bid-window".into(),
        format!("{}ms", t.bid_window_ms()),
        "--deadline".into(),
        format!("{}s", t.deadline_secs()),
        "--salt".into(),
        salt.to_string(),
        "--approve".into(),
        "--wait-node".into(),
        "30s".into(),
    ];
    match &t.verify {
        Verify::Hash { expect } => {
            a.extend(["--verify".into(), "hash".into(), "--expect".into(), expect.to_string()]);
        }
        Verify::Command { verifier } => {
            a.extend(["--verify".into(), "command".into(), "--verifier".into(), verifier.clone()]);
        }
    }
    if !input.is_null() {
        a.extend(["--input".into(), input.to_string()]);
    }
    if !skills.is_empty() {
        a.extend(["--skills".into(), skills.join(",")]);
    }
    a.extend(["--".into(), description.into()]);
    a
}

impl A2a {
    /// The outcome of a task whose bounty paid `provider` its `price`: the rest of the budget
    /// goes back to the caller.
    pub(crate) async fn paid_out(&self, row: &TaskRow, provider: Address, price: U256) -> Outcome {
        let mut out = self
            .give_back(
                row,
                row.paid.saturating_sub(price),
                TaskState::Completed,
                "the result was verified and the provider paid".into(),
            )
            .await;
        out.provider = Some(provider);
        out.price = Some(price);
        out
    }

    /// Runs the task's bounty to its end and records the outcome.
    pub(crate) async fn follow(self, row: TaskRow, argv: Vec<String>) {
        let chain = self.market().chain().clone();
        let id = row.id.clone();
        let progress = move |line: String| tracing::debug!(task = %id, "{line}");
        let outcome = match crate::cmd::bounty::post_through_node(&chain, &argv, &progress).await {
            Ok(o) => {
                let award_tx = o.award.as_ref().map(|t| t.hash);
                let phase = o.result["phase"].as_str().unwrap_or("").to_string();
                let accepted = o.result["verdict"]["accept"].as_bool();
                let note = o.result["note"].as_str().unwrap_or("").to_string();
                match (&o.onchain, phase.as_str(), accepted) {
                    (None, ..) => {
                        self.unspent(
                            &row,
                            TaskState::Failed,
                            reason_or(&note, "no provider was awarded"),
                        )
                        .await
                    }
                    (Some(s), "settled", Some(true)) if s.status == Status::Completed => {
                        let price = U256::from(s.record.price);
                        let mut out = self.paid_out(&row, s.record.provider, price).await;
                        out.award_tx = award_tx;
                        out
                    }
                    (Some(s), ..) => Outcome {
                        state: TaskState::Failed,
                        reason: format!(
                            "the bounty ended {phase} ({}){}; the escrow refunds the budget to the node's wallet after its challenge window or deadline, and the node operator returns it (docs/a2a.md, \"Refunds\")",
                            s.status.name(),
                            if note.is_empty() { String::new() } else { format!(": {note}") }
                        ),
                        provider: (!s.record.provider.is_zero()).then_some(s.record.provider),
                        price: (s.record.price != 0).then(|| U256::from(s.record.price)),
                        refund: None,
                        refund_tx: None,
                        award_tx,
                    },
                }
            }
            Err(e) => {
                // Nothing was spent unless the bounty exists on-chain.
                let spent = match crate::market::parse_id(&row.bounty) {
                    Ok(bid) => {
                        chain.status_of(bid).await.map(|(s, _)| s != Status::None).unwrap_or(true)
                    }
                    Err(_) => true,
                };
                if spent {
                    Outcome {
                        state: TaskState::Failed,
                        reason: format!("following the bounty failed after its award: {e:#}"),
                        provider: None,
                        price: None,
                        refund: None,
                        refund_tx: None,
                        award_tx: None,
                    }
                } else {
                    self.unspent(
                        &row,
                        TaskState::Failed,
                        format!("the bounty could not be posted: {e:#}"),
                    )
                    .await
                }
            }
        };
        if let Err(e) = self.store().finish(&row.id, &outcome).await {
            tracing::error!(task = %row.id, error = %e, "cannot record an A2A task's outcome");
        }
        self.followers().remove(&row.id);
        self.finished(&row.id);
    }

    /// The whole payment goes back (nothing was posted on-chain).
    async fn unspent(&self, row: &TaskRow, state: TaskState, reason: String) -> Outcome {
        self.give_back(row, row.paid, state, reason).await
    }

    /// Transfers `amount` back to the task's caller.
    pub(super) async fn give_back(
        &self,
        row: &TaskRow,
        amount: U256,
        state: TaskState,
        reason: String,
    ) -> Outcome {
        let mut out = Outcome {
            state,
            reason,
            provider: None,
            price: None,
            refund: Some(amount),
            refund_tx: None,
            award_tx: None,
        };
        if amount.is_zero() {
            return out;
        }
        let call = Erc20::transferCall { to: row.owner, value: amount };
        match self
            .market()
            .chain()
            .send_call("a2a refund", self.terms().token, &call, U256::ZERO)
            .await
        {
            Ok(tx) => out.refund_tx = Some(tx.hash),
            Err(e) => {
                tracing::error!(task = %row.id, error = %e, "cannot return an A2A task's unspent budget");
                out.reason = format!(
                    "{}; returning the unspent budget failed ({e}): the node operator owes it",
                    out.reason
                );
            }
        }
        out
    }
}

fn reason_or(note: &str, default: &str) -> String {
    if note.is_empty() { default.to_string() } else { format!("{default}: {note}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;
    use serde_json::json;

    #[test]
    fn the_post_arguments_carry_the_terms_and_keep_the_description_positional() {
        let t = TaskTerms {
            budget: U256::from(5),
            payment_tx: B256::ZERO,
            verify: Verify::Hash { expect: json!([1, 2]) },
            skills: vec![],
            bid_window_ms: Some(500),
            deadline_secs: None,
        };
        let input = json!([2, 1]);
        let skills = ["sort".to_string()];
        let a = post_argv(&PostSpec {
            terms: &t,
            description: "--help me",
            input: &input,
            skills: &skills,
            reward: "5",
            token: Address::ZERO,
            node_url: "http://n",
            salt: B256::ZERO,
        });
        let at = |flag: &str| a[a.iter().position(|x| x == flag).unwrap() + 1].clone();
        assert_eq!(at("--bid-window"), "500ms");
        assert_eq!(at("--deadline"), "3600s");
        assert_eq!(at("--expect"), "[1,2]");
        assert_eq!(at("--input"), "[2,1]");
        assert_eq!(at("--skills"), "sort");
        assert_eq!(a[a.len() - 2..], ["--".to_string(), "--help me".to_string()]);
    }
}
