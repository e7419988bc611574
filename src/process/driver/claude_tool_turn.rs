//! The Claude Code driver's side of client tools within a turn: taking the model's `tools/call`s,
//! ending the client's turn when the model waits on them, and what then becomes of the CLI's
//! turn: parked with the calls unanswered until the follow-up carries their results (when the
//! supervisor asked to keep the conversation), else interrupted and reset.

use std::collections::HashMap;

use serde_json::Value;

use super::mcp::{self, PendingCall, ToolUseWatch};
use super::wire::{self, StreamDemux};
use super::{ClaudeDriver, DriverEvent, Outbox, Phase, TurnInput};
use crate::process::messages::{ConversationId, TurnId};
use crate::protocol::TurnEvent;

/// The client has its `tool_use` answer; the CLI's turn still waits on the model's calls.
#[derive(Debug)]
pub(super) struct ToolUseAnswered {
    /// The unanswered `tools/call`s, one per `tool_use` block the client got: what the
    /// follow-up's `tool_result`s answer.
    pub(super) calls: Vec<PendingCall>,
    pub(super) hold: Hold,
}

/// What becomes of a CLI turn whose client has its `tool_use` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// Not kept: interrupted, then reset and released as after any turn.
    Interrupting,
    /// Kept (reported `Kept`): the calls wait for the follow-up's results.
    Parked,
    /// Was parked, then forgotten: interrupted, then reset with no turn to release; a turn
    /// given meanwhile waits in `queued`.
    Forgotten,
}

impl ClaudeDriver {
    /// A `tools/call` from the CLI: the running turn's model called a client tool. With no turn
    /// to take it (it should not happen), it is refused so the CLI never waits on it.
    pub(super) fn on_tool_call(&mut self, call: PendingCall, out: &mut Outbox) {
        match &mut self.phase {
            Phase::Busy(turn) if turn.tool_use_answered.is_none() => {
                if let Some(watch) = &mut turn.tool_watch {
                    watch.on_call(call);
                    return self.check_tool_stop(out);
                }
                out.write(&mcp::call_error(
                    &call,
                    "no request is waiting for this tool call",
                ));
            }
            _ => out.write(&mcp::call_error(
                &call,
                "no request is waiting for this tool call",
            )),
        }
    }

    /// Ends the client's turn once the model waits on client tools: the `tool_use` answer goes
    /// out, and the CLI's turn, still waiting on the calls, is left to
    /// [`Self::after_tool_use_answer`].
    pub(super) fn check_tool_stop(&mut self, out: &mut Outbox) {
        let Phase::Busy(turn) = &mut self.phase else {
            return;
        };
        let Some(watch) = &mut turn.tool_watch else {
            return;
        };
        if turn.tool_use_answered.is_some() || turn.interrupted {
            return;
        }
        let Some(outcome) = watch.stopped_for_tools() else {
            return;
        };
        out.turn(turn.id, TurnEvent::Done(outcome));
        turn.tool_use_answered = Some(ToolUseAnswered {
            calls: watch.take_calls(),
            hold: Hold::Interrupting,
        });
        self.after_tool_use_answer(out);
    }

    /// What becomes of the CLI's turn once the client has its `tool_use` answer. Kept (the
    /// supervisor asked): the calls stay unanswered and the turn is parked (`Kept`) until the
    /// follow-up brings their results ([`Self::resume_tool_turn`]). Otherwise `interrupt` (the
    /// CLI cancels the pending calls and writes its `result` at once), then the conversation is
    /// reset as after any turn, and a follow-up carrying the `tool_result`s replays the whole
    /// history into a clean process.
    fn after_tool_use_answer(&mut self, out: &mut Outbox) {
        let Phase::Busy(turn) = &mut self.phase else {
            return;
        };
        let Some(answered) = &mut turn.tool_use_answered else {
            return;
        };
        if turn.keep {
            answered.hold = Hold::Parked;
            return out.event(DriverEvent::Kept { turn: turn.id });
        }
        turn.interrupted = true;
        self.control(wire::interrupt_request(), out);
    }

    /// How the CLI's turn in flight is held, when its client already has a `tool_use` answer.
    pub(super) fn tool_hold(&self) -> Option<(ConversationId, Hold)> {
        match &self.phase {
            Phase::Busy(turn) => turn
                .tool_use_answered
                .as_ref()
                .map(|a| (turn.conversation, a.hold)),
            _ => None,
        }
    }

    /// Drops the parked tool turn of `conversation`: the calls are cancelled by an interrupt,
    /// and the result that follows resets the conversation.
    pub(super) fn forget_tool_turn(&mut self, conversation: ConversationId, out: &mut Outbox) {
        let Phase::Busy(turn) = &mut self.phase else {
            return;
        };
        match &mut turn.tool_use_answered {
            Some(a) if a.hold == Hold::Parked && turn.conversation == conversation => {
                a.hold = Hold::Forgotten;
                turn.interrupted = true;
                self.control(wire::interrupt_request(), out);
            }
            _ => {}
        }
    }

    /// `turn` continues the parked tool turn: its prompt's `tool_result`s answer the pending
    /// calls, and the model's continuation streams as `turn`.
    pub(super) fn resume_tool_turn(&mut self, id: TurnId, input: TurnInput, out: &mut Outbox) {
        let Phase::Busy(turn) = &mut self.phase else {
            return;
        };
        let Some(answered) = turn.tool_use_answered.take() else {
            return;
        };
        if !input.history.is_empty() {
            log::warn!("messages beside the tool results of a parked turn are not delivered");
        }
        let results: HashMap<&str, &Value> = input
            .prompt
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| Some((b.get("tool_use_id")?.as_str()?, b)))
            .collect();
        for call in &answered.calls {
            match results.get(call.tool_use_id.as_str()) {
                Some(block) => out.write(&mcp::call_result(call, block)),
                None => out.write(&mcp::call_error(call, "the client sent no result")),
            }
        }
        turn.id = id;
        turn.keep = input.keep;
        turn.message_id = None;
        turn.content.clear();
        turn.demux = StreamDemux::default();
        turn.tool_watch = Some(ToolUseWatch::default());
    }
}
