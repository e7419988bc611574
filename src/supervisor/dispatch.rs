//! The book's dispatch policy: which free process takes a request, and when a request waits a
//! moment for the process that served its pool last. A process that just ran a turn answers the
//! next one faster than one that sat idle (measured with the real CLI: ≈8 ms slower after only
//! 30 ms idle), so the most recently used process is preferred, even while it resets (≈2 ms),
//! for up to `pool.reuse_wait_ms`.
//!
//! Before any of that, a request that continues a parked conversation goes to the process that
//! holds it ([`Book::place`]); a new conversation takes a conversation slot with room, or else
//! the slot of the parked conversation that is cheapest to lose — the one with the fewest
//! messages (a miss replays them), on the most recently used process, the least recently used
//! among equals — which is forgotten then. So deep chats outlive one-shot requests, and one-shot
//! traffic stays on the warm process instead of cycling through cold ones.

use std::time::{Duration, Instant};

use super::fair;
use super::parking::Lookup;
use super::pool::{Action, Book, Occupant, Waiting};
use crate::process::{ConversationId, Seat};
use crate::protocol::{PoolKey, Profile, TurnRequest};

/// The longest a follow-up waits for the turn it continues to be reported parked
/// ([`Book::parking_wait`]).
const PARKING_WAIT: Duration = Duration::from_secs(1);

/// Where a request goes in the process the book chose for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// The process holds the request's conversation, parked: it resumes there.
    Resume(ConversationId),
    /// A new conversation (the history is replayed), in place of parked conversation `evict`
    /// when the process has no room otherwise.
    New { evict: Option<ConversationId> },
}

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
        self.enqueue_waiting(request, now, reuse_wait, None)
    }

    /// Queues a follow-up whose previous turn is still in flight ([`Book::parking_wait`]): no
    /// process takes it before that turn has ended, or `wait` has passed.
    pub(super) fn enqueue_held(
        &mut self,
        request: TurnRequest,
        now: Instant,
        wait: Duration,
        lookup: Lookup,
    ) -> Vec<Action> {
        self.enqueue_waiting(request, now, Some(wait), Some((now + wait, lookup)))
    }

    fn enqueue_waiting(
        &mut self,
        request: TurnRequest,
        now: Instant,
        reuse_wait: Option<Duration>,
        held: Option<(Instant, Lookup)>,
    ) -> Vec<Action> {
        let key = request.pool.clone();
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        let pool = self.pools.entry(key.clone()).or_default();
        pool.queue.push_back(Waiting {
            ticket,
            enqueued: now,
            request,
            held,
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
        // Held follow-ups whose wait is over are ordinary waiting requests now.
        if let Some(pool) = self.pools.get_mut(key) {
            for w in pool.queue.iter_mut() {
                if w.held.as_ref().is_some_and(|(until, _)| *until <= now) {
                    w.held = None;
                }
            }
        }
        let has_free = |book: &Self| {
            book.processes
                .values()
                .any(|s| s.pool.as_ref() == Some(key) && s.free())
        };
        while has_free(self) {
            let Some(waiting) = self.pop_waiting(key, now) else {
                break;
            };
            let waited = fair::waited(&waiting, now);
            let lookup = self.lookup(&waiting.request);
            if let Some((id, place)) = self.place(key, lookup.as_ref()) {
                actions.push(self.dispatch(id, place, lookup, waiting.request, now, waited));
            }
        }
        actions
    }

    /// How long a request waits when it continues a turn still in flight: its client has the
    /// answer, but the process's report that the turn ended (and its conversation is parked)
    /// may reach the supervisor after the follow-up does. The report ends the wait at once.
    pub(super) fn parking_wait(&self, key: &PoolKey, lookup: &Lookup) -> Option<Duration> {
        let in_flight = self
            .processes
            .values()
            .filter(|s| s.pool.as_ref() == Some(key))
            .flat_map(|s| s.occupants.values())
            .filter_map(|o| o.lookup.as_ref())
            .any(|o| lookup.follows(&o.sent));
        in_flight.then_some(PARKING_WAIT)
    }

    /// The request's conversation, when it may be parked after its turn (parking on, a chat
    /// pool).
    pub(super) fn lookup(&self, request: &TurnRequest) -> Option<Lookup> {
        let parks = self.limits.park_conversations && request.pool.profile == Profile::Chat;
        parks.then(|| Lookup::of(request))
    }

    /// Which process of `key` takes a request, and where in it: the one that holds its
    /// conversation parked, else a free one ([`Book::new_place`]).
    pub(super) fn place(&self, key: &PoolKey, lookup: Option<&Lookup>) -> Option<(u64, Place)> {
        let hit = lookup.and_then(|lookup| {
            self.processes
                .iter()
                .filter(|(_, s)| s.pool.as_ref() == Some(key) && s.free())
                .find_map(|(id, s)| {
                    s.parked
                        .iter()
                        .find(|p| lookup.continues(p))
                        .map(|p| (*id, Place::Resume(p.conversation)))
                })
        });
        hit.or_else(|| self.new_place(key))
    }

    /// Gives `request` a new turn id and one of process `id`'s conversation slots (its parked
    /// conversation's, or a new one, forgetting the parked conversation `place` names — the
    /// least recently used one if it names none — when there is no room), and charges its
    /// client's share of the pool.
    pub(super) fn dispatch(
        &mut self,
        id: u64,
        place: Place,
        lookup: Option<Lookup>,
        mut request: TurnRequest,
        now: Instant,
        waited: Duration,
    ) -> Action {
        self.next_turn += 1;
        let turn = self.next_turn;
        let mut seat = Seat {
            keep: lookup.is_some(),
            ..Seat::default()
        };
        let (mut earlier_turns, mut born) = (0, now);
        let mut hit = None;
        if let Some(slot) = self.processes.get_mut(&id) {
            match place {
                Place::Resume(conversation) => {
                    let at = slot
                        .parked
                        .iter()
                        .position(|p| p.conversation == conversation);
                    if let Some(parked) = at.map(|at| slot.parked.remove(at)) {
                        // Only the new messages go to the process: the rest it holds.
                        let held = parked.transcript.as_ref().map_or(0, |t| t.len());
                        request.history.drain(..held.min(request.history.len()));
                        (earlier_turns, born) = (parked.turns, parked.born);
                        seat.conversation = conversation;
                        seat.resume = true;
                        hit = Some(true);
                    }
                }
                Place::New { .. } => {}
            }
            if !seat.resume {
                self.next_conversation += 1;
                seat.conversation = self.next_conversation;
                if slot.occupants.len() + slot.parked.len() >= slot.capacity {
                    let chosen = match place {
                        Place::New { evict: Some(c) } => {
                            slot.parked.iter().position(|p| p.conversation == c)
                        }
                        _ => None,
                    };
                    let lru = || (0..slot.parked.len()).min_by_key(|&i| slot.parked[i].parked_at);
                    if let Some(at) = chosen.or_else(lru) {
                        // Reset by the process before it takes the turn.
                        seat.forget.push(slot.parked.remove(at).conversation);
                        slot.resets += 1;
                    }
                }
                hit = lookup.as_ref().filter(|l| l.has_history()).map(|_| false);
            }
            slot.occupants.insert(
                turn,
                Occupant {
                    request_id: request.request_id.clone(),
                    meta: request.meta.clone(),
                    since: now,
                    answered: None,
                    conversation: seat.conversation,
                    earlier_turns,
                    born,
                    lookup,
                },
            );
            let pool = slot.pool.as_ref().map_or_else(String::new, PoolKey::name);
            let _ = request.meta.placement.set((pool, slot.pid));
        }
        if let Some(pool) = self.pools.get_mut(&request.pool) {
            pool.fair.charge(&request.meta.client);
            pool.stats.counters.resets += seat.forget.len() as u64;
            match hit {
                Some(true) => pool.stats.counters.conversation_hits += 1,
                Some(false) => pool.stats.counters.conversation_misses += 1,
                None => {}
            }
        }
        Action::Dispatch {
            process: id,
            turn,
            request,
            seat,
            waited,
        }
    }

    /// Where a new conversation of `key` goes: the most recently used free process with room —
    /// a process that just served is faster on its next turn than one that sat idle (measured:
    /// spreading back-to-back turns over eight processes cost ≈ 5 ms each), and the rest age
    /// out under the idle timeout together; processes that host several conversations fill up
    /// before another is used — else in place of the parked conversation cheapest to lose: not
    /// one waiting on client tool calls if another will do, the fewest messages, then the most
    /// recently used process, then the least recently parked.
    pub(super) fn new_place(&self, key: &PoolKey) -> Option<(u64, Place)> {
        let free = || {
            self.processes
                .iter()
                .filter(|(_, s)| s.pool.as_ref() == Some(key) && s.free())
        };
        let roomy = free()
            .filter(|(_, s)| s.roomy())
            .max_by_key(|(_, s)| (s.occupants.len(), s.last_used))
            .map(|(id, _)| (*id, Place::New { evict: None }));
        roomy.or_else(|| {
            free()
                .flat_map(|(id, s)| s.parked.iter().map(move |p| (*id, s, p)))
                .min_by_key(|(_, s, p)| {
                    // A turn waiting on client tool calls is mid-answer: its follow-up is due.
                    let waits = !p.awaiting_tools.is_empty();
                    let messages = p.transcript.as_ref().map_or(0, |t| t.len());
                    (waits, messages, std::cmp::Reverse(s.last_used), p.parked_at)
                })
                .map(|(id, _, p)| {
                    let evict = Some(p.conversation);
                    (id, Place::New { evict })
                })
        })
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "parking_book_tests.rs"]
mod parking_tests;
