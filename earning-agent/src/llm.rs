//! LLM brains: a model behind any OpenAI-compatible chat-completions API (llama.cpp server,
//! vLLM, Ollama, hosted APIs) decides whether and at what price an agent bids, performs the task
//! with tool calling (the agent's MCP tools, and posting funded sub-bounties when allowed), and
//! answers with the result.
//!
//! The prompts are plain files a user can read and override ([`Prompts::load`]); the defaults
//! live in `prompts/` at the repository root. Prices are bounded by the operator's flags whatever
//! the model says, and the tool loop by a step limit. What is not here: streaming, and models that
//! cannot answer in JSON (the bid answer must be a JSON object).

use std::{path::Path, sync::Arc, time::Duration};

use alloy::transports::http::reqwest;
use serde_json::{Value, json};

use crate::{Cfp, Task, TaskHandler, TaskOutcome, task::BoxFuture};

/// Errors of an LLM brain.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model's server could not be reached.
    #[error("model server {url} unreachable: {reason}")]
    Unreachable {
        /// The chat-completions URL.
        url: String,
        /// What the HTTP client reported.
        reason: String,
    },
    /// The model's server answered with an error status.
    #[error("model server answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The answer was not what the prompt asked for.
    #[error("the model's answer is not usable: {0}")]
    BadAnswer(String),
    /// The model kept calling tools.
    #[error("the model did not finish within {0} steps")]
    TooManySteps(usize),
    /// A prompt file could not be read.
    #[error("prompt {path}: {reason}")]
    Prompt {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = LlmError> = std::result::Result<T, E>;

/// The system prompts of a brain.
#[derive(Debug, Clone)]
pub struct Prompts {
    /// How to decide on a call for proposals (answer: a JSON object).
    pub bid: String,
    /// How to perform a task (tools, then the result).
    pub work: String,
}

impl Default for Prompts {
    fn default() -> Self {
        Self {
            bid: include_str!("../../prompts/bid.md").to_string(),
            work: include_str!("../../prompts/work.md").to_string(),
        }
    }
}

impl Prompts {
    /// `dir/bid.md` and `dir/work.md` where they exist, the defaults otherwise.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut p = Self::default();
        for (name, slot) in [("bid.md", &mut p.bid), ("work.md", &mut p.work)] {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => *slot = text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(LlmError::Prompt {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(p)
    }
}

/// A tool the model may call (OpenAI function-calling shape).
#[derive(Debug, Clone)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments (an object schema).
    pub parameters: Value,
}

/// Runs the tools the model calls. A failure goes back to the model as the tool's answer.
pub trait ToolRunner: Send + Sync {
    /// Calls `name` with `args`.
    fn call(&self, name: &str, args: Value) -> BoxFuture<Result<Value, String>>;
}

/// Posts a sub-bounty funded from the agent's pending reward on `parent` and waits for its
/// verified result (the CLI does it with `reef bounty post --from-reward`). `args` are the
/// `post_sub_bounty` tool's arguments; the answer goes back to the model.
pub trait SubBountyPoster: Send + Sync {
    /// Posts and follows one sub-bounty.
    fn post(&self, parent: String, args: Value) -> BoxFuture<Result<Value, String>>;
}

/// The model's decision on a call for proposals.
#[derive(Debug, Clone, PartialEq)]
pub struct BidDecision {
    /// The price in the token's smallest unit, within the operator's bounds and the budget;
    /// `None`: no bid.
    pub price: Option<u128>,
    /// The model's reason (logged).
    pub reason: String,
}

/// Where the model runs and how it is asked.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Base URL of the OpenAI-compatible API (e.g. `http://127.0.0.1:8080/v1`).
    pub base_url: String,
    /// The model's name.
    pub model: String,
    /// Bearer key (from an environment variable; never logged).
    pub api_key: Option<String>,
    /// System prompts.
    pub prompts: Prompts,
    /// Most chat turns of one task (each tool round is one).
    pub max_steps: usize,
    /// Timeout of one chat request.
    pub timeout: Duration,
}

/// An LLM brain (cheap to clone).
#[derive(Debug, Clone)]
pub struct Llm {
    cfg: Arc<LlmConfig>,
    http: reqwest::Client,
}

/// Whole token units of `v` base units with `decimals` (for the model's eyes).
fn units(v: u128, decimals: u8) -> String {
    alloy::primitives::utils::format_units(alloy::primitives::U256::from(v), decimals)
        .unwrap_or_else(|_| v.to_string())
}

impl Llm {
    /// A brain on `cfg`.
    pub fn new(cfg: LlmConfig) -> Self {
        let http = reqwest::Client::builder().timeout(cfg.timeout).build().unwrap_or_default();
        Self { cfg: Arc::new(cfg), http }
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.cfg.base_url.trim_end_matches('/'))
    }

    /// One chat-completions request; returns the first choice's message.
    async fn chat(&self, messages: &[Value], tools: &[Tool], json_answer: bool) -> Result<Value> {
        let mut body = json!({ "model": self.cfg.model, "messages": messages, "temperature": 0 });
        if !tools.is_empty() {
            body["tools"] = tools
                .iter()
                .map(|t| json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": t.parameters } }))
                .collect();
        }
        if json_answer {
            body["response_format"] = json!({ "type": "json_object" });
        }
        let url = self.url();
        let mut req = self.http.post(&url).json(&body);
        if let Some(k) = &self.cfg.api_key {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| LlmError::Unreachable { url: url.clone(), reason: e.to_string() })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| LlmError::BadAnswer(format!("not JSON ({e})")))?;
        v["choices"][0]
            .get("message")
            .cloned()
            .ok_or_else(|| LlmError::BadAnswer("no choices[0].message".into()))
    }

    /// Asks the model whether to bid on `cfp` (the call for proposals as the agent got it) and
    /// at what price. `decimals` are the reward token's; the price is clamped to
    /// `floor..=ceiling` (base units) and the budget, and `None` when the model declines or its
    /// price is below `floor`.
    pub async fn decide_bid(
        &self,
        cfp: &Value,
        decimals: u8,
        floor: u128,
        ceiling: u128,
    ) -> Result<BidDecision> {
        let budget: u128 =
            cfp["record"]["amount"].as_str().and_then(|a| a.parse().ok()).unwrap_or_default();
        let ceiling = ceiling.min(budget);
        let ask = json!({
            "task": cfp["description"],
            "input": cfp["input"],
            "skills": cfp["skills"],
            "verification": cfp["verify"],
            "budget": units(budget, decimals),
            "your_price_range": [units(floor, decimals), units(ceiling, decimals)],
            "deadline_unix": cfp["record"]["deadline"],
        });
        let messages = [
            json!({ "role": "system", "content": self.cfg.prompts.bid }),
            json!({ "role": "user", "content": ask.to_string() }),
        ];
        let msg = self.chat(&messages, &[], true).await?;
        let text = msg["content"].as_str().unwrap_or_default();
        let v: Value = serde_json::from_str(text.trim()).map_err(|e| {
            LlmError::BadAnswer(format!("bid answer is not a JSON object ({e}): {text:.200}"))
        })?;
        let reason = v["reason"].as_str().unwrap_or_default().to_string();
        if v["bid"] != true {
            return Ok(BidDecision { price: None, reason });
        }
        let said = match &v["price"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(LlmError::BadAnswer(format!("price {other} is not a number"))),
        };
        let price: u128 = alloy::primitives::utils::parse_units(&said, decimals)
            .map_err(|e| LlmError::BadAnswer(format!("price {said:?}: {e}")))?
            .get_absolute()
            .try_into()
            .map_err(|_| LlmError::BadAnswer(format!("price {said:?} is too large")))?;
        if floor > ceiling || price < floor {
            return Ok(BidDecision {
                price: None,
                reason: format!("{reason} (price {said} is below this agent's floor)"),
            });
        }
        Ok(BidDecision { price: Some(price.min(ceiling)), reason })
    }

    /// Performs `task` (`{"description", "input", ...}`): the model may call `tools` (run by
    /// `runner`, each answer fed back) until it answers without a tool call; that answer, as
    /// JSON when it parses (a ```json fence is accepted), else as text, is the result.
    pub async fn perform(
        &self,
        task: &Value,
        tools: &[Tool],
        runner: &dyn ToolRunner,
    ) -> Result<Value> {
        let mut messages = vec![
            json!({ "role": "system", "content": self.cfg.prompts.work }),
            json!({ "role": "user", "content": task.to_string() }),
        ];
        for _ in 0..self.cfg.max_steps.max(1) {
            let msg = self.chat(&messages, tools, false).await?;
            let calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
            if calls.is_empty() {
                let text = msg["content"].as_str().unwrap_or_default();
                return Ok(parse_result(text));
            }
            messages.push(msg.clone());
            for call in calls {
                let id = call["id"].as_str().unwrap_or_default().to_string();
                let name = call["function"]["name"].as_str().unwrap_or_default().to_string();
                let args: Value = match &call["function"]["arguments"] {
                    Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                    other => other.clone(),
                };
                let answer = if tools.iter().any(|t| t.name == name) {
                    match runner.call(&name, args).await {
                        Ok(v) => json!({ "ok": true, "result": v }),
                        Err(e) => json!({ "ok": false, "error": e }),
                    }
                } else {
                    json!({ "ok": false, "error": format!("no tool named {name:?}") })
                };
                messages.push(
                    json!({ "role": "tool", "tool_call_id": id, "content": answer.to_string() }),
                );
            }
        }
        Err(LlmError::TooManySteps(self.cfg.max_steps))
    }
}

/// The model's final answer as a result: JSON when it parses (inside a ```json fence too).
fn parse_result(text: &str) -> Value {
    let t = text.trim();
    let inner = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.strip_suffix("```"))
        .unwrap_or(t)
        .trim();
    serde_json::from_str(inner).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The tool offered when the agent may fund sub-bounties from its pending reward.
pub fn sub_bounty_tool(max_reward: &str) -> Tool {
    Tool {
        name: "post_sub_bounty".into(),
        description: format!(
            "Delegate part of the task to another agent: posts a sub-bounty on the marketplace, funded from your pending reward on this task, and waits for its verified result. Rewards of all sub-bounties of one task together may not exceed {max_reward} (token units)."
        ),
        parameters: json!({
            "type": "object",
            "properties": {
                "description": { "type": "string", "description": "what the sub-task's provider must do" },
                "reward": { "type": "string", "description": "reward in token units, e.g. \"2\"" },
                "skills": { "type": "array", "items": { "type": "string" }, "description": "skills the provider needs" },
                "input": { "description": "the sub-task's input (any JSON)" },
                "expect": { "description": "the exact expected result, when known (hash verification); else the node's verifier named in `verifier` checks it" },
                "verifier": { "type": "string", "description": "a verifier program installed on the node (command verification)" }
            },
            "required": ["description", "reward", "skills", "input"]
        }),
    }
}

/// An LLM brain as the agent's [`TaskHandler`] and bid policy: the model performs each task,
/// with the agent's MCP tools and (when allowed) funded sub-bounties as tools.
pub struct LlmHandler {
    llm: Llm,
    #[cfg(feature = "mcp")]
    mcp: Option<Arc<crate::mcp::McpTools>>,
    /// Who posts sub-bounties, and the per-task budget (token units) the model is told.
    sub_bounties: Option<(Arc<dyn SubBountyPoster>, String)>,
}

impl std::fmt::Debug for LlmHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmHandler").field("llm", &self.llm).finish_non_exhaustive()
    }
}

impl LlmHandler {
    /// A handler that asks `llm`.
    pub fn new(llm: Llm) -> Self {
        Self {
            llm,
            #[cfg(feature = "mcp")]
            mcp: None,
            sub_bounties: None,
        }
    }

    /// Offers the tools of this MCP server to the model.
    #[cfg(feature = "mcp")]
    pub fn with_mcp(mut self, tools: Arc<crate::mcp::McpTools>) -> Self {
        self.mcp = Some(tools);
        self
    }

    /// Lets the model fund sub-bounties from the pending reward through `poster`, which
    /// enforces the per-task `budget` (token units; the model is told it).
    pub fn with_sub_bounties(mut self, poster: Arc<dyn SubBountyPoster>, budget: String) -> Self {
        self.sub_bounties = Some((poster, budget));
        self
    }

    /// The bid policy: the model decides, bounded by `floor..=ceiling` whole token units.
    pub fn bid_policy(&self, floor: String, ceiling: Option<String>) -> crate::BidPolicy {
        let llm = self.llm.clone();
        crate::BidPolicy::asking(move |cfp: Cfp| {
            let (llm, floor, ceiling) = (llm.clone(), floor.clone(), ceiling.clone());
            Box::pin(async move {
                let decimals = cfp.decimals.unwrap_or(18);
                let parse = |s: &str| -> Option<u128> {
                    crate::parse_amount(s, decimals).ok()?.try_into().ok()
                };
                let lo = parse(&floor).unwrap_or(0);
                let hi = ceiling.as_deref().and_then(parse).unwrap_or(cfp.budget);
                match llm.decide_bid(&cfp.raw, decimals, lo, hi).await {
                    Ok(d) => {
                        tracing::info!(bounty = %crate::id_hex(cfp.bounty_id), price = ?d.price, reason = %d.reason, "the model decided");
                        d.price
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the model could not decide on a bid; no bid");
                        None
                    }
                }
            })
        })
    }

    fn tools(&self) -> Vec<Tool> {
        let mut tools = Vec::new();
        #[cfg(feature = "mcp")]
        if let Some(m) = &self.mcp {
            tools.extend(m.tools().map(|t| Tool {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.input_schema.clone(),
            }));
        }
        if let Some((_, budget)) = &self.sub_bounties {
            tools.push(sub_bounty_tool(budget));
        }
        tools
    }
}

/// The tools of one task: the MCP server's, and sub-bounties on the task's bounty.
struct TaskTools {
    #[cfg(feature = "mcp")]
    mcp: Option<Arc<crate::mcp::McpTools>>,
    sub_bounties: Option<Arc<dyn SubBountyPoster>>,
    parent: Option<String>,
}

impl ToolRunner for TaskTools {
    fn call(&self, name: &str, args: Value) -> BoxFuture<Result<Value, String>> {
        if name == "post_sub_bounty" {
            return match (self.sub_bounties.clone(), self.parent.clone()) {
                (Some(poster), Some(parent)) => poster.post(parent, args),
                (None, _) => Box::pin(async { Err("sub-bounties are not allowed".to_string()) }),
                (_, None) => Box::pin(async {
                    Err("this task is not a bounty: nothing to fund sub-bounties from".to_string())
                }),
            };
        }
        #[cfg(feature = "mcp")]
        if let Some(m) = self.mcp.clone() {
            let name = name.to_string();
            return Box::pin(async move { m.call_named(&name, &args).await });
        }
        let name = name.to_string();
        Box::pin(async move { Err(format!("no tool named {name:?}")) })
    }
}

impl TaskHandler for LlmHandler {
    fn run(&self, task: Task) -> BoxFuture<TaskOutcome> {
        let (llm, tools) = (self.llm.clone(), self.tools());
        let runner = TaskTools {
            #[cfg(feature = "mcp")]
            mcp: self.mcp.clone(),
            sub_bounties: self.sub_bounties.as_ref().map(|(p, _)| p.clone()),
            parent: task.bounty_id().map(str::to_string),
        };
        let ask = json!({
            "description": task.input["description"],
            "input": task.bounty_input(),
            "verification": task.input["verify"],
        });
        Box::pin(async move {
            match llm.perform(&ask, &tools, &runner).await {
                Ok(v) => TaskOutcome::done(v),
                Err(e) => TaskOutcome::failed(format!("the model failed the task: {e}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_parse_as_json_inside_or_outside_a_fence() {
        assert_eq!(parse_result("[1, 2]"), json!([1, 2]));
        assert_eq!(parse_result("```json\n{\"a\": 1}\n```"), json!({ "a": 1 }));
        assert_eq!(parse_result("sorted!"), json!("sorted!"));
    }
}
