//! The Anthropic Messages API on the wire: request validation into a [`TurnSpec`](super::TurnSpec)-to-be
//! (client tools in `anthropic_tools.rs`), the non-streaming response, and, from
//! `anthropic_stream.rs`, [`StreamTranslator`], which turns a turn's typed events into the SSE
//! events a client of `POST /v1/messages` expects.

use serde_json::{json, Map, Value};

use super::tools::{self, ClientTool, ToolChoice};
use super::{Block, ChatMessage, PoolKey, Role, StopReason, TurnOutcome, Usage};
use crate::config::Backend;
use tool_defs::{parse_tool_choice, parse_tools};

pub use stream::{SseEvent, StreamTranslator};

/// A validated `POST /v1/messages` body.
#[derive(Debug)]
pub struct MessagesRequest {
    /// The model name as the client sent it (echoed back in the response).
    pub model: String,
    pub system: String,
    pub history: Vec<ChatMessage>,
    pub prompt: Value,
    pub stream: bool,
    /// `stop_sequences`: where the answer ends.
    pub stop_sequences: Vec<String>,
    /// `output_config.format` (or the older top-level `output_format`) of type `json_schema`.
    pub output_schema: Option<Value>,
    /// `tools`, as the model sees them: empty with `tool_choice: none`.
    pub tools: Vec<ClientTool>,
}

/// Most stop sequences a request may name, and their longest length (in characters).
const MAX_STOP_SEQUENCES: usize = 16;
const MAX_STOP_SEQUENCE_CHARS: usize = 256;

impl MessagesRequest {
    pub fn pool(&self, backend: Backend) -> PoolKey {
        PoolKey::for_chat(
            backend,
            &self.system,
            self.output_schema.as_ref(),
            &self.tools,
        )
    }
}

/// Validates a request body; the error is the message of a 400 `invalid_request_error`.
pub fn parse_request(body: &[u8]) -> Result<MessagesRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("request body must be a JSON object".into());
    };
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(_) => return Err("model: must be a non-empty string".into()),
        None => return Err("model: Field required".into()),
    };
    match obj.get("max_tokens") {
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {}
        Some(_) => return Err("max_tokens: must be an integer of at least 1".into()),
        None => return Err("max_tokens: Field required".into()),
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("stream: must be a boolean".into()),
    };
    let stop_sequences = parse_stop_sequences(obj.get("stop_sequences"))?;
    let output_schema = parse_output_format(&obj)?;
    let tools = match parse_tool_choice(obj.get("tool_choice"))? {
        ToolChoice::Auto => parse_tools(obj.get("tools"))?,
        ToolChoice::None => Vec::new(),
    };
    if !tools.is_empty() && output_schema.is_some() {
        return Err("tools: client tools cannot be combined with structured output".into());
    }
    let system = parse_system(obj.get("system"))?;
    let mut messages = parse_messages(&obj)?;
    let last = messages
        .pop()
        .ok_or("messages: at least one message is required")?;
    if last.role != Role::User {
        return Err("messages: the last message must have role \"user\"".into());
    }
    tools::check_results(&messages, &last.content)?;
    Ok(MessagesRequest {
        model,
        system,
        history: messages,
        prompt: last.content,
        stream,
        stop_sequences,
        output_schema,
        tools,
    })
}

fn parse_system(system: Option<&Value>) -> Result<String, String> {
    match system {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                match (
                    b.get("type").and_then(Value::as_str),
                    b.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(text)) => Ok(text.to_string()),
                    _ => Err(format!("system.{i}: only text blocks are supported")),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.join("\n\n")),
        Some(_) => Err("system: must be a string or an array of text blocks".into()),
    }
}

fn parse_messages(obj: &Map<String, Value>) -> Result<Vec<ChatMessage>, String> {
    let Some(list) = obj.get("messages") else {
        return Err("messages: Field required".into());
    };
    let Value::Array(list) = list else {
        return Err("messages: must be an array".into());
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.get("role").and_then(Value::as_str) {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some(other) => {
                    return Err(format!(
                    "messages.{i}.role: unexpected role {other:?}; use \"user\" or \"assistant\""
                ))
                }
                None => return Err(format!("messages.{i}.role: Field required")),
            };
            let content = match m.get("content") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(blocks)) => {
                    if let Some(j) = blocks
                        .iter()
                        .position(|b| b.get("type").and_then(Value::as_str).is_none())
                    {
                        return Err(format!("messages.{i}.content.{j}.type: Field required"));
                    }
                    for (j, block) in blocks.iter().enumerate() {
                        tools::check_block(role, block)
                            .map_err(|e| format!("messages.{i}.content.{j}: {e}"))?;
                    }
                    Value::Array(blocks.clone())
                }
                Some(_) => {
                    return Err(format!(
                        "messages.{i}.content: must be a string or an array of content blocks"
                    ))
                }
                None => return Err(format!("messages.{i}.content: Field required")),
            };
            Ok(ChatMessage { role, content })
        })
        .collect()
}

/// Estimated input tokens of a `count_tokens` body (same fields as a message request, without
/// `max_tokens`): ≈4 bytes of text (and of tool definitions) per token, 4 per message, 1600 per
/// image or document.
pub fn estimate_tokens(body: &[u8]) -> Result<u64, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("max_tokens").or_insert(json!(1));
    }
    let req = parse_request(value.to_string().as_bytes())?;
    // Tool definitions are sent upstream as they are: their JSON counts as text.
    let mut bytes = req.system.len() as u64
        + req
            .tools
            .iter()
            .map(|t| serde_json::to_string(t).map_or(0, |j| j.len() as u64))
            .sum::<u64>();
    let mut fixed = 0u64;
    for content in req
        .history
        .iter()
        .map(|m| &m.content)
        .chain(std::iter::once(&req.prompt))
    {
        fixed += 4;
        match content {
            Value::String(s) => bytes += s.len() as u64,
            Value::Array(blocks) => {
                for b in blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("image") | Some("document") => fixed += 1600,
                        Some("text") => {
                            bytes += b
                                .get("text")
                                .and_then(Value::as_str)
                                .map_or(0, |t| t.len() as u64)
                        }
                        _ => bytes += b.to_string().len() as u64,
                    }
                }
            }
            _ => {}
        }
    }
    Ok(bytes.div_ceil(4) + fixed)
}

/// Paging of `GET /v1/models`.
#[derive(Debug, serde::Deserialize)]
pub struct ModelsQuery {
    pub limit: Option<usize>,
    pub after_id: Option<String>,
    pub before_id: Option<String>,
}

/// Listed models carry no real creation date; this fixed one keeps the shape valid.
const MODEL_CREATED_AT: &str = "2025-01-01T00:00:00Z";

pub fn model_info(name: &str) -> Value {
    json!({"type": "model", "id": name, "display_name": name, "created_at": MODEL_CREATED_AT})
}

/// One page of the model list in Anthropic's shape.
pub fn models_page(names: &[String], q: &ModelsQuery) -> Result<Value, String> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err("limit: must be between 1 and 1000".into());
    }
    let position = |id: &String| {
        names
            .iter()
            .position(|n| n == id)
            .ok_or_else(|| format!("unknown model id {id:?}"))
    };
    let (start, end) = match (&q.after_id, &q.before_id) {
        (Some(after), _) => (position(after)? + 1, names.len()),
        (None, Some(before)) => (0, position(before)?),
        (None, None) => (0, names.len()),
    };
    let window = &names[start.min(end)..end];
    let page: Vec<&String> = if q.after_id.is_none() && q.before_id.is_some() {
        window
            .iter()
            .skip(window.len().saturating_sub(limit))
            .collect()
    } else {
        window.iter().take(limit).collect()
    };
    Ok(json!({
        "data": page.iter().map(|n| model_info(n)).collect::<Vec<_>>(),
        "has_more": page.len() < window.len(),
        "first_id": page.first(),
        "last_id": page.last(),
    }))
}

/// `output_config.format` (what the SDKs' `messages.parse` sends) or the deprecated top-level
/// `output_format`: `{"type": "json_schema", "schema": S}` → S, checked.
fn parse_output_format(obj: &Map<String, Value>) -> Result<Option<Value>, String> {
    let (field, format) = match (
        obj.get("output_config").and_then(|c| c.get("format")),
        obj.get("output_format"),
    ) {
        (Some(f), _) if !f.is_null() => ("output_config.format", f),
        (_, Some(f)) if !f.is_null() => ("output_format", f),
        _ => return Ok(None),
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {}
        _ => return Err(format!("{field}.type: only \"json_schema\" is supported")),
    }
    let schema = format
        .get("schema")
        .ok_or_else(|| format!("{field}.schema: Field required"))?;
    super::schema::check(schema).map_err(|e| format!("{field}.schema: {e}"))?;
    Ok(Some(schema.clone()))
}

fn parse_stop_sequences(value: Option<&Value>) -> Result<Vec<String>, String> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("stop_sequences: must be an array of strings".into()),
    };
    if list.len() > MAX_STOP_SEQUENCES {
        return Err(format!(
            "stop_sequences: at most {MAX_STOP_SEQUENCES} sequences are supported"
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| match s.as_str() {
            Some(s) if !s.is_empty() && s.chars().count() <= MAX_STOP_SEQUENCE_CHARS => {
                Ok(s.to_string())
            }
            _ => Err(format!(
                "stop_sequences.{i}: must be a non-empty string of at most {MAX_STOP_SEQUENCE_CHARS} characters"
            )),
        })
        .collect()
}

/// The Messages API's name of a stop reason.
pub fn stop_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::ToolUse => "tool_use",
        StopReason::StopSequence => "stop_sequence",
        StopReason::Refusal => "refusal",
    }
}

/// A finished block as a Messages API content block.
fn block_json(block: &Block) -> Value {
    match block {
        Block::Text(text) => json!({"type": "text", "text": text}),
        Block::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

pub(super) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
    })
}

/// The body of a non-streaming response.
pub fn message_response(id: &str, model: &str, outcome: &TurnOutcome) -> Value {
    let content: Vec<Value> = outcome.content.iter().map(block_json).collect();
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_name(outcome.stop_reason),
        "stop_sequence": outcome.stop_sequence,
        "usage": usage_json(&outcome.usage),
    })
}

#[path = "anthropic_stream.rs"]
mod stream;
#[path = "anthropic_tools.rs"]
mod tool_defs;

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
