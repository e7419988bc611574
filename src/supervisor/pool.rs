//! Pool bookkeeping without actors or processes: which process serves which request, who waits,
//! what to start, bind or retire. [`Book`] takes events and returns [`Action`]s that the
//! supervisor carries out, so every policy here is unit-tested with plain values.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::stats::PoolStats;
use crate::config::PoolSettings;
use crate::error::ServeError;
use crate::process::{StateName, TurnReport};
use crate::protocol::{PoolKey, RequestMeta, TurnRequest};

/// One live process as the supervisor sees it.
#[derive(Debug)]
pub struct Slot {
    /// The pool it is bound to; `None` for a spare not bound to a system prompt yet.
    pub pool: Option<PoolKey>,
    pub state: StateName,
    pub pid: u32,
    pub started: Instant,
    pub turns: u32,
    pub request_id: Option<String>,
    /// The running request's metadata and start (for the admin views).
    pub running: Option<(Arc<RequestMeta>, Instant)>,
    pub last_used: Instant,
    /// When its reset after a turn began (while `state` is `Resetting`).
    pub resetting_since: Option<Instant>,
    /// Told to retire: never given work again, counted until it exits.
    pub retiring: bool,
    pub resets: u32,
    pub last_error: Option<String>,
}

impl Slot {
    fn new(pool: Option<PoolKey>, now: Instant) -> Self {
        Self {
            pool,
            state: StateName::Starting,
            pid: 0,
            started: now,
            turns: 0,
            request_id: None,
            running: None,
            last_used: now,
            resetting_since: None,
            retiring: false,
            resets: 0,
            last_error: None,
        }
    }

    /// Will serve (or is serving) requests of its pool.
    pub(super) fn active(&self) -> bool {
        !self.retiring && !matches!(self.state, StateName::Draining | StateName::Exited)
    }

    pub(super) fn free(&self) -> bool {
        self.active() && self.state == StateName::Idle
    }
}

/// A request waiting for a process of its pool.
#[derive(Debug)]
pub struct Waiting {
    pub ticket: u64,
    pub enqueued: Instant,
    pub request: TurnRequest,
}

/// Per-pool queue, statistics and the operators' settings.
#[derive(Debug, Default)]
pub struct PoolQueue {
    pub queue: VecDeque<Waiting>,
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
    /// Give `request` to process `process` (already marked busy).
    Dispatch { process: u64, request: TurnRequest },
    /// Start process `process` (already in the book as `Starting`), bound to `pool` at once, or a
    /// spare when `pool` is `None`.
    Spawn { process: u64, pool: Option<PoolKey> },
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
    /// Stop the running turn of `process` with `reason`.
    Interrupt { process: u64, reason: ServeError },
    /// Kill `process` now.
    Kill { process: u64 },
}

pub struct Book {
    pub limits: PoolSettings,
    pub processes: BTreeMap<u64, Slot>,
    pub pools: BTreeMap<PoolKey, PoolQueue>,
    next_id: u64,
    pub(super) next_ticket: u64,
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
            start_failures: 0,
            refill_paused_until: None,
            last_start_error: None,
            spare_spawns: 0,
        }
    }

    fn retry_after(&self) -> Duration {
        Duration::from_secs(self.limits.queue_timeout_secs.clamp(1, 10))
    }

    /// A new request: dispatched to an idle process, queued, or refused when the queue is full.
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
        if let Some(wait) = self.reuse_wait(&key, now) {
            return self.enqueue(request, now, Some(wait));
        }
        if let Some(id) = self.free_process(&key) {
            self.mark_busy(id, &request);
            return vec![Action::Dispatch {
                process: id,
                request,
            }];
        }
        let processes = self.live_in(&key);
        if processes == 0 && self.refill_paused_until.is_some_and(|t| now < t) {
            let reason = self.last_start_error.clone().unwrap_or_default();
            self.pools.entry(key).or_default().stats.counters.failed += 1;
            let error = ServeError::BackendUnavailable {
                backend: "claude",
                reason,
            };
            return vec![Action::Fail { request, error }];
        }
        let max_queue = self.limits.max_queue;
        let pool = self.pools.entry(key.clone()).or_default();
        pool.queue.retain(|w| !w.request.events.is_closed());
        if pool.queue.len() >= max_queue {
            pool.stats.counters.refused += 1;
            let error = ServeError::PoolSaturated {
                pool: key.name(),
                processes,
                queued: pool.queue.len(),
                retry_after: self.retry_after(),
            };
            return vec![Action::Fail { request, error }];
        }
        self.enqueue(request, now, None)
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

    /// A process changed state; when one becomes idle, waiting requests of its pool are assigned.
    pub fn state_changed(&mut self, id: u64, state: StateName, now: Instant) -> Vec<Action> {
        let Some(slot) = self.processes.get_mut(&id) else {
            return Vec::new();
        };
        slot.state = state;
        slot.resetting_since = (state == StateName::Resetting).then_some(now);
        if state != StateName::Idle {
            return Vec::new();
        }
        self.start_failures = 0;
        slot.request_id = None;
        slot.running = None;
        slot.last_used = now;
        // The process is now its pool's most recently used free one: the first to be assigned.
        let mut actions = match slot.pool.clone() {
            Some(key) => self.assign(&key),
            None => Vec::new(),
        };
        actions.extend(self.rebalance(now));
        actions
    }

    /// A turn ended; the process is recycled once it has served `max_turns_per_process`.
    /// `reusable: false` (the reset failed) retires the process.
    pub fn turn_finished(&mut self, id: u64, report: &TurnReport, reusable: bool) -> Vec<Action> {
        let Some(slot) = self.processes.get_mut(&id) else {
            return Vec::new();
        };
        slot.turns += 1;
        if reusable {
            slot.resets += 1;
            if let Some(pool) = slot.pool.as_ref().and_then(|k| self.pools.get_mut(k)) {
                pool.stats.counters.resets += 1;
            }
        }
        let Some(slot) = self.processes.get_mut(&id) else {
            return Vec::new();
        };
        if let Some(error) = &report.error {
            slot.last_error = Some(error.clone());
        }
        let pool = slot.pool.as_ref().and_then(|k| self.pools.get_mut(k));
        if let Some(pool) = pool {
            pool.stats.record(report);
        }
        let worn_out = slot.turns >= self.limits.max_turns_per_process || !reusable;
        if worn_out && !slot.retiring {
            slot.retiring = true;
            let key = slot.pool.clone();
            self.count_recycled(id);
            let mut actions = vec![Action::Retire { process: id }];
            // A request that waited for this process takes another one.
            if let Some(key) = key {
                actions.extend(self.assign(&key));
            }
            return actions;
        }
        Vec::new()
    }

    pub(super) fn count_recycled(&mut self, id: u64) {
        let key = self.processes.get(&id).and_then(|s| s.pool.clone());
        if let Some(pool) = key.and_then(|k| self.pools.get_mut(&k)) {
            pool.stats.counters.recycled += 1;
        }
    }

    /// A process is gone. If it never became ready and its pool has nothing else on the way,
    /// the pool's waiting requests fail with `start_error` instead of waiting for nothing.
    pub fn exited(
        &mut self,
        id: u64,
        was_ready: bool,
        start_error: &str,
        now: Instant,
    ) -> Vec<Action> {
        let Some(slot) = self.processes.remove(&id) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        if let (StateName::Busy, Some(key)) = (slot.state, &slot.pool) {
            let pool = self.pools.entry(key.clone()).or_default();
            pool.stats.counters.crashed += 1;
            let request = slot.request_id.as_deref().unwrap_or_default();
            pool.stats.error(
                request,
                &format!("process {id} (pid {}) exited mid-turn", slot.pid),
            );
        }
        if !was_ready && !slot.retiring {
            self.start_failures += 1;
            let pause = Duration::from_secs(1 << self.start_failures.min(5));
            self.refill_paused_until = Some(now + pause);
            self.last_start_error = Some(start_error.to_string());
            if let Some(key) = slot.pool {
                if self.live_in(&key) == 0 {
                    let pool = self.pools.entry(key).or_default();
                    for waiting in pool.queue.drain(..) {
                        pool.stats.counters.failed += 1;
                        actions.push(Action::Fail {
                            request: waiting.request,
                            error: ServeError::BackendUnavailable {
                                backend: "claude",
                                reason: start_error.to_string(),
                            },
                        });
                    }
                }
            }
        }
        actions.extend(self.rebalance(now));
        actions
    }

    /// Shutdown: nothing is started or refilled any more (configured or resized `min_idle`,
    /// spares), so exits empty the book; the waiting requests are returned to be refused.
    pub fn shut_down(&mut self) -> Vec<TurnRequest> {
        self.limits.min_idle = 0;
        self.limits.spare_processes = 0;
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

    pub(super) fn add(&mut self, pool: Option<PoolKey>, now: Instant) -> Action {
        match pool
            .as_ref()
            .map(|k| self.pools.entry(k.clone()).or_default())
        {
            Some(p) => p.stats.counters.spawns += 1,
            None => self.spare_spawns += 1,
        }
        self.next_id += 1;
        let id = self.next_id;
        self.processes.insert(id, Slot::new(pool.clone(), now));
        Action::Spawn { process: id, pool }
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
            _ if key.is_default() => self.limits.min_idle,
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
