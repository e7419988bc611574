//! Client tools on Claude Code: the SDK MCP server clinvoker serves the CLI over the control
//! channel, and the watch that tells when the model has stopped for tool use.
//!
//! A process of a tool pool registers one SDK server, [`SERVER`] (`mcp_set_servers` after its
//! `initialize`); it was started with `--allowedTools mcp__client` and
//! `CLAUDE_AGENT_SDK_MCP_NO_PREFIX=1`, so the model sees the client's tool names exactly and may
//! call them without a permission prompt. The CLI then sends `control_request`s of subtype
//! `mcp_message` carrying JSON-RPC: `initialize`, `notifications/initialized` and `tools/list`
//! are answered at once; a `tools/call` (the model called a tool; its upstream `tool_use` id is
//! in `_meta["claudecode/toolUseId"]`) is a [`PendingCall`]: the CLI waits for its answer as long
//! as the server likes, and the client runs the tool.

use serde_json::{json, Value};

use crate::protocol::tools::{mcp_entry, ClientTool};
use crate::protocol::{Block, BlockKind, StopReason, TurnEvent, TurnOutcome, Usage};

/// The SDK MCP server's name (fixed: the CLI's allow rule `mcp__client` names it at spawn).
pub const SERVER: &str = "client";

/// Registers [`SERVER`] on a running CLI (answered `{"added":["client"],…}`).
pub fn set_servers_request() -> Value {
    json!({"subtype": "mcp_set_servers",
        "servers": {SERVER: {"type": "sdk", "name": SERVER}}})
}

/// A `tools/call` the CLI sent and still waits on. Answering it later (a parked turn) takes the
/// control `request_id` and the JSON-RPC `rpc_id`, echoed in the `mcp_response`.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCall {
    pub request_id: String,
    pub rpc_id: Value,
    /// The upstream `tool_use` id: the id the client sees and answers with its `tool_result`.
    pub tool_use_id: String,
    pub name: String,
    pub arguments: Value,
}

/// What an `mcp_message` from the CLI asks of the server.
#[derive(Debug, PartialEq)]
pub enum McpRequest {
    /// Answered at once with this line.
    Answer(Value),
    /// A tool call, answered when the client has run the tool.
    Call(PendingCall),
}

/// The server's side of one `mcp_message` control request.
pub fn on_message(request_id: &str, request: &Value, tools: &[ClientTool]) -> McpRequest {
    let message = request.get("message").unwrap_or(&Value::Null);
    let server = request.get("server_name").and_then(Value::as_str);
    if server != Some(SERVER) || tools.is_empty() {
        return McpRequest::Answer(control_error(
            request_id,
            &format!("no MCP server {server:?} here"),
        ));
    }
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let Some(id) = message.get("id").cloned() else {
        // A notification (`notifications/initialized`, `notifications/cancelled`): answered
        // with an empty result, as the control protocol asks.
        return McpRequest::Answer(mcp_response(
            request_id,
            json!({"jsonrpc": "2.0", "result": {}}),
        ));
    };
    let params = message.get("params").unwrap_or(&Value::Null);
    let result = match method {
        "initialize" => json!({
            "protocolVersion": params.get("protocolVersion").cloned()
                .unwrap_or_else(|| json!("2025-06-18")),
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": SERVER, "version": env!("CARGO_PKG_VERSION")},
        }),
        "tools/list" => json!({"tools": tools.iter().map(mcp_entry).collect::<Vec<_>>()}),
        "ping" => json!({}),
        "tools/call" => {
            return McpRequest::Call(PendingCall {
                request_id: request_id.to_string(),
                rpc_id: id,
                tool_use_id: params
                    .pointer("/_meta/claudecode~1toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                name: params
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                arguments: params
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!({})),
            })
        }
        other => {
            return McpRequest::Answer(mcp_response(
                request_id,
                json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32601, "message": format!("method {other:?} not found")}}),
            ))
        }
    };
    McpRequest::Answer(mcp_response(
        request_id,
        json!({"jsonrpc": "2.0", "id": id, "result": result}),
    ))
}

/// Answers `call` with the client's `tool_result` block (Messages API shape: `content` a string
/// or text/image blocks, `is_error`): the CLI hands it to the model as that call's result. What a
/// parked turn sends when the client's follow-up brings the result.
pub fn call_result(call: &PendingCall, tool_result: &Value) -> Value {
    let content: Vec<Value> = match tool_result.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![json!({"type": "text", "text": text})],
        Some(Value::Array(blocks)) => blocks.iter().filter_map(mcp_content).collect(),
        Some(other) => vec![json!({"type": "text", "text": other.to_string()})],
    };
    let is_error = tool_result.get("is_error").and_then(Value::as_bool) == Some(true);
    mcp_response(
        &call.request_id,
        json!({"jsonrpc": "2.0", "id": call.rpc_id,
            "result": {"content": content, "isError": is_error}}),
    )
}

/// A Messages API content block as MCP tool-result content (text, base64 image).
fn mcp_content(block: &Value) -> Option<Value> {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => Some(json!({"type": "text", "text": block.get("text")?})),
        Some("image") if block.pointer("/source/type") == Some(&json!("base64")) => Some(json!({
            "type": "image", "data": block.pointer("/source/data")?,
            "mimeType": block.pointer("/source/media_type")?})),
        _ => None,
    }
}

/// Answers `call` with a JSON-RPC error: the model gets it as an error `tool_result`.
pub fn call_error(call: &PendingCall, message: &str) -> Value {
    mcp_response(
        &call.request_id,
        json!({"jsonrpc": "2.0", "id": call.rpc_id,
            "error": {"code": -32603, "message": message}}),
    )
}

fn mcp_response(request_id: &str, rpc: Value) -> Value {
    json!({"type": "control_response", "response": {"subtype": "success",
        "request_id": request_id, "response": {"mcp_response": rpc}}})
}

fn control_error(request_id: &str, error: &str) -> Value {
    json!({"type": "control_response", "response": {"subtype": "error",
        "request_id": request_id, "error": error}})
}

/// One block of the upstream message being streamed.
#[derive(Debug)]
enum Streamed {
    Text(String),
    Tool { id: String, name: String },
}

/// Watches the upstream message of a tool-pool turn: once it ended with `stop_reason:
/// "tool_use"` and every `tool_use` block of it has its `tools/call`, the model waits for the
/// client, and [`ToolUseWatch::stopped_for_tools`] gives the client's answer.
#[derive(Debug, Default)]
pub struct ToolUseWatch {
    blocks: Vec<Streamed>,
    stop_reason: Option<String>,
    message_stopped: bool,
    usage: Usage,
    calls: Vec<PendingCall>,
    /// Inside the block of a tool that is not the client's: not shown (see `on_event`).
    hiding: bool,
}

impl ToolUseWatch {
    /// A raw streaming event of the CLI (for the message's bounds, stop reason and usage).
    pub fn on_stream(&mut self, ev: &Value) {
        let u64_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64);
        match ev.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                // A new upstream message (or a retry of this one): its blocks start afresh.
                self.blocks.clear();
                self.hiding = false;
                self.stop_reason = None;
                self.message_stopped = false;
                let u = ev.pointer("/message/usage").unwrap_or(&Value::Null);
                self.usage = Usage {
                    input_tokens: u64_at(u, "input_tokens").unwrap_or(0),
                    output_tokens: u64_at(u, "output_tokens").unwrap_or(0),
                    cache_creation_input_tokens: u64_at(u, "cache_creation_input_tokens")
                        .unwrap_or(0),
                    cache_read_input_tokens: u64_at(u, "cache_read_input_tokens").unwrap_or(0),
                };
            }
            Some("message_delta") => {
                if let Some(reason) = ev.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(n) = ev.get("usage").and_then(|u| u64_at(u, "output_tokens")) {
                    self.usage.output_tokens = n;
                }
            }
            Some("message_stop") => self.message_stopped = true,
            _ => {}
        }
    }

    /// A typed event of the same message; whether the client is shown it. The block of a
    /// tool that is not the client's (`is_client`: a name the model made up, which the CLI
    /// answers with an error itself) is not.
    pub fn on_event(&mut self, ev: &TurnEvent, is_client: impl Fn(&str) -> bool) -> bool {
        match ev {
            TurnEvent::BlockStarted(BlockKind::ToolUse { name, .. }) if !is_client(name) => {
                self.hiding = true;
                return false;
            }
            TurnEvent::ToolInputDelta(_) if self.hiding => return false,
            TurnEvent::BlockStopped if self.hiding => {
                self.hiding = false;
                return false;
            }
            TurnEvent::BlockStarted(BlockKind::Text) => {
                self.blocks.push(Streamed::Text(String::new()))
            }
            TurnEvent::BlockStarted(BlockKind::ToolUse { id, name }) => {
                self.blocks.push(Streamed::Tool {
                    id: id.clone(),
                    name: name.clone(),
                })
            }
            TurnEvent::TextDelta(text) => {
                if let Some(Streamed::Text(t)) = self.blocks.last_mut() {
                    t.push_str(text);
                }
            }
            _ => {}
        }
        true
    }

    pub fn on_call(&mut self, call: PendingCall) {
        self.calls.push(call);
    }

    /// The client's answer once the model waits on tools: the message's text and tool calls
    /// (inputs as the CLI passed them), `stop_reason: tool_use`. The hidden block of a made-up
    /// tool is not waited for: its call never reaches the server.
    pub fn stopped_for_tools(&self) -> Option<TurnOutcome> {
        if !(self.message_stopped && self.stop_reason.as_deref() == Some("tool_use")) {
            return None;
        }
        let mut content = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            content.push(match block {
                Streamed::Text(text) => Block::Text(text.clone()),
                Streamed::Tool { id, name } => {
                    let call = self.calls.iter().find(|c| c.tool_use_id == *id)?;
                    Block::ToolUse {
                        id: id.clone(),
                        name: name.clone(),
                        input: call.arguments.clone(),
                    }
                }
            });
        }
        content
            .iter()
            .any(|b| matches!(b, Block::ToolUse { .. }))
            .then(|| TurnOutcome {
                content,
                stop_reason: StopReason::ToolUse,
                usage: self.usage.clone(),
                ..TurnOutcome::default()
            })
    }

    /// The calls received, in order; the watch forgets them.
    pub fn take_calls(&mut self) -> Vec<PendingCall> {
        std::mem::take(&mut self.calls)
    }
}
