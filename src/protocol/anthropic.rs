//! The Anthropic Messages API on the wire: request validation into a [`TurnSpec`](super::TurnSpec)-to-be, the
//! non-streaming response, and [`StreamTranslator`], which turns the CLI's raw streaming events
//! into the SSE events a client of `POST /v1/messages` expects.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::{ChatMessage, PoolKey, Role, TurnOutcome, Usage};

/// A validated `POST /v1/messages` body.
#[derive(Debug)]
pub struct MessagesRequest {
    /// The model name as the client sent it (echoed back in the response).
    pub model: String,
    pub system: String,
    pub history: Vec<ChatMessage>,
    pub prompt: Value,
    pub stream: bool,
}

impl MessagesRequest {
    pub fn pool(&self) -> PoolKey {
        PoolKey::chat(self.system.clone())
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
    if obj
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        return Err("tools: client-defined tools are not supported by this server".into());
    }
    let system = parse_system(obj.get("system"))?;
    let mut messages = parse_messages(&obj)?;
    let last = messages
        .pop()
        .ok_or("messages: at least one message is required")?;
    if last.role != Role::User {
        return Err("messages: the last message must have role \"user\"".into());
    }
    Ok(MessagesRequest {
        model,
        system,
        history: messages,
        prompt: last.content,
        stream,
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
/// `max_tokens`): ≈4 bytes of text per token, 4 per message, 1600 per image or document.
pub fn estimate_tokens(body: &[u8]) -> Result<u64, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("max_tokens").or_insert(json!(1));
    }
    let req = parse_request(value.to_string().as_bytes())?;
    let mut bytes = req.system.len() as u64;
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

/// Content blocks a client may see: the CLI's thinking blocks were not asked for.
fn visible(block: &Value) -> bool {
    matches!(
        block.get("type").and_then(Value::as_str),
        Some("text") | Some("tool_use")
    )
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
    })
}

/// The body of a non-streaming response.
pub fn message_response(id: &str, model: &str, outcome: &TurnOutcome) -> Value {
    let content: Vec<&Value> = outcome.content.iter().filter(|b| visible(b)).collect();
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": outcome.stop_reason.as_deref().unwrap_or("end_turn"),
        "stop_sequence": null,
        "usage": usage_json(&outcome.usage),
    })
}

/// An SSE event: name and JSON data.
pub type SseEvent = (&'static str, Value);

/// Rewrites the CLI's streaming events for one client: the model name becomes the one the
/// client asked for, thinking blocks are dropped and the rest renumbered, and the closing
/// `message_delta` (with the turn's real usage) and `message_stop` are sent once the turn's
/// result is known.
pub struct StreamTranslator {
    model: String,
    message_id: String,
    started: bool,
    /// Upstream block index → index the client sees, per upstream message.
    indexes: HashMap<u64, u64>,
    hidden: HashSet<u64>,
    next_index: u64,
    /// Blocks the client has seen start (if none by the end, they are made from the outcome).
    blocks_sent: u64,
}

impl StreamTranslator {
    pub fn new(model: &str, message_id: &str) -> Self {
        Self {
            model: model.to_string(),
            message_id: message_id.to_string(),
            started: false,
            indexes: HashMap::new(),
            hidden: HashSet::new(),
            next_index: 0,
            blocks_sent: 0,
        }
    }

    fn message_start(&mut self, usage: Value) -> SseEvent {
        self.started = true;
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage}}),
        )
    }

    /// One raw event from the CLI → what the client gets now (possibly nothing).
    pub fn event(&mut self, mut ev: Value) -> Vec<SseEvent> {
        let kind = ev
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let upstream_index = ev.get("index").and_then(Value::as_u64);
        match (kind.as_str(), upstream_index) {
            ("message_start", _) => {
                // A second message_start is the CLI retrying the upstream call: its blocks
                // continue the stream under new indexes.
                self.indexes.clear();
                self.hidden.clear();
                if self.started {
                    return Vec::new();
                }
                let usage = ev
                    .pointer("/message/usage")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                vec![self.message_start(usage)]
            }
            ("content_block_start", Some(i)) => {
                if !ev.pointer("/content_block").is_some_and(visible) {
                    self.hidden.insert(i);
                    return Vec::new();
                }
                let mut out = self.ensure_started();
                self.indexes.insert(i, self.next_index);
                ev["index"] = json!(self.next_index);
                self.next_index += 1;
                self.blocks_sent += 1;
                out.push(("content_block_start", ev));
                out
            }
            ("content_block_delta", Some(i)) | ("content_block_stop", Some(i)) => {
                match self.indexes.get(&i) {
                    Some(mine) if !self.hidden.contains(&i) => {
                        ev["index"] = json!(*mine);
                        vec![(
                            if kind == "content_block_delta" {
                                "content_block_delta"
                            } else {
                                "content_block_stop"
                            },
                            ev,
                        )]
                    }
                    _ => Vec::new(),
                }
            }
            // message_delta / message_stop wait for the result; ping and unknown events are dropped.
            _ => Vec::new(),
        }
    }

    fn ensure_started(&mut self) -> Vec<SseEvent> {
        if self.started {
            Vec::new()
        } else {
            vec![self.message_start(json!({"input_tokens": 0, "output_tokens": 0}))]
        }
    }

    /// The turn succeeded: anything not streamed yet (the CLI may have fallen back to a
    /// non-streaming call), then the closing events.
    pub fn done(&mut self, outcome: &TurnOutcome) -> Vec<SseEvent> {
        let mut out = self.ensure_started();
        if self.blocks_sent == 0 {
            for block in outcome.content.iter().filter(|b| visible(b)) {
                let index = self.next_index;
                self.next_index += 1;
                out.extend(block_events(index, block));
            }
        }
        out.push(("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": outcome.stop_reason.as_deref().unwrap_or("end_turn"), "stop_sequence": null},
            "usage": usage_json(&outcome.usage)})));
        out.push(("message_stop", json!({"type": "message_stop"})));
        out
    }
}

/// The start/delta/stop events of one whole block.
fn block_events(index: u64, block: &Value) -> Vec<SseEvent> {
    let (start, delta) = match block.get("type").and_then(Value::as_str) {
        Some("tool_use") => {
            let mut start = block.clone();
            start["input"] = json!({});
            let partial = block.get("input").map(Value::to_string).unwrap_or_default();
            (
                start,
                json!({"type": "input_json_delta", "partial_json": partial}),
            )
        }
        _ => (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": block.get("text").and_then(Value::as_str).unwrap_or_default()}),
        ),
    };
    vec![
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ),
    ]
}

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
