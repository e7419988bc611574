//! A Claude Code turn as the driver runs it: the steps that feed the request into the CLI (reset
//! a kept conversation, switch model, replay history, send the prompt), what the turn waits for,
//! and the conversation a process keeps between turns ([`Held`]). [`Turn::plan`] decides the
//! steps from the request and what the process holds.

use std::collections::VecDeque;

use serde_json::Value;

use super::mcp::ToolUseWatch;
use super::tool_turn;
use super::wire::StreamDemux;
use super::TurnInput;
use crate::error::ServeError;
use crate::process::messages::{ConversationId, TurnId};
use crate::protocol::Role;

/// One step of feeding a request into the CLI (history replay, then the prompt).
#[derive(Debug)]
pub(super) enum Step {
    /// Empty the kept conversation (`rewind_conversation` to its first message).
    Rewind {
        first: String,
        last: String,
    },
    SetModel(String),
    /// A user message of prior history, appended without a model call.
    ReplayUser(Value),
    /// An assistant message of prior history; the CLI prints nothing for it.
    ReplayAssistant(Value),
    /// The final user message: the model answers this one.
    Prompt(Value),
}

/// What the running turn waits for before taking its next step.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Awaiting {
    Control(String),
    Rewind(String),
    ReplayResult,
    FinalResult,
}

/// The turn in flight.
#[derive(Debug)]
pub(super) struct Turn {
    pub(super) id: TurnId,
    pub(super) conversation: ConversationId,
    /// Keep the conversation after a clean end.
    pub(super) keep: bool,
    pub(super) steps: VecDeque<Step>,
    pub(super) awaiting: Awaiting,
    /// Ids of the first user line of the conversation and of the newest, for the rewind.
    pub(super) first_message: Option<String>,
    pub(super) last_message: Option<String>,
    /// Set once the turn is being interrupted.
    pub(super) interrupted: bool,
    /// Why the turn failed before its result, when the CLI refused a step.
    pub(super) refused: Option<ServeError>,
    /// Content blocks of the newest assistant message (for non-streaming answers).
    pub(super) message_id: Option<String>,
    pub(super) content: Vec<Value>,
    pub(super) demux: StreamDemux,
    /// On a process with client tools: when the model stops for them.
    pub(super) tool_watch: Option<ToolUseWatch>,
    /// Set once the client has its `tool_use` answer while the CLI's turn still runs.
    pub(super) tool_use_answered: Option<tool_turn::ToolUseAnswered>,
}

/// A conversation kept in the CLI after its turn.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) conversation: ConversationId,
    /// Its first and newest user line, for the rewind that empties it.
    pub(super) first: String,
    pub(super) last: String,
    /// The supervisor dropped it: the next turn rewinds it whatever conversation it belongs to.
    pub(super) forgotten: bool,
}

impl Turn {
    /// The turn `id` for `input`, on a process that holds `held` and runs `model`: a resumed
    /// conversation sends only its new messages; any other first empties the one held
    /// (`Step::Rewind`), switches the model if needed and replays the history. `Err` gives back
    /// what was held when `input` resumes a conversation the process does not hold (answering
    /// its new messages alone would lose the history).
    pub(super) fn plan(
        id: TurnId,
        input: TurnInput,
        held: Option<Held>,
        model: &str,
        with_tools: bool,
    ) -> Result<Turn, Option<Held>> {
        let resumes = held
            .as_ref()
            .is_some_and(|h| !h.forgotten && h.conversation == input.conversation);
        if input.resume && !resumes {
            return Err(held);
        }
        let mut steps = VecDeque::with_capacity(input.history.len() + 3);
        let (mut first_message, mut last_message) = (None, None);
        match held {
            Some(h) if input.resume => {
                first_message = Some(h.first);
                last_message = Some(h.last);
            }
            Some(h) => steps.push_back(Step::Rewind {
                first: h.first,
                last: h.last,
            }),
            None => {}
        }
        if input.model != model {
            steps.push_back(Step::SetModel(input.model));
        }
        steps.extend(input.history.into_iter().map(|m| match m.role {
            Role::User => Step::ReplayUser(m.content),
            Role::Assistant => Step::ReplayAssistant(m.content),
        }));
        steps.push_back(Step::Prompt(input.prompt));
        Ok(Turn {
            id,
            conversation: input.conversation,
            keep: input.keep,
            steps,
            awaiting: Awaiting::ReplayResult,
            first_message,
            last_message,
            interrupted: false,
            refused: None,
            message_id: None,
            content: Vec::new(),
            demux: StreamDemux::default(),
            tool_watch: with_tools.then(ToolUseWatch::default),
            tool_use_answered: None,
        })
    }
}
