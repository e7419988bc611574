//! The CLI protocols, written sans-IO: a [`Driver`] owns no pipe and no timer. The process actor
//! feeds it "bind", "begin turn", "interrupt turn" and each stdout line, and carries out what it
//! hands back in an [`Outbox`]: small files to write or remove (for a CLI that reads some of its
//! input from files), lines to write to the CLI's stdin, and [`DriverEvent`]s — the process
//! became ready, a turn produced an event, a turn's conversation slot is free again, the CLI broke
//! protocol. So every protocol case is a unit test made of plain lines.
//!
//! - [`claude`]: Claude Code's stream-json protocol (`claude -p --input-format stream-json`), one
//!   conversation per process, reset with `rewind_conversation` after each turn.
//! - [`codex`]: the Codex CLI's app-server protocol (JSON-RPC), a thread per conversation, many
//!   conversations per process.
//! - [`gemini`]: the Gemini CLI's Agent Client Protocol (`gemini --acp`), one ACP session per
//!   conversation, many conversations per process.
//! - [`jsonrpc`]: request/response correlation for the JSON-RPC CLIs (Codex, Gemini).

pub mod claude;
pub mod claude_mcp;
pub mod claude_wire;
pub mod codex;
mod codex_conversation;
mod codex_lines;
mod codex_tools;
mod codex_wire;
pub mod gemini;
mod gemini_conversation;
mod gemini_wire;
pub mod jsonrpc;
#[cfg(test)]
mod test_lines;

use std::path::PathBuf;

use serde_json::Value;

use super::messages::{ConversationId, TurnId};
use crate::protocol::tools::ClientTool;
use crate::protocol::{ChatMessage, TurnEvent};

/// What one turn asks of a CLI.
#[derive(Debug, Clone)]
pub struct TurnInput {
    /// The conversation's system prompt ("" = none). Drivers whose CLI binds it per process
    /// (Claude Code) have it from `bind` already.
    pub system_prompt: String,
    /// The schema a structured answer must satisfy (Claude Code has it from `bind`).
    pub output_schema: Option<Value>,
    /// The model the CLI runs (already mapped from the client's name).
    pub model: String,
    /// Prior turns, replayed before `prompt` (may be empty).
    pub history: Vec<ChatMessage>,
    /// The content of the final user message: the one the model answers.
    pub prompt: Value,
    /// The conversation the turn belongs to.
    pub conversation: ConversationId,
    /// The driver holds `conversation` already (kept after its previous turn): `history` is
    /// only what is new since, and nothing is set up again.
    pub resume: bool,
    /// After a clean end, keep the conversation (report `Kept`) instead of resetting it.
    pub keep: bool,
    /// The client's tools, for a CLI that takes them per conversation (Codex: the thread's
    /// dynamic tools); Claude Code has them from `bind`. Empty: none.
    pub tools: Vec<ClientTool>,
}

/// What a driver tells the process actor.
#[derive(Debug)]
pub enum DriverEvent {
    /// A spare answered its readiness probe (which binds nothing).
    Probed,
    /// Bound: the process takes turns.
    Ready,
    /// The CLI refused to start (probe or bind failed): the process is of no use.
    StartFailed(String),
    /// An event of `turn`. `Done` or `Failed` is its last: the client has its answer, and the
    /// turn's conversation slot is being reset until `Released`.
    Turn { turn: TurnId, event: TurnEvent },
    /// `turn`'s slot is free again; `reusable: false` means it could not be reset and the
    /// process must retire.
    Released { turn: TurnId, reusable: bool },
    /// `turn` ended cleanly and, as asked, its conversation stays in the CLI: the slot is free
    /// for the conversation's next turn (or for another once the driver was told to `forget`
    /// it).
    Kept { turn: TurnId },
    /// Kept `conversation` is gone (the CLI ended it on its own): no turn may resume it.
    Dropped { conversation: ConversationId },
    /// Call [`Driver::wake`] for `turn` after `after`: a driver that must decide on quiet (no
    /// more tool calls came) asks the actor, which owns the timers, to come back.
    WakeAfter {
        turn: TurnId,
        after: std::time::Duration,
    },
    /// The CLI broke its protocol: nothing it says can be trusted any more.
    Violation(String),
}

/// A small file the process actor writes or removes for a driver. A CLI that takes part of its
/// input from files (the Gemini CLI reads its system prompt and prior history from files) would
/// otherwise force IO into its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// Creates or replaces `path` (creating its directories) with `contents`. When it fails the
    /// actor interrupts `turn` (if given) with the error: the lines that needed the file still
    /// go out, and the driver ends the turn at its next step as after any interrupt.
    Write {
        path: PathBuf,
        contents: String,
        turn: Option<TurnId>,
    },
    /// Removes the files directly in `dir` whose names end with `suffix`: the CLI names some
    /// files itself, with a part the driver cannot know (the minute it created them). A failure
    /// is only logged; a leftover costs disk space, not correctness.
    Remove { dir: PathBuf, suffix: String },
}

/// What a driver call produced. The actor carries out the file operations first, then writes
/// the lines in order, then acts on the events in order.
#[derive(Debug, Default)]
pub struct Outbox {
    pub files: Vec<FileOp>,
    pub lines: Vec<String>,
    pub events: Vec<DriverEvent>,
}

impl Outbox {
    /// Queues one JSON line (serde_json never writes a raw newline, so it stays one line).
    pub fn write(&mut self, line: &Value) {
        self.lines.push(line.to_string());
    }

    pub fn file(&mut self, op: FileOp) {
        self.files.push(op);
    }

    pub fn event(&mut self, event: DriverEvent) {
        self.events.push(event);
    }

    pub fn turn(&mut self, turn: TurnId, event: TurnEvent) {
        self.events.push(DriverEvent::Turn { turn, event });
    }

    /// Fails `turn`, which resumes a conversation the driver does not hold (any more), and
    /// frees its slot: answering only its new messages, without the history, would be wrong.
    pub fn conversation_lost(&mut self, turn: TurnId, backend: &'static str) {
        let reason = "the process no longer holds the conversation".into();
        let error = crate::error::ServeError::BackendUnavailable { backend, reason };
        self.turn(turn, TurnEvent::Failed(error));
        self.event(DriverEvent::Released {
            turn,
            reusable: true,
        });
    }
}

/// One CLI protocol. Calls come from the process actor only, one at a time.
pub trait Driver: Send + 'static {
    /// Conversations one process runs at once.
    fn capacity(&self) -> usize;

    /// Asks a spare whether it is ready, without binding it to a system prompt. Answered with
    /// `Probed` or `StartFailed`.
    fn probe(&mut self, out: &mut Outbox);

    /// Binds the process to `system_prompt` (and a structured-output schema and client tools,
    /// for a CLI that keeps them per process). Answered with `Ready` or `StartFailed`.
    fn bind(
        &mut self,
        system_prompt: &str,
        output_schema: Option<&Value>,
        tools: &[ClientTool],
        out: &mut Outbox,
    );

    /// Starts `turn`. The process actor calls it only while the process has a free slot.
    fn begin(&mut self, turn: TurnId, input: TurnInput, out: &mut Outbox);

    /// Drops kept `conversation` (resets it, frees its thread or session). Nothing is
    /// reported: the driver finishes it before the next turn it takes needs the room.
    fn forget(&mut self, conversation: ConversationId, out: &mut Outbox);

    /// Stops `turn` as soon as the CLI allows; it still ends with a final event (whose error
    /// the actor replaces with the interrupt's reason) and a `Released`.
    fn interrupt(&mut self, turn: TurnId, out: &mut Outbox);

    /// One line the CLI wrote on stdout (without its newline).
    fn on_line(&mut self, line: &str, out: &mut Outbox);

    /// The time a `WakeAfter` of `turn` asked for has passed.
    fn wake(&mut self, _turn: TurnId, _out: &mut Outbox) {}
}
