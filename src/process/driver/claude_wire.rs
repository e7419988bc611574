//! Claude Code's stream-json protocol: the lines written to its stdin and the lines read from its
//! stdout, one JSON object per line.
//!
//! Only the fields clinvoker acts on are typed; unknown line types (`command_lifecycle`,
//! `system/status`, …) are parsed as [`CliLine::Other`] and ignored, so a newer CLI that adds
//! lines does not break the server. A line that is not JSON at all is a protocol violation.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::protocol::{Block, BlockKind, TurnEvent};

/// A user message. `should_query: false` appends it to the conversation without a model call
/// (used to replay history); `client_composed` stops the CLI from expanding `@/path` mentions
/// and running `/slash` commands found in forwarded text.
/// `uuid` is ours: the CLI records the message under it, reports it back in the `result`, and
/// `rewind_conversation` targets it.
pub fn user_line(content: &Value, should_query: bool, uuid: &str) -> Value {
    json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "uuid": uuid,
        "shouldQuery": should_query,
        "client_composed": true,
        "parent_tool_use_id": null,
        "session_id": "",
    })
}

/// An assistant message of replayed history; the CLI appends it at once and prints nothing.
pub fn assistant_line(content: &Value) -> Value {
    let content = match content {
        Value::String(s) => json!([{"type": "text", "text": s}]),
        other => other.clone(),
    };
    json!({"type": "assistant", "message": {"role": "assistant", "content": content}})
}

/// A control request; the CLI answers with a `control_response` carrying the same id.
pub fn control_line(request_id: &str, request: Value) -> Value {
    json!({"type": "control_request", "request_id": request_id, "request": request})
}

/// Binds the system prompt and, when given, the structured-output schema: the CLI keeps both for
/// the process's life (a later `initialize` is ignored without a sign).
pub fn initialize_request(system_prompt: &str, output_schema: Option<&Value>) -> Value {
    let mut request =
        json!({"subtype": "initialize", "hooks": null, "systemPrompt": system_prompt});
    if let Some(schema) = output_schema {
        request["jsonSchema"] = schema.clone();
    }
    request
}

/// A harmless query answered before `initialize`: the readiness probe of a spare, which must not
/// bind a system prompt yet.
pub fn probe_request() -> Value {
    json!({"subtype": "get_settings"})
}

pub fn set_model_request(model: &str) -> Value {
    json!({"subtype": "set_model", "model": model})
}

pub fn interrupt_request() -> Value {
    json!({"subtype": "interrupt"})
}

/// Removes `target` (the first user message of a request) and everything after it: the process is
/// back to an empty conversation. `last_seen` must be the newest user message the CLI reported.
pub fn rewind_request(target: &str, last_seen: &str) -> Value {
    json!({
        "subtype": "rewind_conversation",
        "target_message_uuid": target,
        "last_seen_user_message_uuid": last_seen,
    })
}

/// One stdout line.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CliLine {
    StreamEvent {
        event: Value,
    },
    Assistant {
        message: AssistantMessage,
    },
    Result(Box<TurnResult>),
    ControlResponse {
        response: ControlResponse,
    },
    System {
        subtype: Option<String>,
        #[serde(flatten)]
        rest: serde_json::Map<String, Value>,
    },
    /// A request from the CLI to the host (`can_use_tool`, …). With `--permission-prompts none`
    /// none is expected; the process answers each with an error so the CLI never waits.
    ControlRequest {
        request_id: String,
        request: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub struct AssistantMessage {
    pub id: Option<String>,
    #[serde(default)]
    pub content: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct ControlResponse {
    pub subtype: String,
    pub request_id: String,
    #[serde(default)]
    pub response: Value,
    #[serde(default)]
    pub error: Option<String>,
}

/// The single `result` line that ends every turn (also for `shouldQuery:false` messages).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TurnResult {
    pub subtype: String,
    pub is_error: bool,
    pub result: Option<String>,
    pub errors: Vec<Value>,
    pub stop_reason: Option<String>,
    pub terminal_reason: Option<String>,
    pub api_error_status: Option<u16>,
    pub num_turns: u32,
    pub duration_ms: u64,
    /// Cumulative for the whole process, not per turn.
    pub total_cost_usd: f64,
    pub usage: ResultUsage,
    /// The id of the user message this result answers (the one we sent with it).
    pub user_message_uuid: Option<String>,
    /// On a process bound to a schema: the validated answer. Absent on `success` when the model
    /// kept answering in text (a refusal).
    pub structured_output: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResultUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl TurnResult {
    /// A human-readable reason for an error result.
    pub fn error_message(&self) -> String {
        if let Some(text) = self.result.as_deref().filter(|t| !t.is_empty()) {
            return text.to_string();
        }
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        if errors.is_empty() {
            format!("the CLI ended the turn with `{}`", self.subtype)
        } else {
            errors.join("; ")
        }
    }
}

/// Turns the CLI's raw Messages-API streaming events into typed [`TurnEvent`]s: text and tool
/// blocks pass, thinking blocks (not asked for) are dropped. A text block is announced with its
/// first delta, so an attempt that fails before any text leaves nothing behind. A new
/// `message_start` before the current message's `message_stop` is the CLI retrying the upstream
/// call: it closes the open block and reports [`TurnEvent::Restarted`].
#[derive(Debug, Default)]
pub struct StreamDemux {
    /// The upstream index of the visible block now open, and whether its start was sent.
    open: Option<(u64, bool)>,
    /// Between a `message_start` and its `message_stop`.
    in_message: bool,
}

impl StreamDemux {
    pub fn event(&mut self, ev: &Value) -> Vec<TurnEvent> {
        let index = ev.get("index").and_then(Value::as_u64);
        let is_open = |open: &Option<(u64, bool)>| index.is_some() && open.map(|o| o.0) == index;
        match ev.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let mut out = self.close();
                if std::mem::replace(&mut self.in_message, true) {
                    out.push(TurnEvent::Restarted);
                }
                out
            }
            Some("message_stop") => {
                self.in_message = false;
                self.close()
            }
            Some("content_block_start") => {
                let block = ev.get("content_block").unwrap_or(&Value::Null);
                let mut out = self.close();
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => self.open = index.map(|i| (i, false)),
                    Some("tool_use") => {
                        self.open = index.map(|i| (i, true));
                        out.push(TurnEvent::BlockStarted(BlockKind::ToolUse {
                            id: str_of(block, "id"),
                            name: str_of(block, "name"),
                        }));
                    }
                    _ => {}
                }
                out
            }
            Some("content_block_delta") if is_open(&self.open) => {
                let delta = ev.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let mut out = Vec::new();
                        if let Some((_, announced @ false)) = &mut self.open {
                            *announced = true;
                            out.push(TurnEvent::BlockStarted(BlockKind::Text));
                        }
                        out.push(TurnEvent::TextDelta(str_of(delta, "text")));
                        out
                    }
                    Some("input_json_delta") => {
                        vec![TurnEvent::ToolInputDelta(str_of(delta, "partial_json"))]
                    }
                    _ => Vec::new(),
                }
            }
            Some("content_block_stop") if is_open(&self.open) => self.close(),
            _ => Vec::new(),
        }
    }

    fn close(&mut self) -> Vec<TurnEvent> {
        match self.open.take() {
            Some((_, true)) => vec![TurnEvent::BlockStopped],
            _ => Vec::new(),
        }
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The blocks of an assistant message a client may see (thinking blocks were not asked for).
pub fn blocks(content: Vec<Value>) -> Vec<Block> {
    content
        .into_iter()
        .filter_map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") => Some(Block::Text(str_of(&b, "text"))),
            Some("tool_use") => Some(Block::ToolUse {
                id: str_of(&b, "id"),
                name: str_of(&b, "name"),
                input: b.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            _ => None,
        })
        .collect()
}

/// Parses one stdout line; `Err` means the line is not JSON (a protocol violation).
pub fn parse_line(line: &str) -> Result<CliLine, serde_json::Error> {
    let value: Value = serde_json::from_str(line)?;
    // A JSON line whose known `type` has an unexpected shape is tolerated as `Other`.
    Ok(serde_json::from_value(value).unwrap_or(CliLine::Other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_result_line() {
        let line = r#"{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"echo: hello ","stop_reason":"end_turn","duration_ms":93,"total_cost_usd":0.00014,"usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0},"user_message_uuid":"9b63"}"#;
        let CliLine::Result(r) = parse_line(line).expect("json") else {
            panic!("not a result")
        };
        assert_eq!(r.usage.output_tokens, 5);
        assert_eq!(r.user_message_uuid.as_deref(), Some("9b63"));
        assert!(!r.is_error);
    }

    #[test]
    fn unknown_types_are_other_and_garbage_is_an_error() {
        assert!(matches!(
            parse_line(r#"{"type":"command_lifecycle","state":"queued"}"#),
            Ok(CliLine::Other)
        ));
        assert!(matches!(
            parse_line(r#"{"type":"system","subtype":"init","model":"x"}"#),
            Ok(CliLine::System { .. })
        ));
        assert!(parse_line("Loading... 50%").is_err());
    }

    #[test]
    fn error_message_prefers_result_text_then_errors() {
        let r = TurnResult {
            subtype: "error_max_turns".into(),
            errors: vec![json!("Reached maximum number of turns (1)")],
            ..Default::default()
        };
        assert_eq!(r.error_message(), "Reached maximum number of turns (1)");
    }

    #[test]
    fn stream_events_become_typed_blocks_without_thinking() {
        let mut demux = StreamDemux::default();
        let events: Vec<String> = [
            json!({"type": "message_start", "message": {}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "hi"}}),
            // The CLI retries the upstream call mid-block: the open block is closed.
            json!({"type": "message_start", "message": {}}),
            // A text block without any text is never announced.
            json!({"type": "content_block_start", "index": 5, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_stop", "index": 5}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "f"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
            json!({"type": "message_stop"}),
            // The next message of an agentic turn is not a restart.
            json!({"type": "message_start", "message": {}}),
        ]
        .iter()
        .flat_map(|e| demux.event(e))
        .map(|e| format!("{e:?}"))
        .collect();
        assert_eq!(
            events,
            [
                "BlockStarted(Text)",
                "TextDelta(\"hi\")",
                "BlockStopped",
                "Restarted",
                "BlockStarted(ToolUse { id: \"t1\", name: \"f\" })",
                "ToolInputDelta(\"{}\")",
                "BlockStopped"
            ]
        );
    }

    #[test]
    fn lines_are_single_line_json() {
        let l = user_line(&json!("two\nlines"), true, "u1").to_string();
        assert!(
            !l.contains('\n'),
            "an embedded newline would split the NDJSON line"
        );
        assert_eq!(
            assistant_line(&json!("a1"))["message"]["content"][0]["text"],
            "a1"
        );
    }
}
