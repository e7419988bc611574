//! The Messages API's stream for one client: [`StreamTranslator`] turns a turn's typed events
//! into the SSE events a client of `POST /v1/messages` expects.

use serde_json::{json, Value};

use super::{stop_reason_name, usage_json};
use crate::protocol::{Block, BlockKind, TurnEvent, TurnOutcome};

/// An SSE event: name and JSON data.
pub type SseEvent = (&'static str, Value);

/// Writes a turn's events as the Messages API's stream for one client: `message_start` before
/// the first block, each block's start/delta/stop under the client's numbering, and the closing
/// `message_delta` (with the turn's real usage) and `message_stop` once the outcome is known.
pub struct StreamTranslator {
    model: String,
    message_id: String,
    started: bool,
    /// The index of the block now open, if any.
    open: Option<u64>,
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
            open: None,
            next_index: 0,
            blocks_sent: 0,
        }
    }

    fn ensure_started(&mut self) -> Vec<SseEvent> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        vec![(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        )]
    }

    fn delta(&self, delta: Value) -> Vec<SseEvent> {
        match self.open {
            Some(index) => vec![(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            )],
            None => Vec::new(),
        }
    }

    fn stop_block(&mut self) -> Vec<SseEvent> {
        match self.open.take() {
            Some(index) => vec![(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            )],
            None => Vec::new(),
        }
    }

    /// One event of the turn → what the client gets now (possibly nothing).
    pub fn event(&mut self, ev: &TurnEvent) -> Vec<SseEvent> {
        match ev {
            TurnEvent::BlockStarted(kind) => {
                let mut out = self.ensure_started();
                out.extend(self.stop_block());
                let index = self.next_index;
                self.next_index += 1;
                self.blocks_sent += 1;
                self.open = Some(index);
                let block = match kind {
                    BlockKind::Text => json!({"type": "text", "text": ""}),
                    BlockKind::ToolUse { id, name } => {
                        json!({"type": "tool_use", "id": id, "name": name, "input": {}})
                    }
                };
                out.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": block}),
                ));
                out
            }
            TurnEvent::TextDelta(text) => self.delta(json!({"type": "text_delta", "text": text})),
            TurnEvent::ToolInputDelta(partial) => {
                self.delta(json!({"type": "input_json_delta", "partial_json": partial}))
            }
            TurnEvent::BlockStopped => self.stop_block(),
            // Text blocks start with their first delta, so a restart before any text left
            // nothing to take back; after text, the stream ends with an error instead (sse).
            TurnEvent::Restarted | TurnEvent::Done(_) | TurnEvent::Failed(_) => Vec::new(),
        }
    }

    /// The turn succeeded: anything not streamed yet (the CLI may have fallen back to a
    /// non-streaming call), then the closing events.
    pub fn done(&mut self, outcome: &TurnOutcome) -> Vec<SseEvent> {
        let mut out = self.ensure_started();
        out.extend(self.stop_block());
        if self.blocks_sent == 0 {
            for block in &outcome.content {
                let index = self.next_index;
                self.next_index += 1;
                out.extend(block_events(index, block));
            }
        }
        out.push((
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason_name(outcome.stop_reason), "stop_sequence": outcome.stop_sequence},
            "usage": usage_json(&outcome.usage)}),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
        out
    }
}

/// The start/delta/stop events of one whole block.
fn block_events(index: u64, block: &Block) -> Vec<SseEvent> {
    let (start, delta) = match block {
        Block::ToolUse { id, name, input } => (
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            json!({"type": "input_json_delta", "partial_json": input.to_string()}),
        ),
        Block::Text(text) => (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": text}),
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
