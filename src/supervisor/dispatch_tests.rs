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
    book.turn_finished(id, turn, &ok_report(), (true, false), idle_at);
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
    book.turn_finished(a.0, a.1, &ok_report(), (true, false), ms(30));
    book.turn_finished(b.0, b.1, &ok_report(), (true, false), ms(40));
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
    let a = book.turn_finished(hot, turn, &ok_report(), (true, false), ms(55));
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
    book.turn_finished(p1, t1, &ok_report(), (true, false), t0);
    book.turn_finished(p1, t2, &ok_report(), (true, false), t0);
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

mod fairness {
    use std::sync::Arc;

    use super::*;
    use crate::error::ServeError;
    use crate::limits::{Client, ClientId};
    use crate::supervisor::pool::tests::{request_of, spawned};

    fn client(name: &str, weight: u32) -> Arc<Client> {
        Arc::new(Client {
            id: ClientId::named(name),
            weight,
            ..Client::default()
        })
    }

    /// The request ids dispatched by `actions`, with their turns.
    fn dispatches(actions: &[Action]) -> Vec<(String, u64, TurnId)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Dispatch {
                    process,
                    turn,
                    request,
                    ..
                } => Some((request.request_id.clone(), *process, *turn)),
                _ => None,
            })
            .collect()
    }

    /// Ends the turn of `(_, process, turn)` at `at`; returns what it dispatched next.
    fn finish(
        book: &mut Book,
        d: &(String, u64, TurnId),
        at: Instant,
    ) -> Vec<(String, u64, TurnId)> {
        dispatches(&book.turn_finished(d.1, d.2, &ok_report(), (true, false), at))
    }

    fn warm(processes: usize, max_queue: usize, t0: Instant) -> Book {
        let mut l = limits(processes, processes, 0, max_queue);
        l.max_turns_per_process = 1000;
        l.reuse_wait_ms = 0;
        warm_book(l, t0)
    }

    #[test]
    fn a_quiet_client_is_served_next_whatever_the_flood_queued() {
        let t0 = Instant::now();
        let key = PoolKey::default_pool();
        let mut book = warm(2, 64, t0);
        let flood = client("flood", 1);
        let mut rxs = Vec::new();
        let mut running = Vec::new();
        for i in 0..20 {
            let (r, rx) = request_of(&format!("f{i}"), &key, flood.clone());
            rxs.push(rx);
            running.extend(dispatches(&book.submit(r, t0)));
        }
        assert_eq!(running.len(), 2, "two processes, the rest queued");
        let (q, _qrx) = request_of("quiet", &key, client("quiet", 1));
        let later = t0 + Duration::from_secs(1);
        assert!(
            dispatches(&book.submit(q, later)).is_empty(),
            "no process free"
        );
        let next = finish(&mut book, &running[0], t0 + Duration::from_millis(1200));
        assert_eq!(next[0].0, "quiet", "before 18 older requests of the flood");
        // Then the flood again, oldest first.
        let next = finish(&mut book, &running[1], t0 + Duration::from_millis(1300));
        assert_eq!(next[0].0, "f2");
    }

    #[test]
    fn waiting_clients_take_turns_in_proportion_to_their_weights() {
        let t0 = Instant::now();
        let key = PoolKey::default_pool();
        let mut book = warm(1, 64, t0);
        let (heavy, light) = (client("heavy", 2), client("light", 1));
        let mut rxs = Vec::new();
        let mut current = None;
        for i in 0..12 {
            for c in [&heavy, &light] {
                let (r, rx) = request_of(&format!("{}{i}", c.id), &key, c.clone());
                rxs.push(rx);
                if let Some(d) = dispatches(&book.submit(r, t0)).pop() {
                    current = Some(d);
                }
            }
        }
        let mut order = Vec::new();
        for n in 1..=12 {
            let d = current.take().expect("a turn runs");
            let next = finish(&mut book, &d, t0 + Duration::from_millis(n));
            current = next.into_iter().next();
            let name = current.as_ref().expect("more waiting").0.clone();
            order.push(name.trim_end_matches(char::is_numeric).to_string());
        }
        // The light client, new to the pool, goes first once; from then on the shares hold.
        let heavy_turns = order[3..].iter().filter(|n| *n == "heavy").count();
        assert_eq!(heavy_turns, 6, "twice the light client's share: {order:?}");
        assert!(
            order.windows(3).all(|w| w.iter().any(|n| n == "light")),
            "interleaved, not in runs: {order:?}"
        );
    }

    #[test]
    fn a_client_back_from_idle_goes_next_but_banks_no_credit() {
        let t0 = Instant::now();
        let key = PoolKey::default_pool();
        let mut book = warm(1, 64, t0);
        let (a, b) = (client("a", 1), client("b", 1));
        let mut rxs = Vec::new();
        let mut current = None;
        for i in 0..8 {
            let (r, rx) = request_of(&format!("a{i}"), &key, a.clone());
            rxs.push(rx);
            current = current.or(dispatches(&book.submit(r, t0)).pop());
        }
        // `a` alone for a while: three turns.
        for n in 1..=3 {
            let d = current.take().expect("a turn runs");
            current = finish(&mut book, &d, t0 + Duration::from_millis(n)).pop();
        }
        for i in 0..3 {
            let (r, rx) = request_of(&format!("b{i}"), &key, b.clone());
            rxs.push(rx);
            assert!(dispatches(&book.submit(r, t0)).is_empty());
        }
        let mut order = Vec::new();
        for n in 4..=8 {
            let d = current.take().expect("a turn runs");
            current = finish(&mut book, &d, t0 + Duration::from_millis(n)).pop();
            order.push(current.as_ref().expect("more waiting").0.clone());
        }
        assert_eq!(
            order,
            ["b0", "a4", "b1", "a5", "b2"],
            "served in turn, not b's in a row"
        );
    }

    #[test]
    fn a_client_at_its_caps_waits_then_is_refused_while_others_pass() {
        let t0 = Instant::now();
        let key = PoolKey::default_pool();
        let mut book = warm(2, 64, t0);
        let capped = Arc::new(Client {
            id: ClientId::named("capped"),
            max_concurrent: Some(1),
            max_queued: Some(1),
            ..Client::default()
        });
        let (r1, _rx1) = request_of("c1", &key, capped.clone());
        let first = dispatches(&book.submit(r1, t0));
        assert_eq!(first.len(), 1);
        let (r2, _rx2) = request_of("c2", &key, capped.clone());
        let a = book.submit(r2, t0);
        assert!(
            dispatches(&a).is_empty(),
            "at max_concurrent: waits, a process idle: {a:?}"
        );
        assert!(
            spawned(&a).is_empty(),
            "and starts no process for it: {a:?}"
        );
        let (r3, _rx3) = request_of("c3", &key, capped.clone());
        match book.submit(r3, t0).as_slice() {
            [Action::Fail {
                error:
                    ServeError::ClientOverLimit {
                        client,
                        running: 1,
                        queued: 1,
                        ..
                    },
                ..
            }] => assert_eq!(client, "capped"),
            other => panic!("expected a refusal by the client's caps: {other:?}"),
        }
        let (other, _rxo) = request_of("o1", &key, client("other", 1));
        assert_eq!(dispatches(&book.submit(other, t0)).len(), 1, "others pass");
        let next = finish(&mut book, &first[0], t0 + Duration::from_millis(5));
        assert_eq!(next[0].0, "c2", "its own turn ended: the waiting one runs");
    }

    #[test]
    fn a_full_queue_pushes_out_the_floods_newest_for_a_quieter_client() {
        let t0 = Instant::now();
        let key = PoolKey::default_pool();
        let mut book = warm(1, 3, t0);
        let flood = client("flood", 1);
        let mut rxs = Vec::new();
        for i in 0..4 {
            let (r, rx) = request_of(&format!("f{i}"), &key, flood.clone());
            rxs.push(rx);
            book.submit(r, t0);
        }
        let (q1, _q1rx) = request_of("q1", &key, client("quiet", 1));
        let a = book.submit(q1, t0);
        let pushed: Vec<&str> = a
            .iter()
            .filter_map(|a| match a {
                Action::Fail {
                    request,
                    error: ServeError::PoolSaturated { .. },
                } => Some(request.request_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(pushed, ["f3"], "the flood's newest makes room: {a:?}");
        assert!(
            a.iter().any(|a| matches!(a, Action::Queued { .. })),
            "{a:?}"
        );
        // Now the flood has 2 waiting and the quiet client 1: a second quiet request would leave
        // them even, so it is refused instead.
        let (q2, _q2rx) = request_of("q2", &key, client("quiet", 1));
        let a = book.submit(q2, t0);
        assert!(
            matches!(a.as_slice(), [Action::Fail { error: ServeError::PoolSaturated { .. }, request }] if request.request_id == "q2"),
            "{a:?}"
        );
    }
}

#[test]
fn a_turn_the_process_refused_goes_elsewhere_and_the_process_takes_nothing_more() {
    let t0 = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(2, 2, 0, 4), t0);
    let (r, _rx) = request("r", &key);
    let Some(Action::Dispatch {
        process,
        turn,
        request,
        ..
    }) = book.submit(r, t0).pop()
    else {
        panic!("dispatched")
    };
    // The process was retiring itself; its report had not reached the book yet.
    let actions = book.turn_refused(process, turn, request, t0);
    assert!(matches!(actions[0], Action::Retire { process: p } if p == process));
    let again = dispatched_to(&actions).expect("placed again");
    assert_ne!(again, process);
    assert!(book.processes[&process].retiring);
}
