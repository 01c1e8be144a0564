//! A2A agents as Reef earning agents: a [`TaskHandler`] that forwards each won task to a
//! remote agent speaking A2A 1.0 over JSON-RPC (`SendMessage`, then `GetTask` until the task
//! ends) and delivers its artifact as the result. `reef agent run --a2a <card URL>` puts the
//! remote card's skills on the Reef card, bids within its flags' bounds and runs this handler;
//! the result then goes through the market's normal verification and payout.
//!
//! The task is sent as one message: a text part with the bounty's description and, when the
//! bounty has an input, a JSON data part with it. The result is the first artifact's data part
//! (or its text, read as JSON when it is JSON). A remote task that needs more input, or
//! authentication, fails the Reef task: Reef tasks take one message.

use std::{sync::Arc, time::Duration};

use alloy::transports::http::reqwest;
use serde_json::{Value, json};

use crate::{BoxFuture, Error, Result, Task, TaskHandler, TaskOutcome};

/// The protocol version sent in the `A2A-Version` header.
pub const PROTOCOL_VERSION: &str = "1.0";

/// A remote A2A agent (cheap to clone).
#[derive(Debug, Clone)]
pub struct A2aRemote {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    card: Value,
    endpoint: String,
    bearer: Option<String>,
    poll: Duration,
    timeout: Duration,
}

/// Where a card lives: the URL itself when it names a `.json` file, else the well-known path
/// under it.
pub fn card_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with(".json") {
        url.to_string()
    } else {
        format!("{url}/.well-known/agent-card.json")
    }
}

/// The card's JSON-RPC interface for protocol 1.x (a missing version counts as one).
pub fn jsonrpc_endpoint(card: &Value) -> Result<String> {
    card["supportedInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| {
            i["protocolBinding"] == "JSONRPC"
                && i["protocolVersion"].as_str().is_none_or(|v| v == "1" || v.starts_with("1."))
        })
        .and_then(|i| i["url"].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::A2a(
                "the card lists no JSON-RPC interface for protocol 1.0 (supportedInterfaces)"
                    .into(),
            )
        })
}

/// The first extension the card says clients must use (none of which this client speaks).
pub fn required_extension(card: &Value) -> Option<String> {
    card["capabilities"]["extensions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["required"] == true)
        .map(|e| e["uri"].as_str().unwrap_or("(no uri)").to_string())
}

/// The card's skills as Reef skills: each skill's `id`.
pub fn card_skills(card: &Value) -> Vec<String> {
    card["skills"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// `v` with every integral floating-point number (within ±2^53) as an integer: a data part is
/// a `google.protobuf.Value`, whose numbers are doubles (`[1, 2]` arrives as `[1.0, 2.0]`).
pub fn integral_numbers(v: &Value) -> Value {
    const SAFE: f64 = 9_007_199_254_740_992.0;
    match v {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= SAFE => Value::from(f as i64),
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(integral_numbers).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), integral_numbers(v))).collect())
        }
        other => other.clone(),
    }
}

/// The result a finished remote task delivers: its first artifact's data part (integral
/// numbers as integers), else the text of its parts (parsed as JSON when it is JSON).
pub fn artifact_result(task: &Value) -> std::result::Result<Value, String> {
    let parts = task["artifacts"][0]["parts"]
        .as_array()
        .ok_or_else(|| "the remote task completed without an artifact".to_string())?;
    if let Some(d) = parts.iter().find_map(|p| p.get("data")) {
        return Ok(integral_numbers(d));
    }
    let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
    if text.is_empty() {
        return Err("the remote artifact has neither a data nor a text part".into());
    }
    let text = text.join("\n");
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The text of a task's status message (why it failed, what it asks).
fn status_text(task: &Value) -> String {
    task["status"]["message"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl A2aRemote {
    /// Reads the agent card at `url` (a card URL, or the agent's base URL) and picks its
    /// JSON-RPC interface. `bearer`: a token for agents whose card asks for one.
    pub async fn connect(url: &str, bearer: Option<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::A2a(e.to_string()))?;
        let at = card_url(url);
        let resp = http
            .get(&at)
            .send()
            .await
            .map_err(|e| Error::A2a(format!("cannot read the card at {at}: {e}")))?;
        if !resp.status().is_success() {
            return Err(Error::A2a(format!("the card at {at} answered {}", resp.status())));
        }
        let body = resp.bytes().await.map_err(|e| Error::A2a(format!("{at}: {e}")))?;
        let card: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::A2a(format!("the card at {at} is not JSON: {e}")))?;
        let endpoint = jsonrpc_endpoint(&card)?;
        if let Some(uri) = required_extension(&card) {
            return Err(Error::A2a(format!(
                "the agent at {at} requires the extension {uri}, which a Reef earning agent does not speak"
            )));
        }
        if card_skills(&card).is_empty() {
            return Err(Error::A2a(format!("the card at {at} lists no skills to bid for")));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                card,
                endpoint,
                bearer,
                poll: Duration::from_millis(250),
                timeout: Duration::from_secs(600),
            }),
        })
    }

    /// Gives up on a remote task after `t` (default 10 minutes).
    pub fn with_timeout(self, t: Duration) -> Self {
        let i = &self.inner;
        Self {
            inner: Arc::new(Inner {
                http: i.http.clone(),
                card: i.card.clone(),
                endpoint: i.endpoint.clone(),
                bearer: i.bearer.clone(),
                poll: i.poll,
                timeout: t,
            }),
        }
    }

    /// The card's name.
    pub fn name(&self) -> &str {
        self.inner.card["name"].as_str().unwrap_or_default()
    }

    /// The card's description.
    pub fn description(&self) -> &str {
        self.inner.card["description"].as_str().unwrap_or_default()
    }

    /// The card's skills (their ids).
    pub fn skills(&self) -> Vec<String> {
        card_skills(&self.inner.card)
    }

    /// The JSON-RPC endpoint tasks go to.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// One JSON-RPC call; the `result`, or the error's message.
    async fn call(&self, method: &str, params: Value) -> std::result::Result<Value, String> {
        let req = json!({
            "jsonrpc": "2.0",
            "id": format!("reef-{}", rand_id()),
            "method": method,
            "params": params,
        });
        let mut b = self
            .inner
            .http
            .post(&self.inner.endpoint)
            .header("A2A-Version", PROTOCOL_VERSION)
            .header("content-type", "application/json")
            .body(req.to_string());
        if let Some(t) = &self.inner.bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let resp = b.send().await.map_err(|e| format!("{method}: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("{method}: {e}"))?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| {
            format!("{method}: the agent answered {status} with a body that is not JSON")
        })?;
        if let Some(e) = v.get("error") {
            return Err(format!(
                "{method}: A2A error {}: {}",
                e["code"],
                e["message"].as_str().unwrap_or("")
            ));
        }
        v.get("result").cloned().ok_or_else(|| format!("{method}: answer without a result"))
    }

    /// Sends the task and follows it to its end: the result, or why it failed.
    pub async fn run_task(
        &self,
        description: &str,
        input: &Value,
    ) -> std::result::Result<Value, String> {
        let mut parts = vec![json!({ "text": description })];
        if !input.is_null() {
            parts.push(json!({ "data": input, "mediaType": "application/json" }));
        }
        let sent = self
            .call(
                "SendMessage",
                json!({
                    "message": { "messageId": rand_id(), "role": "ROLE_USER", "parts": parts },
                    "configuration": {
                        "returnImmediately": true,
                        "acceptedOutputModes": ["application/json", "text/plain"],
                    },
                }),
            )
            .await?;
        // A direct answer (no task): its parts are the result.
        if let Some(m) = sent.get("message") {
            return artifact_result(&json!({ "artifacts": [{ "parts": m["parts"] }] }));
        }
        let mut task =
            sent.get("task").cloned().ok_or("SendMessage answered neither a task nor a message")?;
        let id = task["id"].as_str().ok_or("the remote task has no id")?.to_string();
        let until = tokio::time::Instant::now() + self.inner.timeout;
        loop {
            match task["status"]["state"].as_str().unwrap_or("") {
                "TASK_STATE_COMPLETED" => return artifact_result(&task),
                "TASK_STATE_FAILED" | "TASK_STATE_CANCELED" | "TASK_STATE_REJECTED" => {
                    return Err(format!(
                        "the remote task ended {}: {}",
                        task["status"]["state"].as_str().unwrap_or(""),
                        status_text(&task)
                    ));
                }
                s @ ("TASK_STATE_INPUT_REQUIRED" | "TASK_STATE_AUTH_REQUIRED") => {
                    let _ = self.call("CancelTask", json!({ "id": id })).await;
                    return Err(format!(
                        "the remote agent asks for more ({s}: {}); a Reef task is one message",
                        status_text(&task)
                    ));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= until {
                let _ = self.call("CancelTask", json!({ "id": id })).await;
                return Err(format!("the remote task did not end within {:?}", self.inner.timeout));
            }
            tokio::time::sleep(self.inner.poll).await;
            task = self.call("GetTask", json!({ "id": id })).await?;
        }
    }
}

fn rand_id() -> String {
    let n: u128 = rand_u128();
    format!("{n:032x}")
}

fn rand_u128() -> u128 {
    // Unique enough for message and request ids: time and a process-wide counter, hashed.
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = alloy_primitives::keccak256(format!("{t}:{c}:{}", std::process::id()));
    u128::from_be_bytes(h[..16].try_into().unwrap_or([0; 16]))
}

impl TaskHandler for A2aRemote {
    fn run(&self, task: Task) -> BoxFuture<TaskOutcome> {
        let me = self.clone();
        Box::pin(async move {
            let description = task.input["description"].as_str().unwrap_or_default().to_string();
            let input = task.bounty_input().clone();
            let input = if task.bounty_id().is_some() { input } else { task.input.clone() };
            me.run_task(&description, &input).await.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_gives_endpoint_and_skills() {
        let card = json!({
            "supportedInterfaces": [
                { "url": "http://a/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0" },
                { "url": "http://a/old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3" },
                { "url": "http://a/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
            ],
            "skills": [{ "id": "sort" }, { "id": "" }, { "id": "math" }],
        });
        assert_eq!(jsonrpc_endpoint(&card).unwrap(), "http://a/rpc");
        assert_eq!(card_skills(&card), ["sort", "math"]);
        assert!(jsonrpc_endpoint(&json!({ "supportedInterfaces": [] })).is_err());
        assert_eq!(required_extension(&card), None);
        let ext = json!({ "capabilities": { "extensions": [
            { "uri": "urn:a", "required": false }, { "uri": "urn:b", "required": true },
        ]}});
        assert_eq!(required_extension(&ext).as_deref(), Some("urn:b"));
        assert_eq!(card_url("http://a/x/"), "http://a/x/.well-known/agent-card.json");
        assert_eq!(card_url("http://a/card.json"), "http://a/card.json");
    }

    #[test]
    fn the_result_is_the_artifacts_data_or_text() {
        let data = json!({ "artifacts": [{ "parts": [{ "text": "x" }, { "data": [1.0, 2.5] }] }] });
        assert_eq!(artifact_result(&data).unwrap(), json!([1, 2.5]));
        let text = json!({ "artifacts": [{ "parts": [{ "text": "[3]" }] }] });
        assert_eq!(artifact_result(&text).unwrap(), json!([3]));
        let words = json!({ "artifacts": [{ "parts": [{ "text": "hello" }] }] });
        assert_eq!(artifact_result(&words).unwrap(), json!("hello"));
        assert!(artifact_result(&json!({})).is_err());
        assert!(artifact_result(&json!({ "artifacts": [{ "parts": [{ "url": "u" }] }] })).is_err());
    }
}
