//! Messages a process actor accepts, and the notices it sends its supervisor.

use actix::Message;

use crate::error::ServeError;
use crate::protocol::{TurnRequest, Usage};

/// A turn's id, given by the supervisor when it dispatches the turn; unique for the server's
/// life. Interrupts, cancels and reports name the turn they are about.
pub type TurnId = u64;

/// A conversation's id, given by the supervisor. A process that was asked to keep a
/// conversation after its turn holds it under this id until a later turn resumes it or the
/// supervisor has it forgotten.
pub type ConversationId = u64;

/// Where in its process a turn runs: which conversation, and what becomes of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seat {
    pub conversation: ConversationId,
    /// The process holds this conversation already (kept after its previous turn): the
    /// turn's history is only what the client added since.
    pub resume: bool,
    /// Keep the conversation after a clean end of the turn instead of resetting it.
    pub keep: bool,
    /// Kept conversations the process drops first, to make room for this one.
    pub forget: Vec<ConversationId>,
}

/// Where a process is in its life, as the process reports it. Which turns it runs (its
/// occupancy) is not part of this: that is the supervisor's, which dispatched them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Started; not ready for turns yet (probing, binding).
    Starting,
    /// Takes turns (a spare: takes a bind).
    Ready,
    /// Ending: takes nothing new; running turns may still finish.
    Draining,
    Exited,
}

/// Supervisor → process: bind the process to a system prompt with its first `initialize`
/// (the readiness probe). A process answers `Ready` (or exits) afterwards.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Bind {
    pub system_prompt: String,
    /// A structured-output schema, for a CLI that binds it per process (Claude Code).
    pub output_schema: Option<serde_json::Value>,
    /// The client tools, for a CLI that binds them per process (Claude Code).
    pub tools: Vec<crate::protocol::tools::ClientTool>,
}

/// Supervisor → spare: probe readiness without binding a system prompt. The process reports
/// `Idle` (unbound) when the CLI answered, or exits.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Probe;

/// Supervisor → process: run one turn. Sent only when the supervisor counts a free conversation
/// slot on a ready process; a process that has none fails the turn at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunTurn {
    pub turn: TurnId,
    pub request: TurnRequest,
    pub seat: Seat,
}

/// Supervisor → process: stop `turn` (if it still runs) with `reason` as the client's error.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Interrupt {
    pub turn: TurnId,
    pub reason: ServeError,
}

/// Supervisor → process: finish the running turn, then end the process (stdin closed, killed if
/// it has not exited after `grace`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire {
    pub grace: std::time::Duration,
}

/// Supervisor → process: drop kept `conversation` (its client's tool results never came, or the
/// supervisor no longer wants it). Nothing is answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget {
    pub conversation: ConversationId,
}

/// Supervisor → process: kill the child now; its running turns fail with `ProcessExited`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kill;

/// Process → supervisor, through a `Recipient`, so this module never imports the supervisor.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ProcessNotice {
    pub id: u64,
    pub event: ProcessEvent,
}

#[derive(Debug)]
pub enum ProcessEvent {
    /// The process entered a new stage of its life.
    StateChanged(Lifecycle),
    /// `turn`'s client has its answer (or error); the conversation slot it used is being reset.
    TurnAnswered { turn: TurnId },
    /// `turn`'s slot is free again. `reusable: false` means the reset failed and the process is
    /// retiring itself; `kept`, that the process holds the turn's conversation for a later turn
    /// (the seat asked for it and the turn ended cleanly).
    TurnFinished {
        turn: TurnId,
        reusable: bool,
        kept: bool,
        report: Box<TurnReport>,
    },
    /// The process could not take `turn` (it is retiring itself, or no longer ready): the
    /// request comes back untouched, to be placed again. The supervisor's view of the process
    /// lagged behind (its report was on the way).
    TurnRefused {
        turn: TurnId,
        request: Box<TurnRequest>,
    },
    /// The process no longer holds kept `conversation` (the CLI ended it on its own).
    ConversationDropped { conversation: ConversationId },
    /// The child is gone (or never became ready). Last notice of a process.
    Exited {
        status: String,
        was_ready: bool,
        stderr_tail: String,
    },
}

/// How a turn ended, for the supervisor's counters and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEnd {
    Ok,
    Failed,
    TimedOut,
    Cancelled,
}

/// What a process tells its supervisor about a finished turn.
#[derive(Debug, Clone)]
pub struct TurnReport {
    pub request_id: String,
    pub end: TurnEnd,
    /// From the request's submission to the turn's result (queue wait included).
    pub duration: std::time::Duration,
    /// From submission to the first streamed text, when there was one.
    pub time_to_first_token: Option<std::time::Duration>,
    /// The model the CLI ran.
    pub model: String,
    pub usage: Option<Usage>,
    pub cost_usd: f64,
    /// The client's error, when the turn failed.
    pub error: Option<String>,
    /// The answer as the client got it, when that is exactly what the model said (not cut at a
    /// stop sequence): what the client will resend as the conversation's next assistant message.
    pub answer: Option<Vec<crate::protocol::Block>>,
}
