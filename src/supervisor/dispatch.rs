//! The book's dispatch policy: which free process takes a request, and when a request waits a
//! moment for the process that served its pool last. A process that just ran a turn answers the
//! next one faster than one that sat idle (measured with the real CLI: ≈8 ms slower after only
//! 30 ms idle), so the most recently used process is preferred, even while it resets (≈2 ms),
//! for up to `pool.reuse_wait_ms`.

use std::time::{Duration, Instant};

use super::fair;
use super::pool::{Action, Book, Occupant, Waiting};
use crate::protocol::{PoolKey, TurnRequest};

impl Book {
    /// How long a new request of `key` should wait for the pool's just-used process: only when
    /// its reset began less than `reuse_wait_ms` ago and nobody else waits for it already.
    pub(super) fn reuse_wait(&self, key: &PoolKey, now: Instant) -> Option<Duration> {
        let window = Duration::from_millis(self.limits.reuse_wait_ms);
        if window.is_zero() || self.pools.get(key).is_some_and(|p| !p.queue.is_empty()) {
            return None;
        }
        let since = self
            .processes
            .values()
            .filter(|s| s.pool.as_ref() == Some(key) && s.active() && !s.free())
            .filter_map(|s| s.resetting_since())
            .max()?;
        let waited = now.saturating_duration_since(since);
        (waited < window).then(|| window - waited)
    }

    /// Puts `request` in its pool's queue; with `reuse_wait`, only until a recheck then.
    pub(super) fn enqueue(
        &mut self,
        request: TurnRequest,
        now: Instant,
        reuse_wait: Option<Duration>,
    ) -> Vec<Action> {
        let key = request.pool.clone();
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        let pool = self.pools.entry(key.clone()).or_default();
        pool.queue.push_back(Waiting {
            ticket,
            enqueued: now,
            request,
        });
        let mut actions = vec![Action::Queued {
            pool: key.clone(),
            ticket,
        }];
        match reuse_wait {
            Some(after) => actions.push(Action::Recheck { pool: key, after }),
            None => actions.extend(self.rebalance(now)),
        }
        actions
    }

    /// Gives waiting requests of `key` to its free processes, in the order
    /// `Book::pop_waiting` picks them (fair among clients).
    pub fn assign(&mut self, key: &PoolKey, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(id) = self.free_process(key) {
            let Some(waiting) = self.pop_waiting(key) else {
                break;
            };
            let waited = fair::waited(&waiting, now);
            actions.push(self.dispatch(id, waiting.request, now, waited));
        }
        actions
    }

    /// Gives `request` a new turn id and one of process `id`'s conversation slots, and charges
    /// its client's share of the pool.
    pub(super) fn dispatch(
        &mut self,
        id: u64,
        request: TurnRequest,
        now: Instant,
        waited: Duration,
    ) -> Action {
        self.next_turn += 1;
        let turn = self.next_turn;
        if let Some(slot) = self.processes.get_mut(&id) {
            slot.occupants.insert(
                turn,
                Occupant {
                    request_id: request.request_id.clone(),
                    meta: request.meta.clone(),
                    since: now,
                    answered: None,
                },
            );
            let pool = slot.pool.as_ref().map_or_else(String::new, PoolKey::name);
            let _ = request.meta.placement.set((pool, slot.pid));
        }
        if let Some(pool) = self.pools.get_mut(&request.pool) {
            pool.fair.charge(&request.meta.client);
        }
        Action::Dispatch {
            process: id,
            turn,
            request,
            waited,
        }
    }

    /// The most recently used free process of `key`: a process that just served is faster on
    /// its next turn than one that sat idle (measured: spreading back-to-back turns over eight
    /// processes cost ≈ 5 ms each), and the rest age out under the idle timeout together.
    /// Processes that host several conversations fill up before another is used.
    pub(super) fn free_process(&self, key: &PoolKey) -> Option<u64> {
        self.processes
            .iter()
            .filter(|(_, s)| s.pool.as_ref() == Some(key) && s.free())
            .max_by_key(|(_, s)| (s.occupants.len(), s.last_used))
            .map(|(id, _)| *id)
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
