//! The Chat Completions answer on the wire: the `chat.completion` body, the model list, and
//! [`ChunkWriter`], which turns a turn's events into `chat.completion.chunk` objects.

use serde_json::{json, Value};

use crate::protocol::{Block, BlockKind, StopReason, TurnEvent, TurnOutcome, Usage};

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
            TurnEvent::BlockStarted(BlockKind::ToolUse { id, name }) => {
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
