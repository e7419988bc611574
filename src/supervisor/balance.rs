//! The book's balancing policy: what to start, bind or retire so that waiting requests get a
//! process and pools keep their warm processes, within every limit; and the periodic retirement
//! of idle and old processes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::parking::Parked;
use super::pool::{Action, Book, Slot};
use crate::config::Backend;
use crate::process::Lifecycle;
use crate::protocol::PoolKey;

impl Book {
    /// Starts, binds or retires processes so that waiting requests get one, the default pool
    /// keeps `min_idle` and `spare_processes` spares stand ready, within all limits.
    pub fn rebalance(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        // After failed starts, nothing is started until the pause is over (the supervisor's
        // housekeeping tick calls this again), so a broken CLI is not restarted in a loop.
        if self.refill_paused_until.is_some_and(|t| now < t) {
            return actions;
        }
        let keys: Vec<PoolKey> = self
            .pools
            .iter()
            .filter(|(_, p)| !p.queue.is_empty() && !p.draining)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            // Requests of clients at their `max_concurrent` wait for their own turns to end,
            // not for a new process.
            let waiting = self.eligible_waiting(&key);
            // Starting processes and resetting slots (≈1 ms from free) will take a waiting
            // request.
            let coming: usize = self
                .processes
                .values()
                .filter(|s| s.pool.as_ref() == Some(&key) && s.active())
                .map(|s| match s.lifecycle {
                    Lifecycle::Starting => s.capacity,
                    _ => s
                        .occupants
                        .values()
                        .filter(|o| o.answered.is_some())
                        .count(),
                })
                .sum();
            for _ in coming..waiting {
                if self.live_in(&key) >= self.max_for(&key) {
                    break;
                }
                // A probed (idle) spare first, else one still starting.
                let spare_of = |s: &Slot| s.pool.is_none() && s.backend == key.backend;
                let spare = match key.takes_spares() {
                    true => self
                        .find(|s| spare_of(s) && s.free())
                        .or_else(|| self.find(|s| spare_of(s) && s.active())),
                    false => None,
                };
                if let Some(spare) = spare {
                    if let Some(slot) = self.processes.get_mut(&spare) {
                        slot.pool = Some(key.clone());
                        // Binding takes an `initialize` (≈20 ms): not free before it reports
                        // ready again.
                        slot.lifecycle = Lifecycle::Starting;
                    }
                    actions.push(Action::Bind {
                        process: spare,
                        pool: key.clone(),
                    });
                } else if self.processes.len() < self.limits.max_total_processes {
                    actions.push(self.add(key.backend, Some(key.clone()), now));
                } else {
                    // Full: make room by retiring the longest-idle process of another pool.
                    let victim = self
                        .processes
                        .iter()
                        .filter(|(_, s)| s.active() && s.idle() && s.pool.as_ref() != Some(&key))
                        .min_by_key(|(_, s)| s.last_used)
                        .map(|(id, _)| *id);
                    if let Some(id) = victim {
                        if let Some(slot) = self.processes.get_mut(&id) {
                            slot.retiring = true;
                        }
                        actions.push(Action::Retire { process: id });
                    }
                    break;
                }
            }
        }
        let keys: Vec<PoolKey> = self.pools.keys().cloned().collect();
        for key in keys {
            // Warm: could take one more turn now (a process hosting several conversations
            // stays warm while it has a free slot).
            let warm = self.count(|s| {
                s.pool.as_ref() == Some(&key) && s.active() && s.running().count() < s.capacity
            });
            for _ in warm..self.min_idle_for(&key) {
                if self.live_in(&key) >= self.max_for(&key)
                    || self.processes.len() >= self.limits.max_total_processes
                {
                    break;
                }
                actions.push(self.add(key.backend, Some(key.clone()), now));
            }
        }
        // Spares are Claude Code's: its cold start is what a new system prompt would wait for.
        let spares = self.count(|s| s.pool.is_none() && s.active());
        for _ in spares..self.limits.spare_processes {
            if self.processes.len() >= self.limits.max_total_processes {
                break;
            }
            actions.push(self.add(Backend::Claude, None, now));
        }
        actions
    }

    /// Parked turns whose client tool results have not come within `tool_result_timeout_secs`
    /// are forgotten: the process interrupts the calls and resets the conversation, and a late
    /// follow-up is replayed like any miss.
    fn expire_tool_waits(&mut self, now: Instant) -> Vec<Action> {
        let limit = Duration::from_secs(self.limits.tool_result_timeout_secs);
        let mut actions = Vec::new();
        for (id, slot) in self.processes.iter_mut() {
            let expired = |p: &Parked| {
                !p.awaiting_tools.is_empty() && now.saturating_duration_since(p.parked_at) >= limit
            };
            let before = slot.parked.len();
            for p in slot.parked.iter().filter(|p| expired(p)) {
                actions.push(Action::Forget {
                    process: *id,
                    conversation: p.conversation,
                });
            }
            slot.parked.retain(|p| !expired(p));
            let forgotten = (before - slot.parked.len()) as u64;
            slot.resets += forgotten as u32;
            if let Some(pool) = slot.pool.as_ref().and_then(|k| self.pools.get_mut(k)) {
                pool.stats.counters.resets += forgotten;
            }
        }
        actions
    }

    /// Idle processes past their idle timeout or age are retired (beyond the default pool's
    /// `min_idle`), and empty pools forgotten.
    pub fn housekeeping(&mut self, now: Instant) -> Vec<Action> {
        let idle_timeout = Duration::from_secs(self.limits.idle_timeout_secs);
        let max_age = Duration::from_secs(self.limits.max_process_age_secs);
        let mut actions = Vec::new();
        // How many idle processes each pool keeps despite the idle timeout.
        let mut keep: BTreeMap<PoolKey, usize> = self
            .pools
            .keys()
            .map(|k| (k.clone(), self.min_idle_for(k)))
            .collect();
        // Newest-used first, so a pool keeps its most recently used processes.
        let mut ids: Vec<u64> = self.processes.keys().copied().collect();
        ids.sort_by_key(|id| std::cmp::Reverse(self.processes[id].last_used));
        for id in ids {
            let Some(slot) = self.processes.get(&id) else {
                continue;
            };
            if !(slot.active() && slot.idle()) {
                continue;
            }
            let too_old = now.duration_since(slot.started) >= max_age;
            let idle_long = now.duration_since(slot.last_used) >= idle_timeout;
            let kept = slot
                .pool
                .as_ref()
                .and_then(|k| keep.get_mut(k))
                .filter(|n| **n > 0);
            let protected = match kept {
                Some(n) if !too_old => {
                    *n -= 1;
                    true
                }
                _ => false,
            };
            let spare = slot.pool.is_none();
            if too_old || (idle_long && !protected && !spare) {
                if too_old {
                    self.count_recycled(id);
                }
                if let Some(slot) = self.processes.get_mut(&id) {
                    slot.retiring = true;
                }
                actions.push(Action::Retire { process: id });
            }
        }
        actions.extend(self.expire_tool_waits(now));
        let processes = &self.processes;
        self.pools.retain(|key, pool| {
            key.is_default()
                || !pool.queue.is_empty()
                || pool.draining
                || pool.max_processes.is_some()
                || processes.values().any(|s| s.pool.as_ref() == Some(key))
        });
        actions.extend(self.rebalance(now));
        actions
    }
}
