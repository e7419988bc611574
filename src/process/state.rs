//! The lifecycle of one CLI process, as an enum rather than flags.

use std::collections::VecDeque;
use std::time::Instant;

use actix::SpawnHandle;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::messages::TurnReport;
use crate::error::ServeError;
use crate::protocol::TurnEvent;

/// Where a process is in its life. Transitions:
/// `Spawned → Initializing → Idle ⇄ Busy → Resetting → Idle …`; a spare goes
/// `Spawned → Probing → Unbound → Initializing → …`; from anywhere `→ Draining → Exited`.
pub enum ProcessState {
    /// Started, nothing sent yet.
    Spawned,
    /// A spare: `get_settings` sent as the readiness probe (it does not bind a system prompt).
    Probing {
        control_id: String,
    },
    /// A spare that answered its probe: ready, waiting to be bound to a pool.
    Unbound,
    /// `initialize` sent with the system prompt; waiting for its response.
    Initializing {
        control_id: String,
    },
    Idle,
    Busy(Box<ActiveTurn>),
    /// `rewind_conversation` sent after a turn; `report` waits for the reset's outcome.
    Resetting {
        control_id: String,
        report: Box<TurnReport>,
    },
    /// Ending: stdin closed or the child killed; waiting for stdout to close.
    Draining,
    Exited,
}

/// The state's name, which is all the supervisor and the admin API need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    Starting,
    Idle,
    Busy,
    Resetting,
    Draining,
    Exited,
}

impl ProcessState {
    pub fn name(&self) -> StateName {
        match self {
            Self::Spawned | Self::Probing { .. } | Self::Initializing { .. } => StateName::Starting,
            Self::Idle | Self::Unbound => StateName::Idle,
            Self::Busy(_) => StateName::Busy,
            Self::Resetting { .. } => StateName::Resetting,
            Self::Draining => StateName::Draining,
            Self::Exited => StateName::Exited,
        }
    }
}

/// One step of feeding a request into the CLI (history replay, then the prompt).
#[derive(Debug)]
pub enum Step {
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
pub enum Awaiting {
    Control(String),
    ReplayResult,
    FinalResult,
}

/// A turn in flight.
pub struct ActiveTurn {
    pub request_id: String,
    /// The handler's end of the turn; a failed send means the client is gone.
    pub events: mpsc::UnboundedSender<TurnEvent>,
    pub steps: VecDeque<Step>,
    pub awaiting: Awaiting,
    /// Ids of the first and newest user line of this request, for the rewind.
    pub first_message: Option<String>,
    pub last_message: Option<String>,
    /// Set once the turn is being interrupted: the error the client gets.
    pub interrupted: Option<ServeError>,
    /// Content blocks of the newest assistant message (for non-streaming answers).
    pub message_id: Option<String>,
    pub content: Vec<Value>,
    /// Turns the CLI's streaming events into the turn's typed events.
    pub demux: super::cli::StreamDemux,
    /// When this process took the turn.
    pub started: Instant,
    /// When the request was submitted (queue wait counts towards latency and first token).
    pub submitted: Instant,
    /// When the first text delta was forwarded.
    pub first_token: Option<Instant>,
    /// The request-timeout timer and the client-gone watcher; cancelled when the turn ends.
    pub timers: Vec<SpawnHandle>,
}
