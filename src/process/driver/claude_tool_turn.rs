//! The Claude Code driver's side of client tools within a turn: taking the model's `tools/call`s,
//! ending the client's turn when the model waits on them, and what then becomes of the CLI's turn.

use super::mcp::{self, PendingCall};
use super::wire;
use super::{ClaudeDriver, Outbox, Phase};
use crate::protocol::TurnEvent;

/// The client has its `tool_use` answer; the CLI's turn still waits on the model's calls.
#[derive(Debug)]
pub(super) struct ToolUseAnswered {
    /// The unanswered `tools/call`s, one per `tool_use` block the client got: what a parked
    /// turn would answer with the client's `tool_result`s.
    // Read only by the tests until a parked turn answers them.
    #[allow(dead_code)]
    pub(super) calls: Vec<PendingCall>,
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
        });
        self.after_tool_use_answer(out);
    }

    /// What becomes of the CLI's turn once the client has its `tool_use` answer: for now the
    /// turn ends here — `interrupt` (the CLI cancels the pending calls and writes its `result`
    /// at once), then the conversation is reset as after any turn, and a follow-up carrying the
    /// `tool_result`s replays the whole history into a clean process. Holding the calls instead
    /// (a parked turn, answered by the follow-up) replaces this step.
    fn after_tool_use_answer(&mut self, out: &mut Outbox) {
        if let Phase::Busy(turn) = &mut self.phase {
            turn.interrupted = true;
            self.control(wire::interrupt_request(), out);
        }
    }
}
