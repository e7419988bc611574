//! One live process as the supervisor's book sees it: its lifecycle (the process's word), the
//! turns it runs in its conversation slots (the book's), and the state name both make for the
//! admin views.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::parking::{Lookup, Parked};
use crate::config::Backend;
use crate::process::{ConversationId, Lifecycle, TurnId};
use crate::protocol::{PoolKey, RequestMeta};

/// What the admin views call a process's state: its lifecycle (reported by the process) and, once
/// ready, its occupancy (the turns the supervisor gave it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    Starting,
    /// Ready with no turn running.
    Idle,
    /// Running at least one turn.
    Busy,
    /// Its turns are answered; a conversation slot is being reset.
    Resetting,
    Draining,
    Exited,
}

/// A turn the supervisor gave a process: one of its conversation slots.
#[derive(Debug)]
pub struct Occupant {
    pub request_id: String,
    /// The request's metadata, for the admin views.
    pub meta: Arc<RequestMeta>,
    /// When it was dispatched.
    pub since: Instant,
    /// When its client got the answer and the slot began to reset (`TurnAnswered`).
    pub answered: Option<Instant>,
    /// The conversation it runs in, and the turns that conversation had before and when it
    /// began (for a resumed one, on an earlier request).
    pub conversation: ConversationId,
    pub earlier_turns: u32,
    pub born: Instant,
    /// The conversation as sent, when it may be parked after the turn.
    pub lookup: Option<Lookup>,
}

/// One live process as the supervisor sees it.
#[derive(Debug)]
pub struct Slot {
    pub backend: Backend,
    /// The pool it is bound to; `None` for a spare not bound to a system prompt yet.
    pub pool: Option<PoolKey>,
    /// Written only from the process's own reports (and `Starting` while a spare is bound).
    pub lifecycle: Lifecycle,
    /// Conversations it can run at once (its CLI driver's capacity).
    pub capacity: usize,
    /// The turns it runs or resets, by turn id. Written only by the book.
    pub occupants: BTreeMap<TurnId, Occupant>,
    /// Conversations it holds between turns, oldest first. A conversation slot holds a parked
    /// conversation only while no turn needs it: it counts as free.
    pub parked: Vec<Parked>,
    pub pid: u32,
    pub started: Instant,
    pub turns: u32,
    pub last_used: Instant,
    /// Told to retire: never given work again, counted until it exits.
    pub retiring: bool,
    pub resets: u32,
    pub last_error: Option<String>,
}

impl Slot {
    pub(super) fn new(
        backend: Backend,
        pool: Option<PoolKey>,
        capacity: usize,
        now: Instant,
    ) -> Self {
        Self {
            backend,
            pool,
            lifecycle: Lifecycle::Starting,
            capacity,
            occupants: BTreeMap::new(),
            parked: Vec::new(),
            pid: 0,
            started: now,
            turns: 0,
            last_used: now,
            retiring: false,
            resets: 0,
            last_error: None,
        }
    }

    /// Will serve (or is serving) requests of its pool.
    pub(super) fn active(&self) -> bool {
        !self.retiring && matches!(self.lifecycle, Lifecycle::Starting | Lifecycle::Ready)
    }

    /// Ready with a conversation slot to spare.
    pub(super) fn free(&self) -> bool {
        self.active() && self.lifecycle == Lifecycle::Ready && self.occupants.len() < self.capacity
    }

    /// Free, and room for a new conversation without forgetting a parked one.
    pub(super) fn roomy(&self) -> bool {
        self.free() && self.occupants.len() + self.parked.len() < self.capacity
    }

    /// Ready and running nothing.
    pub(super) fn idle(&self) -> bool {
        self.lifecycle == Lifecycle::Ready && self.occupants.is_empty()
    }

    /// Turns running (not yet answered).
    pub fn running(&self) -> impl Iterator<Item = (&TurnId, &Occupant)> {
        self.occupants.iter().filter(|(_, o)| o.answered.is_none())
    }

    /// When its newest reset began, while one runs.
    pub(super) fn resetting_since(&self) -> Option<Instant> {
        self.occupants.values().filter_map(|o| o.answered).max()
    }

    pub fn state(&self) -> StateName {
        match self.lifecycle {
            Lifecycle::Starting => StateName::Starting,
            Lifecycle::Draining => StateName::Draining,
            Lifecycle::Exited => StateName::Exited,
            Lifecycle::Ready if self.running().next().is_some() => StateName::Busy,
            Lifecycle::Ready if !self.occupants.is_empty() => StateName::Resetting,
            Lifecycle::Ready => StateName::Idle,
        }
    }
}
