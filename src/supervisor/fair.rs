//! The book's sharing among clients. Each pool keeps one queue in arrival order, and whenever a
//! process frees up it serves the waiting client whose turn it is, not the oldest request:
//! weighted fair queueing by virtual time ([`FairShare`]). Each client's next request is stamped
//! with where the client stands — its previous stamp plus `STEP / weight`, but never behind the
//! pool's virtual time (the stamp of the request served last), so a client that was away gets
//! the next turn and no credit for the time it was away. The smallest stamp is served, that
//! client's oldest request first. A client of weight 2 advances half as fast as one of weight 1,
//! and is served twice as often while both wait.
//!
//! The per-client caps live here too: turns running at once (`max_concurrent`: a client at its cap
//! is skipped until one of its turns ends) and requests waiting (`max_queued`: one more is refused
//! with 429). When a pool's queue is full, the client with the most waiting requests gives up its
//! newest to make room for a client with fewer, so a flood cannot keep a quiet client out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::pool::{Action, Book, Waiting};
use crate::error::ServeError;
use crate::limits::{Client, ClientId};
use crate::protocol::PoolKey;

/// A client's step in virtual time per request served, at weight 1. Large, so that integer
/// division by any weight up to `MAX_WEIGHT` keeps the ratios.
const STEP: u64 = 1 << 20;

/// One pool's virtual time and the clients ahead of it.
#[derive(Debug, Default)]
pub struct FairShare {
    /// The stamp of the request served last.
    virtual_time: u64,
    /// Where each client's next request stands; only clients ahead of `virtual_time` are kept
    /// (anyone else stands at `virtual_time`).
    next: HashMap<ClientId, u64>,
}

impl FairShare {
    /// The stamp `client`'s next request gets.
    pub fn stamp(&self, client: &ClientId) -> u64 {
        let own = self.next.get(client).copied().unwrap_or(0);
        own.max(self.virtual_time)
    }

    /// `client` was given a turn: it moves on by its step, the pool's virtual time to its stamp.
    pub fn charge(&mut self, client: &Client) {
        let stamp = self.stamp(&client.id);
        self.virtual_time = stamp;
        let step = STEP / u64::from(client.weight.max(1));
        self.next.insert(client.id.clone(), stamp + step);
        let now = self.virtual_time;
        self.next.retain(|_, next| *next > now);
    }
}

/// What one client holds across all pools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    pub running: usize,
    pub queued: usize,
}

impl Book {
    /// Turns running (not yet answered) per client, across all pools.
    pub(super) fn running_by_client(&self) -> HashMap<ClientId, usize> {
        let mut running: HashMap<ClientId, usize> = HashMap::new();
        for slot in self.processes.values() {
            for (_, o) in slot.running() {
                *running.entry(o.meta.client.id.clone()).or_default() += 1;
            }
        }
        running
    }

    /// What `client` holds across all pools.
    pub fn holding(&self, client: &ClientId) -> Holding {
        let queued = self
            .pools
            .values()
            .flat_map(|p| p.queue.iter())
            // A request whose client hung up waits for nobody: it is dropped when reached.
            .filter(|w| w.request.meta.client.id == *client && !w.request.events.is_closed())
            .count();
        let running = self.running_by_client().get(client).copied().unwrap_or(0);
        Holding { running, queued }
    }

    /// Takes the next request of `key` to serve: the waiting client with the smallest stamp
    /// (ties: the one waiting longest), its oldest request. Clients at their `max_concurrent`
    /// are passed over, and so are follow-ups held for the turn they continue; requests whose
    /// client is gone are dropped.
    pub(super) fn pop_waiting(&mut self, key: &PoolKey, now: Instant) -> Option<Waiting> {
        let running = self.running_by_client();
        let held: Vec<u64> = self.pools.get(key).map_or_else(Vec::new, |pool| {
            pool.queue
                .iter()
                .filter(|w| {
                    w.held.as_ref().is_some_and(|(until, lookup)| {
                        now < *until && self.parking_wait(key, lookup).is_some()
                    })
                })
                .map(|w| w.ticket)
                .collect()
        });
        let pool = self.pools.get_mut(key)?;
        pool.queue.retain(|w| !w.request.events.is_closed());
        let mut seen: Vec<&ClientId> = Vec::new();
        let mut best: Option<(u64, usize)> = None;
        for (i, w) in pool.queue.iter().enumerate() {
            if held.contains(&w.ticket) {
                continue;
            }
            let client = &w.request.meta.client;
            if seen.contains(&&client.id) {
                continue;
            }
            seen.push(&client.id);
            let busy = running.get(&client.id).copied().unwrap_or(0);
            if client.max_concurrent.is_some_and(|cap| busy >= cap) {
                continue;
            }
            let stamp = pool.fair.stamp(&client.id);
            if best.is_none_or(|(s, _)| stamp < s) {
                best = Some((stamp, i));
            }
        }
        let (_, index) = best?;
        pool.queue.remove(index)
    }

    /// Requests of `key` that a free process could take now: each client's waiting requests up
    /// to the turns its `max_concurrent` leaves it.
    pub(super) fn eligible_waiting(&self, key: &PoolKey) -> usize {
        let Some(pool) = self.pools.get(key) else {
            return 0;
        };
        let running = self.running_by_client();
        let mut waiting: HashMap<&ClientId, (usize, Option<usize>)> = HashMap::new();
        // A held follow-up waits for the process finishing its previous turn, not for a new one.
        for w in pool.queue.iter().filter(|w| w.held.is_none()) {
            let c = &w.request.meta.client;
            let room = c
                .max_concurrent
                .map(|cap| cap.saturating_sub(running.get(&c.id).copied().unwrap_or(0)));
            waiting.entry(&c.id).or_insert((0, room)).0 += 1;
        }
        waiting
            .values()
            .map(|(n, room)| room.map_or(*n, |r| r.min(*n)))
            .sum()
    }

    /// Refuses a request of `client`, which holds as much as its limits allow.
    pub(super) fn over_limit(
        &mut self,
        key: &PoolKey,
        client: &Client,
        held: Holding,
    ) -> ServeError {
        self.pools
            .entry(key.clone())
            .or_default()
            .stats
            .counters
            .refused += 1;
        ServeError::ClientOverLimit {
            client: client.id.to_string(),
            running: held.running,
            queued: held.queued,
            retry_after: self.retry_after(),
        }
    }

    /// `key`'s queue is full and a request of `client` arrives: the client with the most waiting
    /// requests gives up its newest (refused as if the queue had been full for it), unless it
    /// would then have no more than `client`. `None`: nothing to push out.
    pub(super) fn push_out(&mut self, key: &PoolKey, client: &ClientId) -> Option<Action> {
        let retry_after = self.retry_after();
        let processes = self.live_in(key);
        let pool = self.pools.get_mut(key)?;
        let mut counts: HashMap<&ClientId, usize> = HashMap::new();
        for w in &pool.queue {
            *counts.entry(&w.request.meta.client.id).or_default() += 1;
        }
        let mine = counts.get(client).copied().unwrap_or(0);
        let (heaviest, most) = counts.into_iter().max_by_key(|(_, n)| *n)?;
        if most <= mine + 1 {
            return None;
        }
        let heaviest = heaviest.clone();
        let newest = pool
            .queue
            .iter()
            .rposition(|w| w.request.meta.client.id == heaviest)?;
        let waiting = pool.queue.remove(newest)?;
        pool.stats.counters.refused += 1;
        let error = ServeError::PoolSaturated {
            pool: key.name(),
            processes,
            queued: pool.queue.len() + 1,
            retry_after,
        };
        Some(Action::Fail {
            request: waiting.request,
            error,
        })
    }
}

/// How long a request waited before a process took it.
pub(super) fn waited(waiting: &Waiting, now: std::time::Instant) -> Duration {
    now.saturating_duration_since(waiting.enqueued)
}
