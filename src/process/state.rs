//! The process actor's state: its stage of life as an enum, and the turns it runs.

use std::time::Instant;

use actix::SpawnHandle;
use tokio::sync::mpsc;

use super::messages::{Lifecycle, TurnReport};
use crate::error::ServeError;
use crate::protocol::TurnEvent;

/// Where a process is in its life. Transitions: `Spawned → Binding → Ready`; a spare goes
/// `Spawned → Probing → Unbound → Binding → Ready`; from anywhere `→ Draining → Exited`.
/// Which turns run is not part of it: see [`ActiveTurn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Started, nothing asked yet.
    Spawned,
    /// A spare asked whether it is ready (its driver's probe binds nothing).
    Probing,
    /// A spare that answered its probe: ready, waiting to be bound to a pool.
    Unbound,
    /// Asked to bind to a system prompt; waiting for the driver's `Ready`.
    Binding,
    /// Takes turns, as many at once as its driver's capacity.
    Ready,
    /// Ending: stdin closed or the child killed; waiting for stdout to close.
    Draining,
    Exited,
}

impl ProcessState {
    /// The stage of life the supervisor hears of.
    pub fn lifecycle(self) -> Lifecycle {
        match self {
            Self::Spawned | Self::Probing | Self::Binding => Lifecycle::Starting,
            Self::Unbound | Self::Ready => Lifecycle::Ready,
            Self::Draining => Lifecycle::Draining,
            Self::Exited => Lifecycle::Exited,
        }
    }
}

/// Where a turn is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnPhase {
    /// The CLI works on it.
    Running,
    /// Asked to stop; it is killed with the process if it has not ended by `interrupt_grace`.
    Interrupting,
    /// Its client has the final event; the slot is reset until the driver releases it.
    Answered,
}

/// A turn in flight on this process.
pub struct ActiveTurn {
    pub request_id: String,
    pub phase: TurnPhase,
    /// The handler's end of the turn; a failed send means the client is gone. Dropped once the
    /// final event is sent.
    pub events: Option<mpsc::UnboundedSender<TurnEvent>>,
    /// The request's metadata for the operators' views (bytes streamed are counted here).
    pub meta: std::sync::Arc<crate::protocol::RequestMeta>,
    /// The model the turn asked for (the CLI's, after mapping).
    pub model: String,
    /// Set when the turn is interrupted: the error the client gets, whatever the CLI says.
    pub interrupted: Option<ServeError>,
    /// When this process took the turn.
    pub started: Instant,
    /// When the request was submitted (queue wait counts towards latency and first token).
    pub submitted: Instant,
    /// When the first text delta was forwarded.
    pub first_token: Option<Instant>,
    /// The turn's stop sequences, watched in the text it streams.
    pub stop: crate::protocol::stop::StopWatcher,
    /// When the turn began and when the driver last reported an event of it: the stall timers'
    /// references, on tokio's clock (which tests can pause and advance).
    pub began: tokio::time::Instant,
    pub last_event: Option<tokio::time::Instant>,
    /// The request-timeout timer and the client-gone watcher; cancelled when the turn is
    /// answered.
    pub timers: Vec<SpawnHandle>,
    /// The outcome for the supervisor, kept from the answer until the slot is released.
    pub report: Option<Box<TurnReport>>,
}
