//! Any MCP tool server as an earning agent: [`McpTools`] connects to a server (a command
//! speaking MCP over stdio, or a streamable-HTTP URL), lists its tools, and serves them as
//! tasks. Its skills are the tool names (plus any aliases); it bids only on calls for
//! proposals whose required skills name one of its tools and whose input fits that tool's
//! input schema; it calls the tool with the task input mapped onto the schema and delivers
//! the tool's structured result (or its text).
//!
//! Input mapping: an object input is the tool's arguments; any other input (a string, a
//! number, a list) is the value of the tool's only required parameter (or its only
//! parameter). The arguments are checked against the schema's `required` fields, property
//! types (`string`, `number`, `integer`, `boolean`, `array`, `object`, `null`) and
//! `additionalProperties: false` before the call; what does not fit is refused with the
//! reason: no bid when the call for proposals' input already shows it, else a failed task.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ContentBlock, JsonObject},
    service::RunningService,
    transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess},
};
use serde_json::{Map, Value};

use crate::{Cfp, Error, Result, Task, TaskHandler, TaskOutcome, task::BoxFuture};

/// One tool of the server, as the agent advertises and checks it.
#[derive(Debug, Clone)]
pub struct McpTool {
    /// The tool's name (a skill of the agent).
    pub name: String,
    /// What it does (feeds the card's description, so discovery finds it).
    pub description: String,
    /// Its JSON Schema for the arguments.
    pub input_schema: Value,
}

/// The tools of one MCP server, served as a [`TaskHandler`].
pub struct McpTools {
    service: Arc<RunningService<RoleClient, ()>>,
    server_name: String,
    tools: BTreeMap<String, McpTool>,
    /// Skill → tool.
    aliases: BTreeMap<String, String>,
    /// Bounty id → the tool chosen when bidding (the assignment does not repeat the skills).
    chosen: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field("server", &self.server_name)
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .field("aliases", &self.aliases)
            .finish_non_exhaustive()
    }
}

fn mcp_err(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Mcp(format!("{what}: {e}"))
}

impl McpTools {
    /// Starts `command` (through `sh -c`) as an MCP server over stdio and lists its tools.
    /// The server's stderr goes to this process's stderr; it is killed when this is dropped.
    pub async fn stdio(command: &str) -> Result<Self> {
        let cmd = tokio::process::Command::new("sh").configure(|c| {
            c.arg("-c").arg(command);
        });
        let transport = TokioChildProcess::new(cmd)
            .map_err(|e| Error::Mcp(format!("cannot start {command:?}: {e}")))?;
        let service = ()
            .serve(transport)
            .await
            .map_err(|e| Error::Mcp(format!("{command:?} did not answer MCP initialize: {e}")))?;
        Self::from_service(service).await
    }

    /// Connects to an MCP server over streamable HTTP at `url` and lists its tools.
    pub async fn http(url: &str) -> Result<Self> {
        let transport = StreamableHttpClientTransport::from_uri(url.to_string());
        let service = ()
            .serve(transport)
            .await
            .map_err(|e| Error::Mcp(format!("{url} did not answer MCP initialize: {e}")))?;
        Self::from_service(service).await
    }

    async fn from_service(service: RunningService<RoleClient, ()>) -> Result<Self> {
        let server_name = service
            .peer_info()
            .and_then(|i| i.server_info.as_ref().map(|s| s.name.clone()))
            .unwrap_or_default();
        let listed = service
            .list_all_tools()
            .await
            .map_err(|e| e.to_string())
            .map_err(mcp_err("tools/list"))?;
        let tools: BTreeMap<String, McpTool> = listed
            .into_iter()
            .map(|t| {
                let tool = McpTool {
                    name: t.name.to_string(),
                    description: t.description.as_deref().unwrap_or_default().to_string(),
                    input_schema: Value::Object((*t.input_schema).clone()),
                };
                (tool.name.clone(), tool)
            })
            .collect();
        if tools.is_empty() {
            return Err(Error::Mcp(format!("server {server_name:?} offers no tools")));
        }
        Ok(Self {
            service: Arc::new(service),
            server_name,
            tools,
            aliases: BTreeMap::new(),
            chosen: Mutex::new(HashMap::new()),
        })
    }

    /// Also answer calls for proposals asking for `skill` with `tool`.
    pub fn alias(mut self, skill: impl Into<String>, tool: &str) -> Result<Self> {
        if !self.tools.contains_key(tool) {
            return Err(Error::InvalidConfig(format!(
                "skill mapping names tool {tool:?}, which the MCP server does not offer (it has {})",
                self.tool_names().join(", ")
            )));
        }
        self.aliases.insert(skill.into(), tool.to_string());
        Ok(self)
    }

    /// The server's name (from its MCP `initialize` answer).
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The tools.
    pub fn tools(&self) -> impl Iterator<Item = &McpTool> {
        self.tools.values()
    }

    fn tool_names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// The skills to advertise: every tool name and alias.
    pub fn skills(&self) -> Vec<String> {
        self.tools.keys().chain(self.aliases.keys()).cloned().collect()
    }

    /// A card description listing the tools and what they do (discovery searches it).
    pub fn description(&self) -> String {
        let tools: Vec<String> = self
            .tools
            .values()
            .map(|t| {
                let d: String = t.description.chars().take(160).collect();
                if d.is_empty() { t.name.clone() } else { format!("{} ({})", t.name, d.trim()) }
            })
            .collect();
        format!("MCP tools of {}: {}", self.server_name, tools.join("; "))
    }

    /// The tool a skill names (a tool name or an alias).
    fn tool_for_skill(&self, skill: &str) -> Option<&McpTool> {
        self.tools.get(skill).or_else(|| self.aliases.get(skill).and_then(|t| self.tools.get(t)))
    }

    /// The tool for a call for proposals: the first required skill naming one.
    pub fn tool_for(&self, skills: &[String]) -> Result<&McpTool, String> {
        skills.iter().find_map(|s| self.tool_for_skill(s)).ok_or_else(|| {
            format!(
                "none of the required skills {skills:?} names a tool of MCP server {:?} (tools: {})",
                self.server_name,
                self.tool_names().join(", ")
            )
        })
    }

    /// The tool for a task: the one chosen when bidding on its bounty; else, for a direct
    /// task, `{"tool": name, "arguments": ...}`; else the server's only tool.
    fn tool_for_task<'a>(&'a self, task: &'a Task) -> Result<(&'a McpTool, &'a Value), String> {
        if let Some(b) = task.bounty_id() {
            let chosen = self.chosen.lock().ok().and_then(|m| m.get(b).cloned());
            if let Some(t) = chosen.as_deref().and_then(|n| self.tools.get(n)) {
                return Ok((t, task.bounty_input()));
            }
        } else if let Some(name) = task.input.get("tool").and_then(Value::as_str) {
            let t = self
                .tool_for_skill(name)
                .ok_or_else(|| format!("MCP server {:?} has no tool {name:?}", self.server_name))?;
            return Ok((t, task.input.get("arguments").unwrap_or(&Value::Null)));
        }
        match self.tools.values().collect::<Vec<_>>().as_slice() {
            [only] => Ok((only, task.bounty_input())),
            _ => Err(format!(
                "cannot tell which tool of {} to run for task {} (this agent did not bid on it in this run)",
                self.tool_names().join(", "),
                task.task_id
            )),
        }
    }

    async fn call(&self, tool: &McpTool, input: &Value) -> TaskOutcome {
        let args = match map_input(tool, input) {
            Ok(a) => a,
            Err(why) => return TaskOutcome::failed(why),
        };
        let params = CallToolRequestParams::new(tool.name.clone()).with_arguments(args);
        match self.service.call_tool(params).await {
            Ok(r) => outcome_of(&tool.name, r),
            Err(e) => {
                TaskOutcome::failed(format!("MCP tool {:?} could not be called: {e}", tool.name))
            }
        }
    }
}

impl TaskHandler for McpTools {
    fn check(&self, cfp: &Cfp) -> Result<(), String> {
        let tool = self.tool_for(&cfp.skills)?;
        map_input(tool, &cfp.input)?;
        if let Ok(mut m) = self.chosen.lock() {
            m.insert(crate::id_hex(cfp.bounty_id), tool.name.clone());
        }
        Ok(())
    }

    fn run(&self, task: Task) -> BoxFuture<TaskOutcome> {
        let picked = self.tool_for_task(&task).map(|(t, input)| (t.clone(), input.clone()));
        let me = self.clone_handle();
        Box::pin(async move {
            match picked {
                Ok((tool, input)) => me.call(&tool, &input).await,
                Err(why) => TaskOutcome::failed(why),
            }
        })
    }
}

impl McpTools {
    /// Calls the tool `name` with `args` (checked against its input schema): its result, or
    /// why it failed. For brains that pick tools themselves (an LLM's tool calls).
    pub async fn call_named(&self, name: &str, args: &Value) -> Result<Value, String> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| format!("MCP server {:?} has no tool {name:?}", self.server_name))?;
        let out = self.call(tool, args).await;
        if out.ok {
            Ok(out.result)
        } else {
            Err(out.result.as_str().unwrap_or_default().to_string())
        }
    }

    /// A second handle on the same server connection (for a spawned task).
    fn clone_handle(&self) -> Self {
        Self {
            service: self.service.clone(),
            server_name: self.server_name.clone(),
            tools: self.tools.clone(),
            aliases: self.aliases.clone(),
            chosen: Mutex::new(HashMap::new()),
        }
    }
}

/// What a tool call delivers: its structured content if any, else its text (blocks joined
/// with newlines), else the content blocks as JSON; a tool error is a failed task.
fn outcome_of(tool: &str, r: CallToolResult) -> TaskOutcome {
    let text: Vec<&str> = r
        .content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    if r.is_error == Some(true) {
        return TaskOutcome::failed(format!("MCP tool {tool:?} failed: {}", text.join("\n")));
    }
    match r.structured_content {
        Some(v) => TaskOutcome::done(v),
        None if !text.is_empty() => TaskOutcome::done(Value::String(text.join("\n"))),
        None => TaskOutcome::done(serde_json::to_value(&r.content).unwrap_or(Value::Null)),
    }
}

/// Maps a task input onto `tool`'s arguments and checks them against its input schema.
pub fn map_input(tool: &McpTool, input: &Value) -> Result<JsonObject, String> {
    let schema = &tool.input_schema;
    let props = schema.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let name = &tool.name;
    let args: Map<String, Value> = match input {
        Value::Object(m) => m.clone(),
        Value::Null if required.is_empty() => Map::new(),
        other => {
            // A bare value: the only required parameter, or the only parameter.
            let single = match (required.as_slice(), props) {
                ([one], _) => Some(one.to_string()),
                ([], Some(p)) if p.len() == 1 => p.keys().next().cloned(),
                _ => None,
            };
            let Some(param) = single else {
                return Err(format!(
                    "tool {name:?} takes an object with {}; the input is {}",
                    describe_params(props, &required),
                    kind_of(other)
                ));
            };
            Map::from_iter([(param, other.clone())])
        }
    };
    for r in &required {
        if !args.contains_key(*r) {
            return Err(format!(
                "tool {name:?} needs {r:?}; the input has {} (tool takes {})",
                if args.is_empty() {
                    "no fields".to_string()
                } else {
                    format!("only {}", args.keys().cloned().collect::<Vec<_>>().join(", "))
                },
                describe_params(props, &required)
            ));
        }
    }
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (k, v) in &args {
        match props.and_then(|p| p.get(k)) {
            Some(p) => {
                if let Some(want) = p.get("type")
                    && !type_fits(want, v)
                {
                    return Err(format!(
                        "tool {name:?}: {k:?} must be {}, the input gives {}",
                        want_text(want),
                        kind_of(v)
                    ));
                }
            }
            None if closed => {
                return Err(format!(
                    "tool {name:?} does not take {k:?} (it takes {})",
                    describe_params(props, &required)
                ));
            }
            None => {}
        }
    }
    Ok(args)
}

fn describe_params(props: Option<&Map<String, Value>>, required: &[&str]) -> String {
    let Some(p) = props.filter(|p| !p.is_empty()) else { return "no parameters".into() };
    p.iter()
        .map(|(k, s)| {
            let t = s.get("type").map(want_text).unwrap_or_else(|| "any".into());
            let opt = if required.contains(&k.as_str()) { "" } else { ", optional" };
            format!("{k} ({t}{opt})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn want_text(want: &Value) -> String {
    match want {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `v` has one of the JSON Schema `type`s in `want`.
fn type_fits(want: &Value, v: &Value) -> bool {
    let one = |t: &str| match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    };
    match want {
        Value::String(t) => one(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(one),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(schema: Value) -> McpTool {
        McpTool { name: "t".into(), description: String::new(), input_schema: schema }
    }

    #[test]
    fn objects_are_arguments_and_are_checked() {
        let add = tool(
            json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
        );
        assert_eq!(map_input(&add, &json!({"a": 1, "b": 2.5})).unwrap()["b"], json!(2.5));
        let e = map_input(&add, &json!({"a": 1})).unwrap_err();
        assert!(e.contains("needs \"b\"") && e.contains("only a"), "{e}");
        let e = map_input(&add, &json!({"a": "1", "b": 2})).unwrap_err();
        assert!(e.contains("\"a\" must be number") && e.contains("a string"), "{e}");
        let e = map_input(&add, &json!([1, 2])).unwrap_err();
        assert!(e.contains("takes an object with a (number), b (number)"), "{e}");
        let e = map_input(&add, &Value::Null).unwrap_err();
        assert!(e.contains("takes an object"), "{e}");
    }

    #[test]
    fn a_bare_value_fills_the_single_required_parameter() {
        let echo = tool(
            json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}),
        );
        assert_eq!(
            Value::Object(map_input(&echo, &json!("hi")).unwrap()),
            json!({"message": "hi"})
        );
        let e = map_input(&echo, &json!(5)).unwrap_err();
        assert!(e.contains("\"message\" must be string") && e.contains("an integer"), "{e}");
        let closed = tool(
            json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"], "additionalProperties": false}),
        );
        let e = map_input(&closed, &json!({"message": "x", "extra": 1})).unwrap_err();
        assert!(e.contains("does not take \"extra\""), "{e}");
        let none = tool(json!({"type": "object", "properties": {}}));
        assert!(map_input(&none, &Value::Null).unwrap().is_empty());
        let ints =
            tool(json!({"type": "object", "properties": {"n": {"type": ["integer", "null"]}}}));
        assert!(map_input(&ints, &json!(3)).is_ok());
        assert!(map_input(&ints, &json!(3.5)).is_err());
    }

    #[test]
    fn results_prefer_structured_content() {
        let mut r = CallToolResult::success(vec![ContentBlock::text("Echo: hi")]);
        assert_eq!(outcome_of("echo", r.clone()), TaskOutcome::done(json!("Echo: hi")));
        r.structured_content = Some(json!({"sum": 3}));
        assert_eq!(outcome_of("add", r).result, json!({"sum": 3}));
        let err = CallToolResult::error(vec![ContentBlock::text("bad zone")]);
        let o = outcome_of("t", err);
        assert!(!o.ok && o.result.as_str().unwrap().contains("bad zone"));
    }
}
