//! Messages a process actor accepts, and the notices it sends its supervisor.

use actix::Message;

use crate::error::ServeError;
use crate::protocol::{TurnRequest, Usage};

use super::state::StateName;

/// Supervisor → process: bind the process to a system prompt with its first `initialize`
/// (the readiness probe). A process answers `Ready` (or exits) afterwards.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Bind {
    pub system_prompt: String,
}

/// Supervisor → spare: probe readiness without binding a system prompt. The process reports
/// `Idle` (unbound) when the CLI answered, or exits.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Probe;

/// Supervisor → process: run one turn. Sent only to a process the supervisor saw become idle;
/// a process that is not idle fails the turn at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunTurn(pub TurnRequest);

/// Anyone → process: stop the running turn (if any) with `reason` as the client's error.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Interrupt {
    pub reason: ServeError,
}

/// Supervisor → process: finish the running turn, then end the process (stdin closed, killed if
/// it has not exited after `grace`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire {
    pub grace: std::time::Duration,
}

/// Supervisor → process: kill the child now; the running turn fails with `ProcessExited`.
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
    /// The process entered a new state (for the admin view and pool bookkeeping).
    StateChanged(StateName),
    /// A turn ended and the process was reset. `reusable: false` means the reset failed and the
    /// process is retiring itself.
    TurnFinished {
        reusable: bool,
        report: Box<TurnReport>,
    },
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
}
