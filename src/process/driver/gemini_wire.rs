//! The Gemini CLI's formats, apart from the order of the protocol's steps: ACP prompt blocks
//! from Anthropic-style content, the guard against the CLI's local commands, the session file
//! that carries prior history into a `session/load`, and what a prompt's answer means (stop
//! reason, usage, errors).

use serde_json::{json, Value};

use super::jsonrpc::RpcError;
use crate::error::{ServeError, UpstreamKind};
use crate::protocol::{Block, ChatMessage, Role, StopReason, TurnEvent, TurnOutcome, Usage};

pub const BACKEND: &str = "gemini";

/// The minute in the names and times of the session files the server writes. Any minute but
/// the current one: loading a session makes the CLI record it again under a name with the
/// current minute, which overwrites a file of that same name and fails the load.
const OLD_STAMP: &str = "2020-01-01T00-00";
const OLD_TIME: &str = "2020-01-01T00:00:00.000Z";

/// Prefixed to a prompt the CLI would run as a local command; measured to reach the model as
/// plain text (JavaScript's `trim` keeps it, unlike a space).
const ZERO_WIDTH_SPACE: char = '\u{200b}';

/// `initialize`: the client (this server) offers no file system and no terminal.
pub fn initialize_params() -> Value {
    json!({"protocolVersion": 1, "clientCapabilities": {
        "fs": {"readTextFile": false, "writeTextFile": false}, "terminal": false}})
}

/// The answer to a request of the CLI's, `None` for one this server does not support. A
/// permission request is refused: the chat profile lets the model run nothing.
pub fn answer_request(method: &str, params: &Value) -> Option<Value> {
    if method != "session/request_permission" {
        return None;
    }
    let options = params["options"].as_array().map(Vec::as_slice);
    let reject = options.unwrap_or_default().iter().find(|option| {
        matches!(
            option["kind"].as_str(),
            Some("reject_once" | "reject_always")
        )
    });
    let outcome = match reject {
        Some(option) => json!({"outcome": "selected", "optionId": option["optionId"]}),
        None => json!({"outcome": "cancelled"}),
    };
    Some(json!({ "outcome": outcome }))
}

/// `session-<minute>-<id[:8]>.jsonl`: the name the CLI looks for when it loads `session_id`.
pub fn session_file_name(session_id: &str) -> String {
    format!("session-{OLD_STAMP}{}", chat_suffix(session_id))
}

/// The end of every chat file name of `session_id`: the CLI's own recordings and ours.
pub fn chat_suffix(session_id: &str) -> String {
    let short = session_id.get(..8).unwrap_or(session_id);
    format!("-{short}.jsonl")
}

/// The session file (JSONL) that makes `history` the conversation of `session_id`.
pub fn session_file(session_id: &str, history: &[ChatMessage]) -> String {
    // The CLI requires `projectHash` to be present but does not compare it with its own.
    let header = json!({"sessionId": session_id, "projectHash": "clinvoker",
        "startTime": OLD_TIME, "lastUpdated": OLD_TIME, "kind": "main"});
    let mut lines = vec![header.to_string()];
    for message in history {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let line = match message.role {
            Role::User => {
                let parts = user_parts(&message.content);
                if parts.is_empty() {
                    continue;
                }
                json!({"id": id, "timestamp": OLD_TIME, "type": "user", "content": parts})
            }
            Role::Assistant => json!({"id": id, "timestamp": OLD_TIME, "type": "gemini",
                "content": assistant_text(&message.content)}),
        };
        lines.push(line.to_string());
    }
    lines.join("\n") + "\n"
}

/// A user message as Gemini API parts (text and inline images).
fn user_parts(content: &Value) -> Vec<Value> {
    blocks_of(content)
        .into_iter()
        .filter_map(|block| match block["type"].as_str() {
            Some("text") => Some(json!({"text": block["text"]})),
            Some("image") if block["source"]["type"] == "base64" => Some(json!({"inlineData": {
                "mimeType": block["source"]["media_type"], "data": block["source"]["data"]}})),
            _ => as_text(&block).map(|text| json!({"text": text})),
        })
        .collect()
}

fn assistant_text(content: &Value) -> String {
    blocks_of(content)
        .iter()
        .filter_map(|block| match block["type"].as_str() {
            Some("text") => block["text"].as_str().map(String::from),
            _ => as_text(block),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `content` as a list of blocks (a bare string is one text block).
/// The content blocks of `messages` and then of `prompt`, as one message's content.
pub fn joined(messages: Vec<ChatMessage>, prompt: &Value) -> Value {
    let contents = messages.iter().map(|m| &m.content).chain([prompt]);
    Value::Array(contents.flat_map(blocks_of).collect())
}

fn blocks_of(content: &Value) -> Vec<Value> {
    match content {
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        Value::Array(blocks) => blocks.clone(),
        _ => Vec::new(),
    }
}

/// A block the CLI has no form for, as text the model can still read; `None` for thinking,
/// which is the model's own and not replayed.
fn as_text(block: &Value) -> Option<String> {
    match block["type"].as_str() {
        Some("thinking" | "redacted_thinking") => None,
        Some("tool_use") => Some(format!(
            "[tool call {}: {}]",
            block["name"].as_str().unwrap_or_default(),
            block["input"]
        )),
        Some("tool_result") => {
            let inner = match &block["content"] {
                Value::String(text) => text.clone(),
                other => assistant_text(other),
            };
            Some(format!("[tool result: {inner}]"))
        }
        _ => Some(block.to_string()),
    }
}

/// The final user message as ACP prompt blocks. `Err` names content the CLI cannot take.
pub fn prompt_blocks(content: &Value) -> Result<Vec<Value>, String> {
    let mut blocks = Vec::new();
    for block in blocks_of(content) {
        let converted = match block["type"].as_str() {
            Some("text") => json!({"type": "text", "text": block["text"]}),
            Some("image") if block["source"]["type"] == "base64" => json!({"type": "image",
                "mimeType": block["source"]["media_type"], "data": block["source"]["data"]}),
            Some("image") => return Err("the gemini backend takes base64 images only".into()),
            _ => match as_text(&block) {
                Some(text) => json!({"type": "text", "text": text}),
                None => continue,
            },
        };
        blocks.push(converted);
    }
    guard_local_commands(&mut blocks);
    Ok(blocks)
}

/// The CLI runs a prompt whose leading text blocks, joined and trimmed, start with `/` or `$`
/// as one of its own commands (`/memory`, `/extensions install …`) without asking the model.
/// Such a prompt gets a zero-width space in front, so it is only ever text for the model.
fn guard_local_commands(blocks: &mut [Value]) {
    let leading: String = blocks
        .iter()
        .map_while(|b| (b["type"] == "text").then(|| b["text"].as_str().unwrap_or_default()))
        .collect();
    // JavaScript's `trim` also drops a byte-order mark, which Rust's whitespace does not cover.
    let head = leading.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if !head.starts_with(['/', '$']) {
        return;
    }
    if let Some(first) = blocks.first_mut() {
        let text = first["text"].as_str().unwrap_or_default();
        first["text"] = json!(format!("{ZERO_WIDTH_SPACE}{text}"));
    }
}

/// A failed request. The CLI answers an upstream failure with the HTTP status as the error
/// code and the upstream's error body (JSON or bare text) as the message.
pub fn failure(step: &str, error: &RpcError) -> ServeError {
    let status = u16::try_from(error.code)
        .ok()
        .filter(|s| (400..600).contains(s));
    if let Some(status) = status {
        let kind = match status {
            // Google reports an overloaded model as 503 UNAVAILABLE.
            503 => UpstreamKind::Overloaded,
            _ => UpstreamKind::from_status(Some(status)),
        };
        return ServeError::Upstream {
            kind,
            status: Some(status),
            message: upstream_message(&error.message),
        };
    }
    let details = error.data.as_ref().and_then(|d| d["details"].as_str());
    let message = match details {
        Some(details) => format!("{step} failed: {} ({details})", error.message),
        None => format!("{step} failed: {}", error.message),
    };
    // ACP's "authentication required": the CLI found no usable API key.
    let kind = match error.code {
        -32000 => UpstreamKind::Authentication,
        _ => UpstreamKind::Other,
    };
    ServeError::Upstream {
        kind,
        status: None,
        message,
    }
}

/// `{"error":{"message":…}}` → its message; anything else as it is.
fn upstream_message(message: &str) -> String {
    serde_json::from_str::<Value>(message)
        .ok()
        .and_then(|body| body["error"]["message"].as_str().map(String::from))
        .unwrap_or_else(|| message.to_string())
}

/// The final event of a prompt the CLI answered with `result`, whose text streamed as `text`.
pub fn outcome(result: &Value, text: String) -> TurnEvent {
    let stop_reason = match result["stopReason"].as_str() {
        Some("cancelled") => return TurnEvent::Failed(ServeError::Cancelled),
        Some("max_tokens") => StopReason::MaxTokens,
        Some("refusal") => StopReason::Refusal,
        // `end_turn`, and `max_turn_requests` (only with tools, which this server gives none).
        _ => StopReason::EndTurn,
    };
    let tokens = &result["_meta"]["quota"]["token_count"];
    let count = |key: &str| tokens[key].as_u64().unwrap_or_default();
    TurnEvent::Done(TurnOutcome {
        content: if text.is_empty() {
            Vec::new()
        } else {
            vec![Block::Text(text)]
        },
        stop_reason,
        stop_sequence: None,
        usage: Usage {
            input_tokens: count("input_tokens"),
            output_tokens: count("output_tokens"),
            ..Usage::default()
        },
        cost_usd: 0.0,
        // The CLI reports no duration; the process actor times the turn itself.
        duration_ms: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: Role, content: Value) -> ChatMessage {
        ChatMessage { role, content }
    }

    #[test]
    fn a_session_file_has_a_header_then_one_line_per_message() {
        let history = [
            message(Role::User, json!("q0")),
            message(
                Role::Assistant,
                json!([{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "a0"}]),
            ),
            message(
                Role::User,
                json!([{"type": "text", "text": "see"}, {"type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]),
            ),
            message(Role::User, json!([])),
        ];
        let file = session_file("0123abcd-1111", &history);
        let lines: Vec<Value> = file
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect();
        assert_eq!(lines.len(), 4, "the empty message is left out");
        assert_eq!(lines[0]["sessionId"], "0123abcd-1111");
        assert_eq!(lines[0]["startTime"], OLD_TIME);
        assert_eq!(lines[1]["type"], "user");
        assert_eq!(lines[1]["content"], json!([{"text": "q0"}]));
        assert_eq!(lines[2]["type"], "gemini");
        assert_eq!(lines[2]["content"], "a0");
        assert_eq!(
            lines[3]["content"][1]["inlineData"]["mimeType"],
            "image/png"
        );
        assert_ne!(lines[1]["id"], lines[2]["id"]);
        assert_eq!(
            session_file_name("0123abcd-1111"),
            "session-2020-01-01T00-00-0123abcd.jsonl"
        );
    }

    #[test]
    fn prompts_become_acp_blocks() {
        let blocks = prompt_blocks(&json!([
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "B"}},
            {"type": "tool_result", "tool_use_id": "t", "content": "42"}
        ]))
        .expect("convertible");
        assert_eq!(blocks[0], json!({"type": "text", "text": "look"}));
        assert_eq!(
            blocks[1],
            json!({"type": "image", "mimeType": "image/jpeg", "data": "B"})
        );
        assert_eq!(blocks[2]["text"], "[tool result: 42]");
        let url = json!([{"type": "image", "source": {"type": "url", "url": "https://x"}}]);
        assert!(prompt_blocks(&url).is_err());
    }

    #[test]
    fn upstream_errors_keep_their_status_and_message() {
        let error = |code, message: &str| RpcError {
            code,
            message: message.into(),
            data: None,
        };
        let body = r#"{"error":{"code":401,"message":"bad key","status":"UNAUTHENTICATED"}}"#;
        match failure("prompt", &error(401, body)) {
            ServeError::Upstream {
                kind: UpstreamKind::Authentication,
                status: Some(401),
                message,
            } => assert_eq!(message, "bad key"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            failure("prompt", &error(503, "busy")),
            ServeError::Upstream {
                kind: UpstreamKind::Overloaded,
                ..
            }
        ));
        let internal = RpcError {
            data: Some(json!({"details": "boom"})),
            ..error(-32603, "Internal error")
        };
        match failure("session/new", &internal) {
            ServeError::Upstream {
                kind: UpstreamKind::Other,
                status: None,
                message,
            } => assert_eq!(message, "session/new failed: Internal error (boom)"),
            other => panic!("{other:?}"),
        }
    }
}
