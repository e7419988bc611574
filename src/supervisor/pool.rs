//! Pool bookkeeping without actors or processes: which process serves which request, who waits,
//! what to start, bind or retire. [`Book`] takes events and returns [`Action`]s that the
//! supervisor carries out, so every policy here is unit-tested with plain values.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::dispatch::Place;
use super::fair::FairShare;
use super::parking::Lookup;
pub use super::slot::{Occupant, Slot, StateName};
use super::stats::PoolStats;
use crate::config::{Backend, PoolSettings};
use crate::error::ServeError;
use crate::process::{ConversationId, Lifecycle, Seat, TurnId};
use crate::protocol::{PoolKey, TurnRequest};

/// A request waiting for a process of its pool.
#[derive(Debug)]
pub struct Waiting {
    pub ticket: u64,
    pub enqueued: Instant,
    pub request: TurnRequest,
    /// A follow-up waiting for the turn it continues to be reported parked: passed over until
    /// that turn has ended, or until the deadline.
    pub held: Option<(Instant, Lookup)>,
}

/// Per-pool queue, statistics and the operators' settings.
#[derive(Debug, Default)]
pub struct PoolQueue {
    /// Every waiting request in arrival order; which one a free process takes is
    /// `FairShare`'s choice.
    pub queue: VecDeque<Waiting>,
    pub fair: FairShare,
    pub stats: PoolStats,
    /// Drained by an operator: finishes in-flight turns, starts nothing new.
    pub draining: bool,
    /// Runtime overrides of `pool.max_processes` / `min_idle` (resize).
    pub max_processes: Option<usize>,
    pub min_idle: Option<usize>,
}

/// What the supervisor must do after an event.
#[derive(Debug)]
pub enum Action {
    /// Give `request` to process `process` as `turn` (already counted in its occupants), after it
    /// `waited` in the queue.
    Dispatch {
        process: u64,
        turn: TurnId,
        request: TurnRequest,
        seat: Seat,
        waited: Duration,
    },
    /// Start process `process` of `backend` (already in the book as `Starting`), bound to `pool`
    /// at once, or a spare when `pool` is `None`.
    Spawn {
        process: u64,
        backend: Backend,
        pool: Option<PoolKey>,
    },
    /// Bind spare `process` to `pool` (its system prompt).
    Bind { process: u64, pool: PoolKey },
    /// End process `process` once its current turn (if any) is over.
    Retire { process: u64 },
    /// Answer `request` with `error` (it never reaches a process).
    Fail {
        request: TurnRequest,
        error: ServeError,
    },
    /// `ticket` of `pool` entered the queue: arm its queue timeout.
    Queued { pool: PoolKey, ticket: u64 },
    /// A request of `pool` waits for a resetting process: after `after`, give the pool's waiting
    /// requests to whatever processes are free then ([`Book::assign`]).
    Recheck { pool: PoolKey, after: Duration },
    /// Stop `turn` on `process` with `reason`.
    Interrupt {
        process: u64,
        turn: TurnId,
        reason: ServeError,
    },
    /// Kill `process` now.
    Kill { process: u64 },
    /// Have `process` drop its parked `conversation` (already gone from the book).
    Forget {
        process: u64,
        conversation: ConversationId,
    },
}

pub struct Book {
    pub limits: PoolSettings,
    pub processes: BTreeMap<u64, Slot>,
    pub pools: BTreeMap<PoolKey, PoolQueue>,
    next_id: u64,
    pub(super) next_ticket: u64,
    pub(super) next_turn: TurnId,
    pub(super) next_conversation: ConversationId,
    /// Conversations one process of each backend runs at once (1 when not set).
    pub capacity: BTreeMap<Backend, usize>,
    /// Warm processes of each backend's default pool besides Claude Code's (`pool.min_idle`).
    pub backend_min_idle: BTreeMap<Backend, usize>,
    /// Consecutive processes that exited before becoming ready; pauses spares/min_idle refills.
    pub start_failures: u32,
    pub refill_paused_until: Option<Instant>,
    /// Why the newest failed start failed, for requests refused while starts are paused.
    pub last_start_error: Option<String>,
    /// Spares started (they belong to no pool's counters).
    pub spare_spawns: u64,
}

impl Book {
    pub fn new(limits: PoolSettings) -> Self {
        let mut pools = BTreeMap::new();
        pools.insert(PoolKey::default_pool(), PoolQueue::default());
        Self {
            limits,
            processes: BTreeMap::new(),
            pools,
            next_id: 0,
            next_ticket: 0,
            next_turn: 0,
            next_conversation: 0,
            capacity: BTreeMap::new(),
            backend_min_idle: BTreeMap::new(),
            start_failures: 0,
            refill_paused_until: None,
            last_start_error: None,
            spare_spawns: 0,
        }
    }

    /// Serves `backend` too: its processes run `capacity` conversations each, and its default
    /// pool keeps `min_idle` of them warm.
    pub fn serve(&mut self, backend: Backend, capacity: usize, min_idle: usize) {
        self.capacity.insert(backend, capacity.max(1));
        self.backend_min_idle.insert(backend, min_idle);
        self.pools.entry(PoolKey::default_of(backend)).or_default();
    }

    pub(super) fn retry_after(&self) -> Duration {
        Duration::from_secs(self.limits.queue_timeout_secs.clamp(1, 10))
    }

    /// A new request: dispatched to an idle process, queued, or refused when the queue is full or
    /// its client holds as much as its limits allow.
    pub fn submit(&mut self, request: TurnRequest, now: Instant) -> Vec<Action> {
        let key = request.pool.clone();
        if self.pools.get(&key).is_some_and(|p| p.draining) {
            let pool = self.pools.entry(key.clone()).or_default();
            pool.stats.counters.refused += 1;
            let error = ServeError::PoolDraining {
                pool: key.name(),
                retry_after: self.retry_after(),
            };
            return vec![Action::Fail { request, error }];
        }
        let client = request.meta.client.clone();
        let held = self.holding(&client.id);
        let may_run = client.max_concurrent.is_none_or(|cap| held.running < cap);
        let may_wait = client.max_queued.is_none_or(|cap| held.queued < cap);
        if may_run {
            let lookup = self.lookup(&request);
            let place = self.place(&key, lookup.as_ref());
            if let Some((id, place @ Place::Resume(_))) = place {
                return vec![self.dispatch(id, place, lookup, request, now, Duration::ZERO)];
            }
            let parking = lookup.as_ref().and_then(|l| self.parking_wait(&key, l));
            if let (Some(wait), Some(held), true) = (parking, &lookup, may_wait) {
                let held = held.clone();
                return self.enqueue_held(request, now, wait, held);
            }
            if let Some(wait) = self.reuse_wait(&key, now).filter(|_| may_wait) {
                return self.enqueue(request, now, Some(wait));
            }
            if let Some((id, place)) = place {
                return vec![self.dispatch(id, place, lookup, request, now, Duration::ZERO)];
            }
        }
        if !may_wait {
            let error = self.over_limit(&key, &client, held);
            return vec![Action::Fail { request, error }];
        }
        self.queue_or_refuse(request, now)
    }

    /// `request` must wait: queued, unless its backend cannot start or the queue is full.
    fn queue_or_refuse(&mut self, request: TurnRequest, now: Instant) -> Vec<Action> {
        let key = request.pool.clone();
        let processes = self.live_in(&key);
        if processes == 0 && self.refill_paused_until.is_some_and(|t| now < t) {
            let reason = self.last_start_error.clone().unwrap_or_default();
            let backend = key.backend.name();
            self.pools.entry(key).or_default().stats.counters.failed += 1;
            let error = ServeError::BackendUnavailable { backend, reason };
            return vec![Action::Fail { request, error }];
        }
        // While the pool's only capacity is still starting, a request waits for it (within the
        // queue timeout) whatever `max_queue` says: refusing it would punish the first clients
        // of a fresh instance for its cold start.
        let warming = self.count(|s| {
            s.pool.as_ref() == Some(&key) && s.active() && s.lifecycle == Lifecycle::Ready
        }) == 0;
        let max_queue = self.limits.max_queue;
        let pool = self.pools.entry(key.clone()).or_default();
        pool.queue.retain(|w| !w.request.events.is_closed());
        let mut actions = Vec::new();
        if pool.queue.len() >= max_queue && !warming {
            match self.push_out(&key, &request.meta.client.id) {
                Some(pushed) => actions.push(pushed),
                None => {
                    let pool = self.pools.entry(key.clone()).or_default();
                    pool.stats.counters.refused += 1;
                    let error = ServeError::PoolSaturated {
                        pool: key.name(),
                        processes,
                        queued: pool.queue.len(),
                        retry_after: self.retry_after(),
                    };
                    return vec![Action::Fail { request, error }];
                }
            }
        }
        actions.extend(self.enqueue(request, now, None));
        actions
    }

    /// The queue timeout of `ticket` expired: refuse it if it is still waiting.
    pub fn expire(&mut self, key: &PoolKey, ticket: u64, now: Instant) -> Option<Action> {
        let retry_after = self.retry_after();
        let pool = self.pools.get_mut(key)?;
        let pos = pool.queue.iter().position(|w| w.ticket == ticket)?;
        let waiting = pool.queue.remove(pos)?;
        pool.stats.counters.refused += 1;
        Some(Action::Fail {
            error: ServeError::QueueTimedOut {
                pool: key.name(),
                waited: now.duration_since(waiting.enqueued),
                retry_after,
            },
            request: waiting.request,
        })
    }

    /// A process was started by the supervisor (its pid is now known).
    pub fn started(&mut self, id: u64, pid: u32) {
        if let Some(slot) = self.processes.get_mut(&id) {
            slot.pid = pid;
        }
    }

    /// A process reported a new stage of its life; one that became ready takes waiting requests.
    pub fn state_changed(&mut self, id: u64, lifecycle: Lifecycle, now: Instant) -> Vec<Action> {
        let Some(slot) = self.processes.get_mut(&id) else {
            return Vec::new();
        };
        let was = std::mem::replace(&mut slot.lifecycle, lifecycle);
        if lifecycle != Lifecycle::Ready || was == Lifecycle::Ready {
            return Vec::new();
        }
        self.start_failures = 0;
        slot.last_used = now;
        // The process is now its pool's most recently used free one: the first to be assigned.
        let mut actions = match slot.pool.clone() {
            Some(key) => self.assign(&key, now),
            None => Vec::new(),
        };
        actions.extend(self.rebalance(now));
        actions
    }

    /// Shutdown: nothing is started or refilled any more (configured or resized `min_idle`,
    /// spares), so exits empty the book; the waiting requests are returned to be refused.
    pub fn shut_down(&mut self) -> Vec<TurnRequest> {
        self.limits.min_idle = 0;
        self.limits.spare_processes = 0;
        self.backend_min_idle.clear();
        for pool in self.pools.values_mut() {
            pool.draining = true;
        }
        self.drain_queues()
    }

    /// Removes every waiting request (shutdown).
    pub fn drain_queues(&mut self) -> Vec<TurnRequest> {
        self.pools
            .values_mut()
            .flat_map(|p| p.queue.drain(..).map(|w| w.request))
            .collect()
    }

    /// Books a new process of `backend` for `pool` (a spare when `None`).
    pub(super) fn add(&mut self, backend: Backend, pool: Option<PoolKey>, now: Instant) -> Action {
        match pool
            .as_ref()
            .map(|k| self.pools.entry(k.clone()).or_default())
        {
            Some(p) => p.stats.counters.spawns += 1,
            None => self.spare_spawns += 1,
        }
        self.next_id += 1;
        let id = self.next_id;
        let capacity = self.capacity_of(backend);
        let slot = Slot::new(backend, pool.clone(), capacity, now);
        self.processes.insert(id, slot);
        Action::Spawn {
            process: id,
            backend,
            pool,
        }
    }

    /// Conversations one process of `backend` runs at once.
    pub fn capacity_of(&self, backend: Backend) -> usize {
        self.capacity.get(&backend).copied().unwrap_or(1).max(1)
    }

    /// Why the instance should not take traffic yet: pools whose `min_idle` processes are not
    /// all ready. Empty = ready.
    pub fn unready_pools(&self) -> Vec<String> {
        self.pools
            .keys()
            .filter_map(|key| {
                let want = self.min_idle_for(key);
                let warm = self.count(|s| {
                    s.pool.as_ref() == Some(key) && s.active() && s.lifecycle == Lifecycle::Ready
                });
                (warm < want)
                    .then(|| format!("pool {}: {warm} of {want} processes warm", key.name()))
            })
            .collect()
    }

    /// The pool's `max_processes` (a resize overrides the configured one).
    pub fn max_for(&self, key: &PoolKey) -> usize {
        let over = self.pools.get(key).and_then(|p| p.max_processes);
        over.unwrap_or(self.limits.max_processes)
    }

    /// Processes kept ready in the pool: `pool.min_idle` for the default pool, none for
    /// others, unless a resize said otherwise. A draining pool keeps none.
    pub fn min_idle_for(&self, key: &PoolKey) -> usize {
        match self.pools.get(key) {
            Some(p) if p.draining => 0,
            Some(PoolQueue {
                min_idle: Some(n), ..
            }) => *n,
            _ if key.is_default() && key.backend == Backend::Claude => self.limits.min_idle,
            _ if key.is_default() => self
                .backend_min_idle
                .get(&key.backend)
                .copied()
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Processes of `key` that serve or will serve it.
    pub fn live_in(&self, key: &PoolKey) -> usize {
        self.count(|s| s.pool.as_ref() == Some(key) && s.active())
    }

    pub(super) fn count(&self, pred: impl Fn(&Slot) -> bool) -> usize {
        self.processes.values().filter(|s| pred(s)).count()
    }

    pub(super) fn find(&self, pred: impl Fn(&Slot) -> bool) -> Option<u64> {
        self.processes
            .iter()
            .find(|(_, s)| pred(s))
            .map(|(id, _)| *id)
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
pub(crate) mod tests;
