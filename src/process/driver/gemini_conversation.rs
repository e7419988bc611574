//! One conversation of a Gemini process: its turn's input in the form the CLI takes, the step
//! it has reached, and its answer as it streams.

use serde_json::Value;

use super::gemini_wire as wire;
use super::{Outbox, TurnInput};
use crate::error::{ServeError, UpstreamKind};
use crate::process::messages::{ConversationId, TurnId};
use crate::protocol::{BlockKind, ChatMessage, TurnEvent};

/// Where a conversation is; each step waits for the answer to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for another turn's session creation to finish.
    Waiting,
    /// `session/new` or `session/load` sent.
    Creating,
    SettingModel,
    Prompting,
}

#[derive(Debug)]
pub struct Conversation {
    pub stage: Stage,
    /// Set once interrupted: the turn ends at its next step (at once, if still waiting).
    pub interrupted: bool,
    /// The ACP session: known from its creation's answer, or at once for a load (the server
    /// names the session it writes).
    pub session: Option<String>,
    pub system_prompt: String,
    pub model: String,
    /// Prior turns, until they are written into the session file.
    pub history: Vec<ChatMessage>,
    /// ACP prompt blocks.
    pub prompt: Vec<Value>,
    /// The answer so far, for the final event.
    pub text: String,
    block_open: bool,
    pub conversation: ConversationId,
    /// Keep the session after a clean end.
    pub keep: bool,
}

impl Conversation {
    /// `input` as the CLI takes it; `Err` when its content cannot be sent. An empty or "auto"
    /// model becomes `default_model`: a session is always pinned to a model.
    /// A resumed conversation's new messages (user messages: see `parking`) lead its prompt.
    pub fn new(mut input: TurnInput, default_model: &str) -> Result<Self, ServeError> {
        let content = match input.resume {
            true => wire::joined(std::mem::take(&mut input.history), &input.prompt),
            false => input.prompt.clone(),
        };
        let prompt = wire::prompt_blocks(&content).map_err(|message| ServeError::Upstream {
            kind: UpstreamKind::InvalidRequest,
            status: None,
            message,
        })?;
        let model = match input.model.as_str() {
            "" | "auto" => default_model.to_string(),
            _ => input.model,
        };
        Ok(Self {
            stage: Stage::Waiting,
            interrupted: false,
            session: None,
            system_prompt: input.system_prompt,
            model,
            history: input.history,
            prompt,
            text: String::new(),
            block_open: false,
            conversation: input.conversation,
            keep: input.keep,
        })
    }

    /// A `session/update` of this conversation's session.
    pub fn on_update(&mut self, turn: TurnId, update: &Value, out: &mut Outbox) {
        match update["sessionUpdate"].as_str() {
            // Before the prompt, chunks are a loaded session's history played back. The CLI
            // starts that replay before it answers `session/load`, and a `set_model` round trip
            // comes before the prompt: a replayed chunk after the prompt would take a replay
            // slower than two round trips (not seen; not ruled out by the protocol either).
            Some("agent_message_chunk") if self.stage == Stage::Prompting => {
                let text = update["content"]["text"].as_str().unwrap_or_default();
                if text.is_empty() {
                    return;
                }
                if !self.block_open {
                    self.block_open = true;
                    out.turn(turn, TurnEvent::BlockStarted(BlockKind::Text));
                }
                self.text.push_str(text);
                out.turn(turn, TurnEvent::TextDelta(text.to_string()));
            }
            Some(kind @ ("tool_call" | "tool_call_update")) => {
                log::warn!("turn {turn}: unexpected {kind} (no tools are configured)");
            }
            // Thoughts, plans, command lists, replayed user messages: not part of the answer.
            _ => {}
        }
    }

    /// Closes the open block and gives the turn its final event.
    pub fn finish(&self, turn: TurnId, event: TurnEvent, out: &mut Outbox) {
        if self.block_open {
            out.turn(turn, TurnEvent::BlockStopped);
        }
        out.turn(turn, event);
    }
}
