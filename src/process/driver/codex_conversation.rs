//! One conversation of a Codex process while a turn runs on it: its thread, the step it has
//! reached, its answer as it streams, the client tool calls it took, and the final event
//! `turn/completed` makes of it; and a thread kept between turns.

use serde_json::Value;

use super::codex_wire::http_status;
use super::TurnInput;
use crate::error::{ServeError, UpstreamKind};
use crate::process::messages::ConversationId;
use crate::protocol::{Block, StopReason, TurnEvent, TurnOutcome, Usage};

/// Where a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `thread/start` sent.
    Starting,
    /// `thread/inject_items` sent.
    Injecting,
    /// `turn/start` sent; the answer streams.
    Answering,
    /// The final event is out; `thread/delete` sent (or nothing to delete).
    Deleting,
}

#[derive(Debug)]
pub struct Conversation {
    pub stage: Stage,
    pub thread: Option<String>,
    /// Codex's id of the running turn (needed to interrupt it).
    pub codex_turn: Option<String>,
    /// What is still to be sent: the history, then the prompt.
    pub input: Option<TurnInput>,
    pub interrupted: bool,
    /// A text block is open for the client.
    pub open_block: bool,
    /// Text streamed so far (the answer when `turn/completed` lists no message).
    pub streamed: String,
    pub usage: Usage,
    /// The last non-retried `error` notification's message.
    pub error: Option<(Option<u16>, String)>,
    /// The structured-output schema of the turn: Codex passes it upstream (a strict response
    /// format) but does not validate the answer, so the driver does.
    pub schema: Option<Value>,
    /// Whose conversation the turn is, and whether to keep its thread after a clean end.
    pub conversation: ConversationId,
    pub keep: bool,
    /// The client's tools the thread was started with (their names: a call of any other tool
    /// is refused).
    pub tool_names: Vec<String>,
    /// The model's calls of client tools so far, in order: the `tool_use` blocks of the answer.
    pub calls: Vec<ToolCall>,
    /// `WakeAfter`s asked for and not yet come back: when the last one comes with no call
    /// after it, the calls are all in.
    pub wakes: u32,
    /// The client has its `tool_use` answer; the CLI's turn is being interrupted (not kept),
    /// and its `turn/completed` only releases the slot.
    pub tool_answered: bool,
    /// The answer is the text streamed in this client turn, not the CLI turn's items: a
    /// continued tool turn's items hold the text before the calls too.
    pub from_stream: bool,
}

/// A `item/tool/call` request of the CLI: the model called a client tool.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// The JSON-RPC id to answer.
    pub request: Value,
    pub call_id: String,
    pub name: String,
    pub arguments: Value,
}

impl ToolCall {
    pub fn of(request: &Value, params: &Value) -> Option<Self> {
        Some(Self {
            request: request.clone(),
            call_id: params.get("callId")?.as_str()?.to_string(),
            name: params.get("tool")?.as_str()?.to_string(),
            arguments: params.get("arguments").cloned().unwrap_or(Value::Null),
        })
    }
}

/// A thread kept between turns (its conversation parked).
#[derive(Debug)]
pub struct KeptThread {
    pub thread: String,
    /// When its turn stopped for client tools: the CLI's turn still runs, waiting on the calls.
    pub waiting: Option<WaitingCalls>,
}

/// The calls a parked tool turn waits on.
#[derive(Debug)]
pub struct WaitingCalls {
    /// The CLI's turn (to interrupt it when forgotten).
    pub codex_turn: String,
    /// The calls the client got as `tool_use` blocks: the follow-up's results answer them.
    pub answered: Vec<ToolCall>,
    /// Calls of the same model answer that came after the client's answer went out: the
    /// follow-up's turn asks the client for them next.
    pub late: Vec<ToolCall>,
}

impl Conversation {
    /// A turn's conversation, on `thread` when it resumes a kept one.
    pub fn new(thread: Option<String>, input: TurnInput) -> Self {
        Self {
            stage: Stage::Starting,
            thread,
            codex_turn: None,
            schema: input.output_schema.clone(),
            conversation: input.conversation,
            keep: input.keep,
            tool_names: input.tools.iter().map(|t| t.name.clone()).collect(),
            calls: Vec::new(),
            wakes: 0,
            tool_answered: false,
            from_stream: false,
            input: Some(input),
            interrupted: false,
            open_block: false,
            streamed: String::new(),
            usage: Usage::default(),
            error: None,
        }
    }
}

/// Whether the thread of a completed turn holds just what the client gets: one `agentMessage`
/// and, besides the user's message, no other item (reasoning, say, which a replay of the
/// conversation would lack).
pub fn holds_only_the_answer(t: &Value) -> bool {
    let kinds: Vec<&str> = t
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| i.get("type").and_then(Value::as_str).unwrap_or_default())
        .filter(|kind| *kind != "userMessage")
        .collect();
    kinds == ["agentMessage"]
}

/// The final event for a `turn/completed` turn object.
pub fn completed_event(t: &Value, c: &Conversation) -> TurnEvent {
    match t.get("status").and_then(Value::as_str) {
        Some("completed") => {
            let text: String = t
                .get("items")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter(|i| i.get("type").and_then(Value::as_str) == Some("agentMessage"))
                        .filter_map(|i| i.get("text").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            let text = if text.is_empty() || c.from_stream {
                c.streamed.clone()
            } else {
                text
            };
            if let Some(schema) = &c.schema {
                if let Err(message) = crate::protocol::schema::validate(schema, &text) {
                    return TurnEvent::Failed(ServeError::StructuredOutputInvalid { message });
                }
            }
            TurnEvent::Done(TurnOutcome {
                content: vec![Block::Text(text)],
                stop_reason: StopReason::EndTurn,
                stop_sequence: None,
                usage: c.usage.clone(),
                cost_usd: 0.0,
                duration_ms: t.get("durationMs").and_then(Value::as_u64).unwrap_or(0),
            })
        }
        Some("interrupted") => TurnEvent::Failed(ServeError::Cancelled),
        _ => {
            let error = t.get("error");
            let status = http_status(error).or(c.error.as_ref().and_then(|e| e.0));
            let message = error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(String::from)
                .or_else(|| c.error.as_ref().map(|e| e.1.clone()))
                .unwrap_or_else(|| "the turn failed".into());
            TurnEvent::Failed(ServeError::Upstream {
                kind: UpstreamKind::from_status(status),
                status,
                message,
            })
        }
    }
}
