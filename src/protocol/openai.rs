//! The OpenAI Chat Completions API on the wire: request validation into a [`TurnSpec`]-to-be
//! (OpenAI messages and content parts become Anthropic content, which is what the CLI takes), the
//! `chat.completion` response, the model list, and [`ChunkWriter`], which turns the CLI's raw
//! streaming events into `chat.completion.chunk` objects.
//!
//! [`TurnSpec`]: super::TurnSpec

use serde_json::{json, Map, Value};

use super::tools::{self, ClientTool, ToolChoice};
use super::{Block, ChatMessage, PoolKey, Role, StopReason, TurnEvent, TurnOutcome, Usage};
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
    /// The function `tools`, as the model sees them: empty with `tool_choice: "none"`.
    /// `parallel_tool_calls` is accepted and has no effect: the model may always call several.
    pub tools: Vec<ClientTool>,
}

impl ChatRequest {
    pub fn pool(&self, backend: Backend) -> PoolKey {
        PoolKey::for_chat(
            backend,
            &self.system,
            self.output_schema.as_ref(),
            &self.tools,
        )
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
    let tools = match parse_tool_choice(obj.get("tool_choice"))? {
        ToolChoice::Auto => parse_tools(obj.get("tools"))?,
        ToolChoice::None => Vec::new(),
    };
    if !tools.is_empty() && output_schema.is_some() {
        return Err(invalid(
            "tools",
            "client tools cannot be combined with response_format",
        ));
    }
    let (system, mut messages) = parse_messages(&obj)?;
    let last = messages
        .pop()
        .ok_or_else(|| invalid("messages", "at least one user message is required"))?;
    if last.role != Role::User {
        return Err(invalid(
            "messages",
            "the last message must have role \"user\" (or \"tool\")",
        ));
    }
    tools::check_results(&messages, &last.content).map_err(|e| Invalid {
        param: Some("messages".into()),
        message: e,
    })?;
    Ok(ChatRequest {
        model,
        system,
        history: messages,
        prompt: last.content,
        stream,
        include_usage,
        stop_sequences,
        output_schema,
        tools,
    })
}

/// `tools`: function tools (`{type: "function", function: {name, description, parameters}}`);
/// a function without `parameters` takes no arguments.
fn parse_tools(value: Option<&Value>) -> Result<Vec<ClientTool>, Invalid> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("tools", "must be an array")),
    };
    let tools =
        list.iter()
            .enumerate()
            .map(|(i, t)| {
                if t.get("type").and_then(Value::as_str) != Some("function") {
                    return Err(invalid(
                        format!("tools[{i}].type"),
                        "only \"function\" tools are supported",
                    ));
                }
                let f = t.get("function").unwrap_or(&Value::Null);
                let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                    invalid(format!("tools[{i}].function.name"), "field required")
                })?;
                Ok(ClientTool {
                    name: name.to_string(),
                    description: f
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    input_schema: match f.get("parameters") {
                        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                        Some(p) => p.clone(),
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
    tools::check_all(&tools, |i| format!("tools[{i}].function")).map_err(|e| Invalid {
        param: Some("tools".into()),
        message: e,
    })?;
    Ok(tools)
}

/// `tool_choice`: `"auto"` (the default) or `"none"`. The CLI cannot force a call, so
/// `"required"` and a named function are refused rather than ignored.
fn parse_tool_choice(value: Option<&Value>) -> Result<ToolChoice, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) if s == "auto" => Ok(ToolChoice::Auto),
        Some(Value::String(s)) if s == "none" => Ok(ToolChoice::None),
        Some(Value::String(s)) if s == "required" => Err(invalid(
            "tool_choice",
            "\"required\" is not supported by this server (the CLI cannot force a tool call); use \"auto\" or \"none\"",
        )),
        Some(Value::Object(_)) => Err(invalid(
            "tool_choice",
            "naming a function is not supported by this server (the CLI cannot force a tool call); use \"auto\" or \"none\"",
        )),
        Some(_) => Err(invalid("tool_choice", "must be \"auto\" or \"none\"")),
    }
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
    if obj
        .get("functions")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        return Err(invalid(
            "functions",
            "the deprecated `functions` are not supported; use `tools`",
        ));
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
            Some("user") => {
                let content = user_content(content).map_err(|(part, e)| invalid(at(&part), e))?;
                push_user(&mut messages, content);
            }
            Some("assistant") => {
                if m.get("function_call").is_some_and(|f| !f.is_null()) {
                    return Err(invalid(
                        at("function_call"),
                        "the deprecated function_call is not supported; use tool_calls",
                    ));
                }
                messages.push(ChatMessage {
                    role: Role::Assistant,
                    content: assistant_content(m).map_err(|(field, e)| invalid(at(&field), e))?,
                });
            }
            Some("tool") => {
                let block = tool_result(m).map_err(|(field, e)| invalid(at(&field), e))?;
                push_user(&mut messages, json!([block]));
            }
            Some("function") => {
                return Err(invalid(
                    at("role"),
                    "\"function\" messages are deprecated and not supported; use \"tool\"",
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

/// Appends a user message. Tool results (OpenAI's `role: "tool"` messages) and a user message
/// right after them form one user message, tool results first, as the Messages API wants.
fn push_user(messages: &mut Vec<ChatMessage>, content: Value) {
    let starts_with_result = |blocks: &[Value]| {
        blocks
            .first()
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str)
            == Some("tool_result")
    };
    match messages.last_mut() {
        Some(ChatMessage {
            role: Role::User,
            content: Value::Array(existing),
        }) if starts_with_result(existing) => match content {
            Value::String(text) => existing.push(json!({"type": "text", "text": text})),
            Value::Array(blocks) => existing.extend(blocks),
            other => existing.push(other),
        },
        _ => messages.push(ChatMessage {
            role: Role::User,
            content,
        }),
    }
}

/// An assistant message: its text, and its `tool_calls` as `tool_use` blocks (the arguments,
/// a JSON string, parsed into the block's input). The error names the field at fault.
fn assistant_content(m: &Value) -> Result<Value, (String, String)> {
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return plain_assistant(m.get("content")),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(("tool_calls".into(), "must be an array".into())),
    };
    let text = match m.get("content") {
        None | Some(Value::Null) => String::new(),
        content => text_only(content).map_err(|e| ("content".to_string(), e))?,
    };
    let mut blocks = Vec::with_capacity(calls.len() + 1);
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for (k, call) in calls.iter().enumerate() {
        let at = |f: &str| format!("tool_calls[{k}].{f}");
        let id = call.get("id").and_then(Value::as_str);
        let f = call.get("function").unwrap_or(&Value::Null);
        let name = f.get("name").and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err((
                at("id"),
                "a tool call needs an id and a function.name".into(),
            ));
        };
        let input = match f.get("arguments").and_then(Value::as_str) {
            Some("") => json!({}),
            Some(args) => match serde_json::from_str::<Value>(args) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err((
                        at("function.arguments"),
                        "must be a JSON object as text".into(),
                    ))
                }
            },
            None => return Err((at("function.arguments"), "field required".into())),
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(Value::Array(blocks))
}

fn plain_assistant(content: Option<&Value>) -> Result<Value, (String, String)> {
    text_only(content)
        .map(Value::String)
        .map_err(|e| ("content".to_string(), e))
}

/// A `role: "tool"` message → a `tool_result` block (its content, text, as a string).
fn tool_result(m: &Value) -> Result<Value, (String, String)> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or(("tool_call_id".to_string(), "field required".to_string()))?;
    let text = text_only(m.get("content")).map_err(|e| ("content".to_string(), e))?;
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": text}))
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
            "message": message_json(outcome),
            "finish_reason": finish_reason(outcome.stop_reason),
            "logprobs": null,
        }],
        "usage": usage_json(&outcome.usage),
    })
}

/// The answer's message: its text (null when there is none beside tool calls) and its tool calls.
fn message_json(outcome: &TurnOutcome) -> Value {
    let text = outcome.text();
    let calls = tool_calls(outcome);
    let mut message = match outcome.stop_reason {
        StopReason::Refusal => json!({"role": "assistant", "content": null, "refusal": text}),
        _ if text.is_empty() && !calls.is_empty() => {
            json!({"role": "assistant", "content": null, "refusal": null})
        }
        _ => json!({"role": "assistant", "content": text, "refusal": null}),
    };
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// The answer's tool calls in OpenAI's shape (the arguments as JSON text).
fn tool_calls(outcome: &TurnOutcome) -> Vec<Value> {
    outcome
        .content
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some(json!({"id": id, "type": "function",
                "function": {"name": name, "arguments": input.to_string()}})),
            Block::Text(_) => None,
        })
        .collect()
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
/// delta, per tool call its start (`id`, `name`, empty `arguments`) and its argument pieces under
/// the call's `index`, then the chunk with `finish_reason` and, if asked for, the usage chunk.
pub struct ChunkWriter {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    role_sent: bool,
    /// Whether any text was streamed (if none by the end, it comes from the outcome).
    text_sent: bool,
    /// Tool calls started so far; the newest is the one argument deltas belong to.
    calls_sent: usize,
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
            calls_sent: 0,
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
        match event {
            TurnEvent::TextDelta(text) if !text.is_empty() => {
                self.text_sent = true;
                out.push(self.chunk(json!({"content": text}), None));
            }
            TurnEvent::BlockStarted(super::BlockKind::ToolUse { id, name }) => {
                let index = self.calls_sent;
                self.calls_sent += 1;
                out.push(self.chunk(
                    json!({"tool_calls": [{"index": index, "id": id,
                    "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    None,
                ));
            }
            TurnEvent::ToolInputDelta(partial) if self.calls_sent > 0 && !partial.is_empty() => {
                let index = self.calls_sent - 1;
                out.push(self.chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": partial}}]}),
                    None,
                ));
            }
            _ => {}
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
        if self.calls_sent == 0 {
            // Not streamed (a non-streaming fallback): each call whole, arguments included.
            for (index, mut call) in tool_calls(outcome).into_iter().enumerate() {
                call["index"] = json!(index);
                out.push(self.chunk(json!({"tool_calls": [call]}), None));
            }
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
