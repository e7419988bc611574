//! The Codex app-server's shapes that need no state: the items prior messages and prompts
//! become, its usage and error objects read.

use serde_json::{json, Value};

use crate::error::{ServeError, UpstreamKind};
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

/// A prior message as a raw Responses item for `thread/inject_items`. An answer is shaped as
/// the Responses API gives the model's own (`annotations`, `status`): Codex keeps those fields,
/// so a replayed answer reaches the model exactly as the same answer in a kept thread does.
pub fn history_item(role: Role, content: &Value) -> Value {
    let (role, text_type) = match role {
        Role::User => ("user", "input_text"),
        Role::Assistant => ("assistant", "output_text"),
    };
    let parts: Vec<Value> = blocks_of(content)
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
    match role {
        "assistant" => {
            json!({"type": "message", "role": role, "content": parts, "status": "completed"})
        }
        _ => json!({"type": "message", "role": role, "content": parts}),
    }
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
