//! The OpenAI Chat Completions API on the wire: request validation into a [`TurnSpec`]-to-be
//! (OpenAI messages and content parts become Anthropic content, which is what the CLI takes;
//! function tools and tool messages in `openai_tools.rs`), and, from `openai_render.rs`, the
//! `chat.completion` response, the model list, and [`ChunkWriter`], which turns a turn's events
//! into `chat.completion.chunk` objects.
//!
//! [`TurnSpec`]: super::TurnSpec

use serde_json::{json, Map, Value};

use super::tools::{self, ClientTool, ToolChoice};
use super::{ChatMessage, PoolKey, Role};
use crate::config::Backend;
use tool_messages::{assistant_content, parse_tool_choice, parse_tools, push_user, tool_result};

pub use render::{chat_completion, finish_reason, model_info, model_list, ChunkWriter};

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

#[path = "openai_render.rs"]
mod render;
#[path = "openai_tools.rs"]
mod tool_messages;

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
