use super::*;
use crate::config::Settings;
use crate::process::Lifecycle;
use crate::protocol::RequestMeta;
use crate::protocol::TurnEvent;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(crate) fn limits(
    max_processes: usize,
    min_idle: usize,
    spares: usize,
    max_queue: usize,
) -> PoolSettings {
    let mut p = Settings::load(None).expect("defaults").pool;
    p.max_processes = max_processes;
    p.min_idle = min_idle;
    p.spare_processes = spares;
    p.max_queue = max_queue;
    p.max_total_processes = 4;
    p.max_turns_per_process = 3;
    p
}

pub(crate) fn request(
    id: &str,
    pool: &PoolKey,
) -> (TurnRequest, mpsc::UnboundedReceiver<TurnEvent>) {
    request_of(id, pool, Arc::default())
}

/// A request of `client` (with its limits).
pub(crate) fn request_of(
    id: &str,
    pool: &PoolKey,
    client: Arc<crate::limits::Client>,
) -> (TurnRequest, mpsc::UnboundedReceiver<TurnEvent>) {
    let (events, rx) = mpsc::unbounded_channel();
    let req = TurnRequest {
        meta: Arc::new(RequestMeta::for_client(client)),
        submitted: Instant::now(),
        request_id: id.into(),
        pool: pool.clone(),
        system_prompt: pool.system_prompt.clone(),
        stop_sequences: Vec::new(),
        output_schema: None,
        cli_model: "sonnet".into(),
        history: vec![],
        prompt: serde_json::json!("hi"),
        events,
        tools: Vec::new(),
    };
    (req, rx)
}

pub(crate) fn ok_report() -> crate::process::TurnReport {
    crate::process::TurnReport {
        request_id: "r".into(),
        end: crate::process::TurnEnd::Ok,
        duration: Duration::from_millis(20),
        time_to_first_token: None,
        model: "sonnet".into(),
        usage: None,
        cost_usd: 0.0,
        error: None,
        answer: None,
    }
}

pub(crate) fn spawned(actions: &[Action]) -> Vec<(u64, Option<PoolKey>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn { process, pool, .. } => Some((*process, pool.clone())),
            _ => None,
        })
        .collect()
}

/// Starts the book and brings every spawned process to idle.
pub(crate) fn warm_book(l: PoolSettings, now: Instant) -> Book {
    let mut book = Book::new(l);
    for (id, pool) in spawned(&book.rebalance(now)) {
        book.started(id, 100 + id as u32);
        if pool.is_some() {
            book.state_changed(id, Lifecycle::Ready, now);
        }
    }
    book
}

#[test]
fn startup_fills_min_idle_and_spares() {
    let now = Instant::now();
    let mut book = Book::new(limits(2, 1, 1, 4));
    let s = spawned(&book.rebalance(now));
    assert_eq!(s.len(), 2);
    assert_eq!(
        s.iter().filter(|(_, p)| p.is_none()).count(),
        1,
        "one spare"
    );
    assert_eq!(
        s.iter()
            .filter(|(_, p)| p.as_ref() == Some(&PoolKey::default_pool()))
            .count(),
        1
    );
    assert!(
        book.rebalance(now).is_empty(),
        "nothing more to start while those start"
    );
}

#[test]
fn idle_process_gets_request_then_others_queue_then_refused() {
    let now = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(1, 1, 0, 1), now);
    let (r1, _rx1) = request("r1", &key);
    let a = book.submit(r1, now);
    assert!(matches!(a.as_slice(), [Action::Dispatch { .. }]), "{a:?}");

    let (r2, _rx2) = request("r2", &key);
    let a = book.submit(r2, now);
    assert!(
        matches!(a.as_slice(), [Action::Queued { .. }]),
        "queued, no spawn past max: {a:?}"
    );

    let (r3, _rx3) = request("r3", &key);
    let a = book.submit(r3, now);
    match a.as_slice() {
        [Action::Fail {
            error:
                ServeError::PoolSaturated {
                    queued: 1,
                    processes: 1,
                    ..
                },
            ..
        }] => {}
        other => panic!("expected saturation, got {other:?}"),
    }
    assert_eq!(book.pools[&key].stats.counters.refused, 1);
}

#[test]
fn finished_process_takes_the_next_waiting_request() {
    let now = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(1, 1, 0, 4), now);
    let (r1, _rx1) = request("r1", &key);
    let (r2, _rx2) = request("r2", &key);
    let (busy, turn) = match book.submit(r1, now).pop() {
        Some(Action::Dispatch { process, turn, .. }) => (process, turn),
        other => panic!("{other:?}"),
    };
    book.submit(r2, now);
    let a = book.turn_finished(busy, turn, &ok_report(), (true, false), now);
    match a.as_slice() {
        [Action::Dispatch {
            process, request, ..
        }] => {
            assert_eq!(*process, busy);
            assert_eq!(request.request_id, "r2");
        }
        other => panic!("{other:?}"),
    }
    let running: Vec<&str> = book.processes[&busy]
        .running()
        .map(|(_, o)| o.request_id.as_str())
        .collect();
    assert_eq!(running, ["r2"]);
}

#[test]
fn waiting_requests_of_a_dropped_client_are_skipped() {
    let now = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(1, 1, 0, 4), now);
    let (r1, _rx1) = request("r1", &key);
    let (busy, turn) = match book.submit(r1, now).pop() {
        Some(Action::Dispatch { process, turn, .. }) => (process, turn),
        other => panic!("{other:?}"),
    };
    let (r2, rx2) = request("r2", &key);
    book.submit(r2, now);
    drop(rx2);
    assert!(book
        .turn_finished(busy, turn, &ok_report(), (true, false), now)
        .is_empty());
}

#[test]
fn new_system_prompt_binds_a_spare_then_spawns_within_limits() {
    let now = Instant::now();
    let mut book = warm_book(limits(2, 1, 1, 4), now);
    let spare = book.find(|s| s.pool.is_none()).expect("a spare");
    let key = PoolKey::chat(Backend::Claude, "You are terse.".into());
    let (r1, _rx1) = request("r1", &key);
    let a = book.submit(r1, now);
    assert!(
        a.iter().any(
            |x| matches!(x, Action::Bind { process, pool } if *process == spare && *pool == key)
        ),
        "{a:?}"
    );
    assert!(
        spawned(&a).iter().any(|(_, p)| p.is_none()),
        "the spare is replaced: {a:?}"
    );

    let (r2, _rx2) = request("r2", &key);
    let a = book.submit(r2, now);
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Bind { pool, .. } if *pool == key)),
        "the replacement spare, already starting, is bound too: {a:?}"
    );
    let (r3, _rx3) = request("r3", &key);
    let a = book.submit(r3, now);
    assert!(spawned(&a).is_empty(), "max_processes=2 reached: {a:?}");
    assert_eq!(book.live_in(&key), 2);
}

#[test]
fn full_server_retires_an_idle_process_of_another_pool() {
    let now = Instant::now();
    let mut l = limits(4, 4, 0, 4);
    l.max_total_processes = 4;
    let mut book = warm_book(l, now);
    assert_eq!(book.processes.len(), 4);
    let key = PoolKey::chat(Backend::Claude, "other".into());
    let (r1, _rx1) = request("r1", &key);
    let a = book.submit(r1, now);
    assert!(
        a.iter().any(|x| matches!(x, Action::Retire { .. })),
        "{a:?}"
    );
    assert!(
        spawned(&a).is_empty(),
        "never more than max_total_processes"
    );
}

#[test]
fn process_is_recycled_after_max_turns() {
    let now = Instant::now();
    let mut book = warm_book(limits(1, 1, 0, 4), now);
    let id = *book.processes.keys().next().expect("one process");
    assert!(book
        .turn_finished(id, 1, &ok_report(), (true, false), now)
        .is_empty());
    assert!(book
        .turn_finished(id, 2, &ok_report(), (true, false), now)
        .is_empty());
    let a = book.turn_finished(id, 3, &ok_report(), (true, false), now);
    assert!(
        matches!(a.as_slice(), [Action::Retire { process }, Action::Spawn { .. }] if *process == id),
        "retired, and min_idle starts its replacement at once: {a:?}"
    );
    assert!(
        book.state_changed(id, Lifecycle::Ready, now)
            .iter()
            .all(|a| !matches!(a, Action::Dispatch { .. })),
        "a retiring process gets no work"
    );
}

#[test]
fn queue_timeout_refuses_only_still_waiting_tickets() {
    let now = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(1, 1, 0, 4), now);
    let (r1, _rx1) = request("r1", &key);
    book.submit(r1, now);
    let (r2, _rx2) = request("r2", &key);
    let ticket = book
        .submit(r2, now)
        .iter()
        .find_map(|a| match a {
            Action::Queued { ticket, .. } => Some(*ticket),
            _ => None,
        })
        .expect("queued");
    let later = now + Duration::from_secs(5);
    match book.expire(&key, ticket, later) {
        Some(Action::Fail {
            error: ServeError::QueueTimedOut { waited, .. },
            ..
        }) => {
            assert_eq!(waited, Duration::from_secs(5))
        }
        other => panic!("{other:?}"),
    }
    assert!(book.expire(&key, ticket, later).is_none(), "only once");
}

#[test]
fn a_process_that_never_became_ready_fails_its_pools_waiters() {
    let now = Instant::now();
    let key = PoolKey::chat(Backend::Claude, "s".into());
    let mut book = Book::new(limits(1, 0, 0, 4));
    let (r1, _rx1) = request("r1", &key);
    let a = book.submit(r1, now);
    let (id, _) = spawned(&a)[0].clone();
    let a = book.exited(id, false, "exit status: 1: bad flag", now);
    match a.as_slice() {
        [Action::Fail {
            error: ServeError::BackendUnavailable { reason, .. },
            ..
        }, ..] => {
            assert!(reason.contains("bad flag"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        book.refill_paused_until.is_some(),
        "refills back off after a failed start"
    );
}

#[test]
fn housekeeping_keeps_min_idle_and_retires_idle_custom_pools() {
    let now = Instant::now();
    let mut book = warm_book(limits(2, 1, 0, 4), now);
    let key = PoolKey::chat(Backend::Claude, "s".into());
    let (r1, _rx1) = request("r1", &key);
    let (id, _) = spawned(&book.submit(r1, now))[0].clone();
    let a = book.state_changed(id, Lifecycle::Ready, now);
    let turn = match a.as_slice() {
        [Action::Dispatch { turn, .. }] => *turn,
        _ => panic!("ready: takes the queued r1: {a:?}"),
    };
    book.turn_finished(id, turn, &ok_report(), (true, false), now);
    let later = now + Duration::from_secs(book.limits.idle_timeout_secs + 1);
    let a = book.housekeeping(later);
    let retired: Vec<u64> = a
        .iter()
        .filter_map(|x| match x {
            Action::Retire { process } => Some(*process),
            _ => None,
        })
        .collect();
    assert_eq!(retired, vec![id], "only the custom pool's idle process");
}

#[test]
fn exits_refill_min_idle_but_not_when_refills_are_off() {
    let now = Instant::now();
    let mut book = warm_book(limits(2, 1, 0, 4), now);
    let id = *book.processes.keys().next().expect("one");
    assert_eq!(
        spawned(&book.exited(id, true, "", now)).len(),
        1,
        "min_idle is refilled"
    );
    book.limits.min_idle = 0;
    let ids: Vec<u64> = book.processes.keys().copied().collect();
    for id in ids {
        assert!(book.exited(id, true, "", now).is_empty());
    }
    assert!(book.processes.is_empty(), "shutdown can complete");
}

#[test]
fn drain_refuses_the_queue_and_new_requests_until_resumed() {
    let now = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(1, 1, 0, 4), now);
    let (r1, _rx1) = request("r1", &key);
    book.submit(r1, now);
    let (r2, _rx2) = request("r2", &key);
    book.submit(r2, now);
    let a = book.drain(&key, now);
    assert!(
        a.iter().any(|x| matches!(
            x,
            Action::Fail {
                error: ServeError::PoolDraining { .. },
                ..
            }
        )),
        "{a:?}"
    );
    assert!(
        a.iter().any(|x| matches!(x, Action::Retire { .. })),
        "{a:?}"
    );
    assert!(
        spawned(&a).is_empty(),
        "a draining pool starts nothing: {a:?}"
    );
    let (r3, _rx3) = request("r3", &key);
    assert!(matches!(
        book.submit(r3, now).as_slice(),
        [Action::Fail {
            error: ServeError::PoolDraining { .. },
            ..
        }]
    ));
    let ids: Vec<u64> = book.processes.keys().copied().collect();
    for id in ids {
        book.exited(id, true, "", now);
    }
    assert_eq!(
        spawned(&book.resume(&key, now)).len(),
        1,
        "min_idle again after resume"
    );
}

#[test]
fn resize_validates_and_applies_per_pool_limits() {
    let now = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(2, 1, 0, 4), now);
    assert!(book.resize(&key, Some(0), None, now).is_err());
    assert!(book.resize(&key, Some(2), Some(3), now).is_err());
    let a = book.resize(&key, Some(3), Some(3), now).expect("valid");
    assert_eq!(spawned(&a).len(), 2, "min_idle 3: two more: {a:?}");
    assert_eq!(book.max_for(&key), 3);
}

#[test]
fn cancel_removes_a_queued_request_or_interrupts_a_running_one() {
    let now = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = warm_book(limits(1, 1, 0, 4), now);
    let (r1, _rx1) = request("r1", &key);
    book.submit(r1, now);
    let (r2, _rx2) = request("r2", &key);
    book.submit(r2, now);
    assert!(matches!(
        book.cancel("r2"),
        Ok((Action::Fail { .. }, "queued"))
    ));
    assert!(matches!(
        book.cancel("r1"),
        Ok((Action::Interrupt { .. }, "running"))
    ));
    assert!(book.cancel("nope").is_err());
}

#[test]
fn shutdown_ignores_resized_min_idle_so_the_book_empties() {
    let now = Instant::now();
    let key = PoolKey::chat(Backend::Claude, "s".into());
    let mut book = warm_book(limits(3, 1, 0, 4), now);
    let a = book.resize(&key, Some(2), Some(2), now).expect("valid");
    for (id, _) in spawned(&a) {
        book.state_changed(id, Lifecycle::Ready, now);
    }
    assert!(book.shut_down().is_empty());
    let ids: Vec<u64> = book.processes.keys().copied().collect();
    for id in ids {
        assert!(
            spawned(&book.exited(id, true, "", now)).is_empty(),
            "no refill while shutting down"
        );
    }
    assert!(book.processes.is_empty());
}

#[test]
fn a_request_waits_for_capacity_still_starting_whatever_max_queue_says() {
    let now = Instant::now();
    let key = PoolKey::default_pool();
    let mut book = Book::new(limits(1, 1, 0, 0));
    let started = spawned(&book.rebalance(now));
    assert_eq!(book.unready_pools().len(), 1, "min_idle not warm yet");
    let (r1, _rx1) = request("r1", &key);
    let a = book.submit(r1, now);
    assert!(
        matches!(a.as_slice(), [Action::Queued { .. }]),
        "queued for the starting process, max_queue 0 notwithstanding: {a:?}"
    );
    let (id, _) = started[0].clone();
    let a = book.state_changed(id, Lifecycle::Ready, now);
    assert!(matches!(a.as_slice(), [Action::Dispatch { .. }]), "{a:?}");
    assert!(book.unready_pools().is_empty());
    // Once warm, max_queue holds again.
    let (r2, _rx2) = request("r2", &key);
    assert!(matches!(
        book.submit(r2, now).as_slice(),
        [Action::Fail {
            error: ServeError::PoolSaturated { .. },
            ..
        }]
    ));
}
