use super::*;
use crate::process::TurnId;
use crate::supervisor::pool::tests::{limits, ok_report, request, warm_book};
use crate::supervisor::pool::StateName;

fn dispatched(actions: &[Action]) -> Option<(u64, TurnId)> {
    actions.iter().find_map(|a| match a {
        Action::Dispatch { process, turn, .. } => Some((*process, *turn)),
        _ => None,
    })
}

fn dispatched_to(actions: &[Action]) -> Option<u64> {
    dispatched(actions).map(|(process, _)| process)
}

/// Runs one request on `process` (which must be the one chosen) and brings it back to idle at
/// `idle_at`.
fn serve_on(book: &mut Book, key: &PoolKey, name: &str, at: Instant, idle_at: Instant) -> u64 {
    let (r, _rx) = request(name, key);
    let (id, turn) = dispatched(&book.submit(r, at)).expect("dispatched");
    book.turn_answered(id, turn, idle_at);
    book.turn_finished(id, turn, &ok_report(), true, idle_at);
    id
}

#[test]
fn the_most_recently_used_idle_process_serves_next() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let key = PoolKey::default_pool();
    let mut l = limits(3, 3, 0, 4);
    l.max_turns_per_process = 10;
    let mut book = warm_book(l, t0);
    // Two processes busy at once; the one that finishes last is the most recently used.
    let (r1, _rx1) = request("r1", &key);
    let (r2, _rx2) = request("r2", &key);
    let a = dispatched(&book.submit(r1, t0)).expect("r1");
    let b = dispatched(&book.submit(r2, t0)).expect("r2");
    // `b` is the higher id, so "lowest id first" would not choose it.
    let (a, b) = (a.min(b), a.max(b));
    book.turn_finished(a.0, a.1, &ok_report(), true, ms(30));
    book.turn_finished(b.0, b.1, &ok_report(), true, ms(40));
    let b = b.0;
    // Later requests go to `b` (not the lowest id) while it is free.
    for (n, at) in [("r3", 100), ("r4", 200)] {
        assert_eq!(serve_on(&mut book, &key, n, ms(at), ms(at + 20)), b, "{n}");
    }
    // While it is busy, another process serves.
    let (r5, _rx5) = request("r5", &key);
    assert_eq!(dispatched_to(&book.submit(r5, ms(300))), Some(b));
    let (r6, _rx6) = request("r6", &key);
    assert_ne!(dispatched_to(&book.submit(r6, ms(300))), Some(b));
}

#[test]
fn a_request_waits_briefly_for_the_process_that_is_resetting() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let key = PoolKey::default_pool();
    let mut l = limits(3, 3, 0, 4);
    l.max_turns_per_process = 10;
    l.reuse_wait_ms = 10;
    let mut book = warm_book(l, t0);
    let (r1, _rx1) = request("r1", &key);
    let (hot, turn) = dispatched(&book.submit(r1, t0)).expect("r1");
    book.turn_answered(hot, turn, ms(50));

    // 3 ms into the reset: queued for the rest of the window, although others are idle.
    let (r2, _rx2) = request("r2", &key);
    let a = book.submit(r2, ms(53));
    assert_eq!(dispatched_to(&a), None, "{a:?}");
    assert!(
        a.iter().any(
            |x| matches!(x, Action::Recheck { after, .. } if *after == Duration::from_millis(7))
        ),
        "{a:?}"
    );
    // Nobody else waits for the same process: the next request takes an idle one at once.
    let (r3, _rx3) = request("r3", &key);
    let other = dispatched_to(&book.submit(r3, ms(54))).expect("r3 at once");
    assert_ne!(other, hot);
    // The reset ends: the waiting request goes to the process it waited for.
    let a = book.turn_finished(hot, turn, &ok_report(), true, ms(55));
    let (to, turn) = dispatched(&a).expect("r2");
    assert_eq!(to, hot, "{a:?}");
    let running: Vec<&str> = book.processes[&hot]
        .running()
        .map(|(_, o)| o.request_id.as_str())
        .collect();
    assert_eq!(running, ["r2"]);

    // A reset older than the window is not waited for.
    book.turn_answered(hot, turn, ms(100));
    let (r4, _rx4) = request("r4", &key);
    let to = dispatched_to(&book.submit(r4, ms(111))).expect("r4 at once");
    assert_ne!(to, hot);
}

#[test]
fn a_reset_that_takes_too_long_hands_the_waiting_request_to_a_free_process() {
    let t0 = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(2, 2, 0, 4), t0);
    let (r1, _rx1) = request("r1", &key);
    let (hot, turn) = dispatched(&book.submit(r1, t0)).expect("r1");
    book.turn_answered(hot, turn, t0);
    let (r2, _rx2) = request("r2", &key);
    assert_eq!(dispatched_to(&book.submit(r2, t0)), None);
    // The recheck fires with the reset still running.
    let a = book.assign(&key, t0);
    let to = dispatched_to(&a).expect("assigned");
    assert_ne!(to, hot);
    assert!(book.pools[&key].queue.is_empty());
}

#[test]
fn reuse_wait_zero_always_takes_an_idle_process() {
    let t0 = Instant::now();
    let key = PoolKey::default_pool();
    let mut l = limits(2, 2, 0, 4);
    l.reuse_wait_ms = 0;
    let mut book = warm_book(l, t0);
    let (r1, _rx1) = request("r1", &key);
    let (hot, turn) = dispatched(&book.submit(r1, t0)).expect("r1");
    book.turn_answered(hot, turn, t0);
    let (r2, _rx2) = request("r2", &key);
    let to = dispatched_to(&book.submit(r2, t0)).expect("at once");
    assert_ne!(to, hot);
}

#[test]
fn a_process_with_two_slots_fills_up_before_another_is_used() {
    let t0 = Instant::now();
    let key = PoolKey::default_pool();
    let mut l = limits(2, 2, 0, 4);
    l.reuse_wait_ms = 0;
    let mut book = Book::new(l);
    book.capacity.insert(crate::config::Backend::Claude, 2);
    for a in book.rebalance(t0) {
        if let Action::Spawn { process, .. } = a {
            book.state_changed(process, crate::process::Lifecycle::Ready, t0);
        }
    }
    let (r1, _rx1) = request("r1", &key);
    let (r2, _rx2) = request("r2", &key);
    let (r3, _rx3) = request("r3", &key);
    let (p1, t1) = dispatched(&book.submit(r1, t0)).expect("r1");
    let (p2, t2) = dispatched(&book.submit(r2, t0)).expect("r2");
    assert_eq!(p1, p2, "the second conversation joins the first process");
    assert_ne!(t1, t2, "each turn has its own id");
    assert_eq!(book.processes[&p1].state(), StateName::Busy);
    let p3 = dispatched_to(&book.submit(r3, t0)).expect("r3");
    assert_ne!(p3, p1, "a full process is not free");
    // One slot answered, the other still running: busy; both answered: resetting.
    book.turn_answered(p1, t1, t0);
    assert_eq!(book.processes[&p1].state(), StateName::Busy);
    book.turn_answered(p1, t2, t0);
    assert_eq!(book.processes[&p1].state(), StateName::Resetting);
    book.turn_finished(p1, t1, &ok_report(), true, t0);
    book.turn_finished(p1, t2, &ok_report(), true, t0);
    assert_eq!(book.processes[&p1].state(), StateName::Idle);
    assert_eq!(book.processes[&p1].turns, 2);
}

#[test]
fn a_busy_process_with_free_slots_keeps_its_pool_warm() {
    let t0 = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = Book::new(limits(3, 1, 0, 4));
    book.capacity.insert(crate::config::Backend::Claude, 4);
    for a in book.rebalance(t0) {
        if let Action::Spawn { process, .. } = a {
            book.state_changed(process, crate::process::Lifecycle::Ready, t0);
        }
    }
    let (r1, _rx1) = request("r1", &key);
    let a = book.submit(r1, t0);
    assert!(matches!(a.as_slice(), [Action::Dispatch { .. }]), "{a:?}");
    assert!(
        book.rebalance(t0).is_empty(),
        "3 free slots left: min_idle needs no second process"
    );
}
