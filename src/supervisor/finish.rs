//! The book's side of a turn's end and of a process's: the answered turn, the finished one (its
//! slot free again, its conversation parked when the process kept it), the turn a process
//! refused, the parked conversation it dropped, the process that exited.

use std::time::{Duration, Instant};

use super::parking::Parked;
use super::pool::{Action, Book};
use crate::error::ServeError;
use crate::process::{ConversationId, TurnId, TurnReport};
use crate::protocol::TurnRequest;

impl Book {
    /// `turn`'s client has its answer; its conversation slot is being reset.
    pub fn turn_answered(&mut self, id: u64, turn: TurnId, now: Instant) {
        let occupant = self
            .processes
            .get_mut(&id)
            .and_then(|s| s.occupants.get_mut(&turn));
        if let Some(occupant) = occupant {
            occupant.answered = Some(now);
        }
    }

    /// `turn` ended and its slot is free again: the slot takes a waiting request, or the process
    /// is recycled once it has served `max_turns_per_process`. `reusable: false` (the reset
    /// failed) retires the process. `kept`: the process holds the turn's conversation, parked.
    pub fn turn_finished(
        &mut self,
        id: u64,
        turn: TurnId,
        report: &TurnReport,
        (reusable, kept): (bool, bool),
        now: Instant,
    ) -> Vec<Action> {
        let Some(slot) = self.processes.get_mut(&id) else {
            return Vec::new();
        };
        if let (Some(occupant), true) = (slot.occupants.remove(&turn), kept) {
            let transcript = match (occupant.lookup, &report.answer) {
                (Some(lookup), Some(answer)) => Some(lookup.sent.answered(answer)),
                _ => None,
            };
            slot.parked.push(Parked {
                conversation: occupant.conversation,
                transcript,
                awaiting_tools: report
                    .answer
                    .as_deref()
                    .map(Parked::tool_calls_of)
                    .unwrap_or_default(),
                turns: occupant.earlier_turns + 1,
                born: occupant.born,
                parked_at: now,
            });
        }
        slot.turns += 1;
        slot.last_used = now;
        if let Some(error) = &report.error {
            slot.last_error = Some(error.clone());
        }
        let reset = reusable && !kept;
        if reset {
            slot.resets += 1;
        }
        let key = slot.pool.clone();
        let worn_out = slot.turns >= self.limits.max_turns_per_process || !reusable;
        let retire = worn_out && !slot.retiring;
        if retire {
            slot.retiring = true;
        }
        if let Some(pool) = key.as_ref().and_then(|k| self.pools.get_mut(k)) {
            if reset {
                pool.stats.counters.resets += 1;
            }
            pool.stats.record(report);
        }
        let mut actions = Vec::new();
        if retire {
            self.count_recycled(id);
            actions.push(Action::Retire { process: id });
        }
        // The freed slot (or, after a retirement, another process) takes a waiting request.
        if let Some(key) = key {
            actions.extend(self.assign(&key, now));
        }
        actions.extend(self.rebalance(now));
        actions
    }

    /// Process `id` refused `turn` (it is retiring or no longer ready, and its report is on the
    /// way): it takes nothing more, and the request is placed again as if new — dispatched,
    /// queued or refused.
    pub fn turn_refused(
        &mut self,
        id: u64,
        turn: TurnId,
        request: TurnRequest,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(slot) = self.processes.get_mut(&id) {
            slot.occupants.remove(&turn);
            if !slot.retiring {
                slot.retiring = true;
                actions.push(Action::Retire { process: id });
            }
        }
        actions.extend(self.submit(request, now));
        actions
    }

    /// Process `id` no longer holds parked `conversation`.
    pub fn dropped(&mut self, id: u64, conversation: ConversationId) {
        if let Some(slot) = self.processes.get_mut(&id) {
            slot.parked.retain(|p| p.conversation != conversation);
        }
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
        if let Some(key) = &slot.pool {
            let pool = self.pools.entry(key.clone()).or_default();
            for (_, occupant) in slot.running() {
                pool.stats.counters.crashed += 1;
                pool.stats.error(
                    &occupant.request_id,
                    &format!("process {id} (pid {}) exited mid-turn", slot.pid),
                );
            }
        }
        if !was_ready && !slot.retiring {
            self.start_failures += 1;
            let pause = Duration::from_secs(1 << self.start_failures.min(5));
            self.refill_paused_until = Some(now + pause);
            self.last_start_error = Some(start_error.to_string());
            if let Some(key) = slot.pool {
                if self.live_in(&key) == 0 {
                    let backend = key.backend.name();
                    let pool = self.pools.entry(key).or_default();
                    for waiting in pool.queue.drain(..) {
                        pool.stats.counters.failed += 1;
                        actions.push(Action::Fail {
                            request: waiting.request,
                            error: ServeError::BackendUnavailable {
                                backend,
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
}
