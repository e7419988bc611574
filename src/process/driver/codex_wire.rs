//! The Codex app-server's shapes that need no state: the items prior messages and prompts
//! become (tool calls and results included), the client's tools and the answers to their calls,
//! its usage and error objects read.

use serde_json::{json, Value};

use crate::error::{ServeError, UpstreamKind};
use crate::protocol::tools::ClientTool;
use crate::protocol::{Role, Usage};

/// The HTTP status inside an error's `codexErrorInfo` (`{"httpConnectionFailed":
/// {"httpStatusCode":401}}`, …), or the status a named kind stands for.
pub fn http_status(error: Option<&Value>) -> Option<u16> {
    let info = error?.get("codexErrorInfo")?;
    match info {
        Value::String(kind) => match kind.as_str() {
            "internalServerError" => Some(500),
            "unauthorized" => Some(401),
            "badRequest" => Some(400),
            "usageLimitExceeded" => Some(429),
            _ => None,
        },
        Value::Object(map) => map
            .values()
            .find_map(|v| v.get("httpStatusCode").and_then(Value::as_u64))
            .and_then(|s| u16::try_from(s).ok()),
        _ => None,
    }
}

/// Codex's per-turn usage (`tokenUsage.last`); its input count includes the cached part.
pub fn usage_of(last: &Value) -> Usage {
    let n = |k: &str| last.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cachedInputTokens");
    Usage {
        input_tokens: n("inputTokens").saturating_sub(cached),
        output_tokens: n("outputTokens"),
        cache_creation_input_tokens: n("cacheWriteInputTokens"),
        cache_read_input_tokens: cached,
    }
}

/// The text of an Anthropic-style content value (string or blocks), for history items.
fn blocks_of(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(blocks) => blocks.clone(),
        _ => Vec::new(),
    }
}

fn image_url(block: &Value) -> Option<String> {
    let source = block.get("source")?;
    match source.get("type").and_then(Value::as_str)? {
        "base64" => Some(format!(
            "data:{};base64,{}",
            source.get("media_type").and_then(Value::as_str)?,
            source.get("data").and_then(Value::as_str)?
        )),
        "url" => source.get("url").and_then(Value::as_str).map(String::from),
        _ => None,
    }
}

/// A prior message as raw Responses items for `thread/inject_items`: its text and images as one
/// message, its `tool_use` blocks as `function_call`s after it, its `tool_result` blocks as
/// `function_call_output`s before it (they answer the calls of the message before). An answer is
/// shaped as the Responses API gives the model's own (`annotations`, `status`): Codex keeps those
/// fields, so a replayed answer reaches the model exactly as the same answer in a kept thread does.
pub fn history_items(role: Role, content: &Value) -> Vec<Value> {
    let blocks = blocks_of(content);
    let (role, text_type) = match role {
        Role::User => ("user", "input_text"),
        Role::Assistant => ("assistant", "output_text"),
    };
    let parts: Vec<Value> = blocks
        .iter()
        .filter_map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") if role == "assistant" => {
                Some(json!({"type": text_type, "annotations": [], "text": b.get("text")?}))
            }
            Some("text") => Some(json!({"type": text_type, "text": b.get("text")?})),
            Some("image") if role == "user" => {
                Some(json!({"type": "input_image", "image_url": image_url(b)?}))
            }
            _ => None,
        })
        .collect();
    let mut items: Vec<Value> = blocks.iter().filter_map(function_call_output).collect();
    let calls = blocks.iter().filter_map(function_call);
    // A message of only tool calls or results has no text: no empty message for it.
    let only_tools = parts.is_empty() && blocks.iter().all(is_tool_block);
    if !only_tools {
        items.push(match role {
            "assistant" => {
                json!({"type": "message", "role": role, "content": parts, "status": "completed"})
            }
            _ => json!({"type": "message", "role": role, "content": parts}),
        });
    }
    items.extend(calls);
    items
}

fn is_tool_block(block: &Value) -> bool {
    matches!(
        block.get("type").and_then(Value::as_str),
        Some("tool_use" | "tool_result")
    )
}

/// A `tool_use` block as a `function_call` item (its input as a JSON string).
fn function_call(block: &Value) -> Option<Value> {
    (block.get("type")?.as_str()? == "tool_use").then_some(())?;
    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
    Some(
        json!({"type": "function_call", "call_id": block.get("id")?, "name": block.get("name")?,
        "arguments": input.to_string()}),
    )
}

/// A `tool_result` block as a `function_call_output` item.
fn function_call_output(block: &Value) -> Option<Value> {
    (block.get("type")?.as_str()? == "tool_result").then_some(())?;
    Some(
        json!({"type": "function_call_output", "call_id": block.get("tool_use_id")?,
        "output": result_text(block)}),
    )
}

/// The text of a `tool_result` block (a string, or its text blocks joined).
pub fn result_text(block: &Value) -> String {
    match block.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The answer to an `item/tool/call` from the client's `tool_result` block (`None`: the client
/// sent none for that call).
pub fn tool_answer(result: Option<&Value>) -> Value {
    let Some(block) = result else {
        return json!({"contentItems": [{"type": "inputText",
            "text": "the client sent no result for this call"}], "success": false});
    };
    let failed = block.get("is_error").and_then(Value::as_bool) == Some(true);
    json!({"contentItems": [{"type": "inputText", "text": result_text(block)}],
        "success": !failed})
}

/// The client's tools as `thread/start.dynamicTools`.
pub fn dynamic_tools(tools: &[ClientTool]) -> Vec<Value> {
    tools
        .iter()
        .map(|t| {
            json!({"type": "function", "name": t.name, "description": t.description,
                "inputSchema": t.input_schema})
        })
        .collect()
}

/// A prompt's `tool_result` blocks as `function_call_output` items (injected before the turn
/// starts), and the prompt without them (what `turn/start` sends; `[]` when nothing is left).
pub fn split_tool_results(prompt: &Value) -> (Vec<Value>, Value) {
    let Value::Array(blocks) = prompt else {
        return (Vec::new(), prompt.clone());
    };
    let outputs = blocks.iter().filter_map(function_call_output).collect();
    let rest = blocks.iter().filter(|b| !is_tool_block(b)).cloned();
    (outputs, Value::Array(rest.collect()))
}

/// The prompt as `turn/start` input items; a block Codex cannot take is the client's error.
pub fn prompt_items(content: &Value) -> Result<Vec<Value>, ServeError> {
    blocks_of(content)
        .iter()
        .map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                Ok(json!({"type": "text", "text": b.get("text").cloned().unwrap_or_default()}))
            }
            Some("image") => image_url(b)
                .map(|url| json!({"type": "image", "url": url}))
                .ok_or_else(|| unsupported("an image without a base64 or url source")),
            other => Err(unsupported(&format!(
                "content blocks of type {}",
                other.unwrap_or("(none)")
            ))),
        })
        .collect()
}

fn unsupported(what: &str) -> ServeError {
    ServeError::Upstream {
        kind: UpstreamKind::InvalidRequest,
        status: Some(400),
        message: format!("the codex backend does not take {what}"),
    }
}
