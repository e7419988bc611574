//! The book's parking policy with plain values: a follow-up goes to the process holding its
//! conversation, a new conversation takes a roomy slot or forgets the parked one cheapest to lose,
//! a follow-up that overtakes its turn's report waits for it, and a turn parked on client
//! tool calls is forgotten after `tool_result_timeout_secs`.

use serde_json::json;

use super::*;
use crate::process::{Seat, TurnId, TurnReport};
use crate::protocol::{Block, ChatMessage, Role};
use crate::supervisor::pool::tests::{limits, ok_report, request};

fn seat_of(actions: &[Action]) -> Option<(u64, TurnId, Seat)> {
    actions.iter().find_map(|a| match a {
        Action::Dispatch {
            process,
            turn,
            seat,
            ..
        } => Some((*process, *turn, seat.clone())),
        _ => None,
    })
}

/// A book of ready processes with `slots` conversation slots each.
fn book_of(processes: usize, slots: usize, now: Instant) -> Book {
    let mut l = limits(processes, processes, 0, 8);
    l.reuse_wait_ms = 0;
    l.max_turns_per_process = 100;
    let mut book = Book::new(l);
    book.capacity.insert(crate::config::Backend::Claude, slots);
    for a in book.rebalance(now) {
        if let Action::Spawn { process, .. } = a {
            book.state_changed(process, crate::process::Lifecycle::Ready, now);
        }
    }
    book
}

/// A chat's request: `turns` earlier user/assistant pairs (`q0`/`a0`, …), then `prompt`. Its
/// client stays connected for the test's life (a request whose client is gone is dropped from
/// the queue).
fn chat_request(turns: usize, prompt: &str) -> TurnRequest {
    let (mut r, rx) = request(prompt, &PoolKey::default_pool());
    std::mem::forget(rx);
    for i in 0..turns {
        r.history.push(ChatMessage {
            role: Role::User,
            content: json!(format!("q{i}")),
        });
        r.history.push(ChatMessage {
            role: Role::Assistant,
            content: json!(format!("a{i}")),
        });
    }
    r.prompt = json!(prompt);
    r
}

fn answered(text: &str) -> TurnReport {
    TurnReport {
        answer: Some(vec![Block::Text(text.into())]),
        ..ok_report()
    }
}

/// Runs turn `n` of the chat (`q<n>`, answered `a<n>`) to a kept end; returns its process.
fn run_kept(book: &mut Book, n: usize, at: Instant) -> (u64, Seat) {
    let (id, turn, seat) =
        seat_of(&book.submit(chat_request(n, &format!("q{n}")), at)).expect("dispatched");
    book.turn_finished(id, turn, &answered(&format!("a{n}")), (true, true), at);
    (id, seat)
}

#[test]
fn a_follow_up_resumes_where_its_conversation_is_parked() {
    let t0 = Instant::now();
    let mut book = book_of(2, 1, t0);
    let (p, first) = run_kept(&mut book, 0, t0);
    assert!(first.keep && !first.resume);
    assert_eq!(book.processes[&p].parked.len(), 1);
    let (p2, second) = run_kept(&mut book, 1, t0);
    assert_eq!(p2, p, "the process holding the conversation");
    assert!(second.resume);
    assert_eq!(second.conversation, first.conversation);
    let pool = &book.pools[&PoolKey::default_pool()];
    assert_eq!(
        (
            pool.stats.counters.conversation_hits,
            pool.stats.counters.conversation_misses
        ),
        (1, 0)
    );
    assert_eq!(book.processes[&p].parked[0].turns, 2);
}

#[test]
fn only_the_new_messages_go_to_the_process() {
    let t0 = Instant::now();
    let mut book = book_of(1, 1, t0);
    run_kept(&mut book, 0, t0);
    let mut follow_up = chat_request(1, "q1b");
    follow_up.history.push(ChatMessage {
        role: Role::User,
        content: json!("q1a"),
    });
    let Some(Action::Dispatch { request, seat, .. }) = book.submit(follow_up, t0).pop() else {
        panic!("dispatched")
    };
    assert!(seat.resume);
    assert_eq!(request.history.len(), 1, "only the extra new user message");
    assert_eq!(request.history[0].content, json!("q1a"));
}

#[test]
fn a_new_conversation_forgets_the_least_recently_used_parked_one_when_no_slot_is_roomy() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut book = book_of(1, 2, t0);
    let (p, older) = run_kept(&mut book, 0, ms(1));
    let (_, newer) = {
        let (id, turn, seat) = seat_of(&book.submit(chat_request(0, "other"), ms(2))).expect("d");
        book.turn_finished(id, turn, &answered("x"), (true, true), ms(2));
        (id, seat)
    };
    assert_eq!(book.processes[&p].parked.len(), 2, "two slots, two parked");
    let (_, _, third) = seat_of(&book.submit(chat_request(0, "third"), ms(3))).expect("d");
    assert_eq!(
        third.forget,
        [older.conversation],
        "the least recently used"
    );
    assert_eq!(
        book.processes[&p].parked[0].conversation,
        newer.conversation
    );
    assert_eq!(book.processes[&p].resets, 1);
}

#[test]
fn a_follow_up_that_overtakes_its_turns_report_waits_for_it() {
    let t0 = Instant::now();
    let mut book = book_of(2, 1, t0);
    let (p, turn, _) = seat_of(&book.submit(chat_request(0, "q0"), t0)).expect("d");
    // The client has its answer and sends the follow-up before the process reported the end.
    let a = book.submit(chat_request(1, "q1"), t0);
    assert!(
        matches!(
            a.as_slice(),
            [Action::Queued { .. }, Action::Recheck { .. }]
        ),
        "waits instead of taking the other, idle process: {a:?}"
    );
    let a = book.turn_finished(p, turn, &answered("a0"), (true, true), t0);
    let (p2, _, seat) = seat_of(&a).expect("dispatched once the turn is parked");
    assert_eq!(p2, p);
    assert!(seat.resume);
}

#[test]
fn a_turn_parked_on_tool_calls_is_forgotten_after_the_timeout() {
    let t0 = Instant::now();
    let mut book = book_of(1, 1, t0);
    let (id, turn, seat) = seat_of(&book.submit(chat_request(0, "weather?"), t0)).expect("d");
    let tool_use = TurnReport {
        answer: Some(vec![Block::ToolUse {
            id: "toolu_1".into(),
            name: "get_weather".into(),
            input: json!({}),
        }]),
        ..ok_report()
    };
    book.turn_finished(id, turn, &tool_use, (true, true), t0);
    assert_eq!(book.processes[&id].parked[0].awaiting_tools, ["toolu_1"]);
    let timeout = Duration::from_secs(book.limits.tool_result_timeout_secs);
    let early = book.housekeeping(t0 + timeout / 2);
    assert!(!early.iter().any(|a| matches!(a, Action::Forget { .. })));
    let late = book.housekeeping(t0 + timeout);
    assert!(
        late.iter()
            .any(|a| matches!(a, Action::Forget { process, conversation }
            if *process == id && *conversation == seat.conversation)),
        "{late:?}"
    );
    assert!(book.processes[&id].parked.is_empty());
}

#[test]
fn a_held_follow_up_is_not_given_a_slot_meant_for_another() {
    let t0 = Instant::now();
    let mut book = book_of(1, 2, t0);
    // Two chats of one client run their first turns in the one process's two slots.
    let (p, x, _) = seat_of(&book.submit(chat_request(0, "q0"), t0)).expect("x");
    let mut y_first = chat_request(0, "y0");
    y_first.prompt = json!("y0");
    let (_, y, _) = seat_of(&book.submit(y_first, t0)).expect("y");
    // Both follow-ups overtake their turns' reports: both held.
    let mut y_next = chat_request(0, "y1");
    y_next.history = vec![
        ChatMessage {
            role: Role::User,
            content: json!("y0"),
        },
        ChatMessage {
            role: Role::Assistant,
            content: json!("b0"),
        },
    ];
    book.submit(y_next, t0);
    book.submit(chat_request(1, "q1"), t0);
    // X's turn ends first: only X's follow-up may take the slot, though Y's waited longer.
    let a = book.turn_finished(p, x, &answered("a0"), (true, true), t0);
    let (_, _, seat) = seat_of(&a).expect("x's follow-up");
    assert!(seat.resume, "x continued: {a:?}");
    let a = book.turn_finished(p, y, &answered("b0"), (true, true), t0);
    let (_, _, seat) = seat_of(&a).expect("y's follow-up");
    assert!(seat.resume, "y continued: {a:?}");
    let counters = &book.pools[&PoolKey::default_pool()].stats.counters;
    assert_eq!(
        (counters.conversation_hits, counters.conversation_misses),
        (2, 0)
    );
}

#[test]
fn a_held_follow_up_starts_no_process() {
    let t0 = Instant::now();
    let mut book = book_of(1, 1, t0);
    book.limits.max_processes = 2;
    book.limits.min_idle = 0;
    let (p, turn, _) = seat_of(&book.submit(chat_request(0, "q0"), t0)).expect("d");
    book.submit(chat_request(1, "q1"), t0);
    let spawns = |a: &[Action]| {
        a.iter()
            .filter(|a| matches!(a, Action::Spawn { .. }))
            .count()
    };
    assert_eq!(
        spawns(&book.rebalance(t0)),
        0,
        "it waits for its own process"
    );
    // Past its wait it is an ordinary waiting request, which may have a process started.
    let late = t0 + Duration::from_secs(2);
    let a = book.assign(&PoolKey::default_pool(), late);
    assert!(seat_of(&a).is_none());
    assert_eq!(spawns(&book.rebalance(late)), 1);
    book.turn_finished(p, turn, &answered("a0"), (true, true), late);
}

#[test]
fn a_deep_conversation_outlives_one_shot_requests_which_stay_on_the_warm_process() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut book = book_of(2, 1, t0);
    // A chat of three turns on one process, then a one-shot request on the other.
    let (chat, _) = run_kept(&mut book, 0, ms(1));
    run_kept(&mut book, 1, ms(2));
    run_kept(&mut book, 2, ms(3));
    let (one_shot, _) = {
        let (id, turn, seat) = seat_of(&book.submit(chat_request(0, "x0"), ms(4))).expect("d");
        book.turn_finished(id, turn, &answered("y"), (true, true), ms(4));
        (id, seat)
    };
    assert_ne!(one_shot, chat, "the other process had room");
    // More one-shot requests: each takes the place of the cheapest parked conversation, the
    // one-shot one, on the process that just served — never the chat's.
    for i in 1..4 {
        let (id, turn, seat) =
            seat_of(&book.submit(chat_request(0, &format!("x{i}")), ms(5 + i))).expect("d");
        assert_eq!(id, one_shot, "request {i}");
        assert_eq!(seat.forget.len(), 1);
        book.turn_finished(id, turn, &answered("y"), (true, true), ms(5 + i));
    }
    let (id, _) = run_kept(&mut book, 3, ms(10));
    assert_eq!(id, chat, "the chat is still parked and continues");
}

#[test]
fn a_turn_waiting_on_tool_calls_is_the_last_to_give_way() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut book = book_of(2, 1, t0);
    // A tool turn (two messages) parked first, then a deeper plain chat on the other process.
    let (tools_at, turn, _) = seat_of(&book.submit(chat_request(0, "weather?"), ms(1))).expect("d");
    let tool_use = TurnReport {
        answer: Some(vec![Block::ToolUse {
            id: "toolu_1".into(),
            name: "get_weather".into(),
            input: json!({}),
        }]),
        ..ok_report()
    };
    book.turn_finished(tools_at, turn, &tool_use, (true, true), ms(1));
    run_kept(&mut book, 0, ms(2));
    let (chat_at, _) = run_kept(&mut book, 1, ms(3));
    assert_ne!(chat_at, tools_at);
    let (id, _, seat) = seat_of(&book.submit(chat_request(0, "new"), ms(4))).expect("d");
    assert_eq!(id, chat_at, "the chat gives way, though deeper");
    assert_eq!(seat.forget.len(), 1);
}
