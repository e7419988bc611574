//! The OpenAI Chat Completions API on the wire: request validation into a [`TurnSpec`]-to-be
//! (OpenAI messages and content parts become Anthropic content, which is what the CLI takes), the
//! `chat.completion` response, the model list, and [`ChunkWriter`], which turns the CLI's raw
//! streaming events into `chat.completion.chunk` objects.
//!
//! [`TurnSpec`]: super::TurnSpec

use serde_json::{json, Map, Value};

use super::{ChatMessage, PoolKey, Role, StopReason, TurnEvent, TurnOutcome, Usage};
use crate::config::Backend;

/// A validated `POST /v1/chat/completions` body.
#[derive(Debug)]
pub struct ChatRequest {
    /// The model name as the client sent it (echoed back in the response).
    pub model: String,
    /// The `system` and `developer` messages, joined: it decides the pool.
    pub system: String,
    pub history: Vec<ChatMessage>,
    pub prompt: Value,
    pub stream: bool,
    /// `stream_options.include_usage`: one more chunk, with `usage`, before `[DONE]`.
    pub include_usage: bool,
    /// `stop`: where the answer ends (a string or up to four).
    pub stop_sequences: Vec<String>,
    /// `response_format`: `json_schema` → its schema; `json_object` → `{"type": "object"}`.
    pub output_schema: Option<Value>,
}

impl ChatRequest {
    pub fn pool(&self, backend: Backend) -> PoolKey {
        PoolKey::for_chat(backend, &self.system, self.output_schema.as_ref())
    }
}

/// Why a body is refused: the message of a 400 and, when one field is at fault, its name
/// (OpenAI's `error.param`, e.g. `n` or `messages[2].role`).
#[derive(Debug, PartialEq)]
pub struct Invalid {
    pub param: Option<String>,
    pub message: String,
}

fn invalid(param: impl Into<String>, message: impl std::fmt::Display) -> Invalid {
    let param = param.into();
    Invalid {
        message: format!("{param}: {message}"),
        param: Some(param),
    }
}

/// Validates a request body. Sampling fields (`temperature`, `top_p`, `max_tokens`,
/// `seed`, `user`, `metadata`, …) are accepted and ignored: the CLI decides them.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, Invalid> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Invalid {
        param: None,
        message: format!("request body is not valid JSON: {e}"),
    })?;
    let Value::Object(obj) = value else {
        return Err(Invalid {
            param: None,
            message: "request body must be a JSON object".into(),
        });
    };
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(_) => return Err(invalid("model", "must be a non-empty string")),
        None => return Err(invalid("model", "field required")),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream", "must be a boolean")),
    };
    let include_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    refuse_unsupported(&obj)?;
    let stop_sequences = parse_stop(obj.get("stop"))?;
    let output_schema = parse_response_format(obj.get("response_format"))?;
    let (system, mut messages) = parse_messages(&obj)?;
    let last = messages
        .pop()
        .ok_or_else(|| invalid("messages", "at least one user message is required"))?;
    if last.role != Role::User {
        return Err(invalid(
            "messages",
            "the last message must have role \"user\"",
        ));
    }
    Ok(ChatRequest {
        model,
        system,
        history: messages,
        prompt: last.content,
        stream,
        include_usage,
        stop_sequences,
        output_schema,
    })
}

/// `stop`: a string or an array of at most four non-empty strings, as OpenAI takes it.
fn parse_stop(value: Option<&Value>) -> Result<Vec<String>, Invalid> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(list)) if list.len() <= 4 => list.clone(),
        Some(Value::Array(_)) => return Err(invalid("stop", "at most 4 sequences are supported")),
        Some(_) => return Err(invalid("stop", "must be a string or an array of strings")),
    };
    list.iter()
        .map(|s| match s.as_str() {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(invalid("stop", "sequences must be non-empty strings")),
        })
        .collect()
}

/// Fields asking for something this server cannot do get a clear 400 instead of being ignored.
fn refuse_unsupported(obj: &Map<String, Value>) -> Result<(), Invalid> {
    match obj.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(_) => {
            return Err(invalid(
                "n",
                "only n=1 is supported (one choice per request)",
            ))
        }
    }
    for field in ["tools", "functions"] {
        if obj
            .get(field)
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
        {
            return Err(invalid(
                field,
                "client-defined tools are not supported by this server",
            ));
        }
    }
    Ok(())
}

/// `response_format`: `text` (or none) → no schema; `json_object` → any object;
/// `json_schema` → its `json_schema.schema`, checked (`name` and `strict` are the client's: the
/// answer is always validated in full).
fn parse_response_format(value: Option<&Value>) -> Result<Option<Value>, Invalid> {
    let Some(format) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "object"}))),
        Some("json_schema") => {
            let schema = format
                .pointer("/json_schema/schema")
                .ok_or_else(|| invalid("response_format.json_schema.schema", "field required"))?;
            super::schema::check(schema)
                .map_err(|e| invalid("response_format.json_schema.schema", e))?;
            Ok(Some(schema.clone()))
        }
        _ => Err(invalid(
            "response_format.type",
            "must be one of text, json_object, json_schema",
        )),
    }
}

/// System/developer messages → the system prompt; the rest → Anthropic-content messages.
fn parse_messages(obj: &Map<String, Value>) -> Result<(String, Vec<ChatMessage>), Invalid> {
    let list = match obj.get("messages") {
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("messages", "must be an array")),
        None => return Err(invalid("messages", "field required")),
    };
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = |field: &str| format!("messages[{i}].{field}");
        let content = m.get("content");
        match m.get("role").and_then(Value::as_str) {
            Some("system") | Some("developer") => {
                system.push(text_only(content).map_err(|e| invalid(at("content"), e))?)
            }
            Some("user") => messages.push(ChatMessage {
                role: Role::User,
                content: user_content(content).map_err(|(part, e)| invalid(at(&part), e))?,
            }),
            Some("assistant") => {
                if m.get("tool_calls").is_some_and(|t| !t.is_null())
                    || m.get("function_call").is_some_and(|f| !f.is_null())
                {
                    return Err(invalid(at("tool_calls"), "tool calls are not supported"));
                }
                let text = text_only(content).map_err(|e| invalid(at("content"), e))?;
                messages.push(ChatMessage {
                    role: Role::Assistant,
                    content: Value::String(text),
                });
            }
            Some(role @ ("tool" | "function")) => {
                return Err(invalid(
                    at("role"),
                    format!(
                        "{role:?} messages are not supported: this server runs no client tools"
                    ),
                ))
            }
            Some(other) => {
                return Err(invalid(
                    at("role"),
                    format!("unexpected role {other:?}; use system, developer, user or assistant"),
                ))
            }
            None => return Err(invalid(at("role"), "field required")),
        }
    }
    Ok((system.join("\n\n"), messages))
}

/// A string, or an array of `text` (or, for assistants, `refusal`) parts joined.
fn text_only(content: Option<&Value>) -> Result<String, String> {
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).ok_or("text missing"),
                Some("refusal") => p
                    .get("refusal")
                    .and_then(Value::as_str)
                    .ok_or("refusal missing"),
                _ => Err("only text parts are supported here"),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join(""))
            .map_err(String::from),
        Some(_) => Err("must be a string or an array of text parts".into()),
        None => Err("field required".into()),
    }
}

/// A user message's content: a string stays a string; parts become Anthropic blocks. The error
/// names the part at fault (`content[1]`).
fn user_content(content: Option<&Value>) -> Result<Value, (String, String)> {
    let whole = |e: &str| ("content".to_string(), e.to_string());
    match content {
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| content_block(p).map_err(|e| (format!("content[{j}]"), e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Some(_) => Err(whole("must be a string or an array of content parts")),
        None => Err(whole("field required")),
    }
}

/// One OpenAI content part → one Anthropic content block.
fn content_block(part: &Value) -> Result<Value, String> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.get("text").and_then(Value::as_str) {
            Some(text) => Ok(json!({"type": "text", "text": text})),
            None => Err("a text part needs a string `text`".into()),
        },
        Some("image_url") => {
            let url = match part.get("image_url") {
                Some(Value::String(url)) => Some(url.as_str()),
                Some(obj) => obj.get("url").and_then(Value::as_str),
                None => None,
            };
            image_block(url.ok_or("an image_url part needs `image_url.url`")?)
        }
        Some(other) => Err(format!(
            "content parts of type {other:?} are not supported; use text or image_url"
        )),
        None => Err("type: field required".into()),
    }
}

/// `data:<media type>;base64,<data>` → a base64 image; `http(s)://…` → a URL image.
fn image_block(url: &str) -> Result<Value, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (head, data) = rest
            .split_once(',')
            .ok_or("a data URL needs a comma before its data")?;
        let media_type = head
            .strip_suffix(";base64")
            .ok_or("only base64 data URLs are supported (data:image/png;base64,…)")?;
        if !media_type.starts_with("image/") {
            return Err(format!("{media_type:?} is not an image media type"));
        }
        return Ok(json!({"type": "image", "source": {
            "type": "base64", "media_type": media_type, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err("image_url.url must be a data: URL or an http(s) URL".into())
}

/// Why the model stopped, as OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: StopReason) -> &'static str {
    match stop_reason {
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        // A refusal is the message's `refusal`, not filtered content (on which the SDKs'
        // `parse` helpers raise).
        StopReason::EndTurn | StopReason::StopSequence | StopReason::Refusal => "stop",
    }
}

/// OpenAI counts cached prompt tokens inside `prompt_tokens`; Anthropic reports them apart.
fn usage_json(u: &Usage) -> Value {
    let prompt = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
    })
}

/// The body of a non-streaming response.
pub fn chat_completion(id: &str, model: &str, created: u64, outcome: &TurnOutcome) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": match outcome.stop_reason {
                StopReason::Refusal => json!({"role": "assistant", "content": null, "refusal": outcome.text()}),
                _ => json!({"role": "assistant", "content": outcome.text(), "refusal": null}),
            },
            "finish_reason": finish_reason(outcome.stop_reason),
            "logprobs": null,
        }],
        "usage": usage_json(&outcome.usage),
    })
}

/// Listed models carry no real creation date; this fixed one (2025-01-01) keeps the shape valid.
const MODEL_CREATED: u64 = 1_735_689_600;

pub fn model_info(name: &str) -> Value {
    json!({"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "anthropic"})
}

pub fn model_list(names: &[String]) -> Value {
    json!({"object": "list", "data": names.iter().map(|n| model_info(n)).collect::<Vec<_>>()})
}

/// Writes one turn as `chat.completion.chunk` objects: a first chunk with the role, one per text
/// text delta (tool-input deltas are not content), then the chunk with
/// `finish_reason` and, if asked for, the usage chunk.
pub struct ChunkWriter {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    role_sent: bool,
    /// Whether any text was streamed (if none by the end, it comes from the outcome).
    text_sent: bool,
}

impl ChunkWriter {
    pub fn new(id: &str, model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            id: id.to_string(),
            model: model.to_string(),
            created,
            include_usage,
            role_sent: false,
            text_sent: false,
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn ensure_role(&mut self) -> Vec<Value> {
        if self.role_sent {
            return Vec::new();
        }
        self.role_sent = true;
        vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
    }

    /// One event of the turn → the chunks the client gets now.
    pub fn event(&mut self, event: &TurnEvent) -> Vec<Value> {
        let mut out = self.ensure_role();
        if let TurnEvent::TextDelta(text) = event {
            if !text.is_empty() {
                self.text_sent = true;
                out.push(self.chunk(json!({"content": text}), None));
            }
        }
        out
    }

    /// The turn succeeded: any text not streamed yet (the CLI may have fallen back to a
    /// non-streaming call), the finish chunk and the usage chunk.
    pub fn done(&mut self, outcome: &TurnOutcome) -> Vec<Value> {
        let mut out = self.ensure_role();
        let text = outcome.text();
        if !self.text_sent && !text.is_empty() {
            let delta = match outcome.stop_reason {
                StopReason::Refusal => json!({"refusal": text}),
                _ => json!({"content": text}),
            };
            out.push(self.chunk(delta, None));
        }
        let reason = finish_reason(outcome.stop_reason);
        out.push(self.chunk(json!({}), Some(reason)));
        if self.include_usage {
            let mut last = self.chunk(json!({}), None);
            last["choices"] = json!([]);
            last["usage"] = usage_json(&outcome.usage);
            out.push(last);
        }
        out
    }
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
