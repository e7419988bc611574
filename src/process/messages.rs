//! Messages a process actor accepts, and the notices it sends its supervisor.

use actix::Message;

use crate::error::ServeError;
use crate::protocol::TurnRequest;

use super::state::StateName;

/// Supervisor → process: bind the process to a system prompt with its first `initialize`
/// (the readiness probe). A process answers `Ready` (or exits) afterwards.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Bind {
    pub system_prompt: String,
}

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
    TurnFinished { reusable: bool, ok: bool },
    /// The child is gone (or never became ready). Last notice of a process.
    Exited {
        status: String,
        was_ready: bool,
        stderr_tail: String,
    },
}
