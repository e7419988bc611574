//! Kept conversations in the Codex driver, as plain lines: a clean turn that asked to be kept
//! leaves its thread loaded, a turn that resumes it injects only its new messages and starts on
//! that thread, `forget` deletes it, and a resumed turn that fails deletes it as any other.

use serde_json::{json, Value};

use super::tests::{completed, delta, events, input, ok, ready, started};
use super::*;
use crate::process::driver::test_lines::{feed, lines as sent};
use crate::protocol::{ChatMessage, Role};

fn of(conversation: ConversationId, resume: bool, prompt: &str) -> TurnInput {
    TurnInput {
        conversation,
        resume,
        keep: true,
        ..input("", Vec::new(), json!(prompt))
    }
}

/// Runs `turn` of conversation 7 on a new thread `thread` to a clean end; returns the outbox
/// of its `turn/completed`.
fn kept(d: &mut CodexDriver, turn: TurnId, thread: &str) -> Outbox {
    let turn_start = started(d, turn, thread, of(7, false, "q1"));
    assert_eq!(turn_start["method"], "turn/start");
    feed(d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    feed(d, delta(thread, "a1"));
    feed(d, completed(thread, "completed", "a1"))
}

/// Begins a resumed turn of conversation 7 with `history`; returns the lines it sent.
fn resume(d: &mut CodexDriver, turn: TurnId, history: Vec<ChatMessage>) -> Vec<Value> {
    let mut out = Outbox::default();
    let mut input = of(7, true, "q2");
    input.history = history;
    d.begin(turn, input, &mut out);
    sent(&out)
}

#[test]
fn a_clean_turn_that_asked_keeps_its_thread() {
    let mut d = ready();
    let out = kept(&mut d, 1, "T1");
    assert_eq!(
        events(&out),
        [
            "1:BlockStopped",
            "1:done a1 (0 in, 0 out)",
            "Kept { turn: 1 }"
        ]
    );
    assert!(out.lines.is_empty(), "no thread/delete: {:?}", out.lines);
}

#[test]
fn a_resumed_turn_starts_on_the_kept_thread_with_only_the_new_messages() {
    let mut d = ready();
    kept(&mut d, 1, "T1");
    let lines = resume(&mut d, 2, Vec::new());
    assert_eq!(lines.len(), 1, "no thread/start, no injection: {lines:?}");
    assert_eq!(lines[0]["method"], "turn/start");
    assert_eq!(lines[0]["params"]["threadId"], "T1");
    assert_eq!(lines[0]["params"]["model"], "gpt-5");
    let turn_start = lines[0].clone();
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    let out = feed(&mut d, delta("T1", "a2"));
    assert_eq!(events(&out), ["2:BlockStarted(Text)", "2:text a2"]);
    let out = feed(&mut d, completed("T1", "completed", "a2"));
    assert_eq!(events(&out)[2], "Kept { turn: 2 }");

    let extra = ChatMessage {
        role: Role::User,
        content: json!("also this"),
    };
    let lines = resume(&mut d, 3, vec![extra]);
    assert_eq!(lines[0]["method"], "thread/inject_items");
    assert_eq!(lines[0]["params"]["threadId"], "T1");
    assert_eq!(
        lines[0]["params"]["items"],
        json!([{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "also this"}]}])
    );
    let out = feed(&mut d, ok(&lines[0], json!({})));
    let turn_start = sent(&out).remove(0);
    assert_eq!(turn_start["method"], "turn/start");
    assert_eq!(turn_start["params"]["threadId"], "T1");
}

#[test]
fn forget_deletes_the_kept_thread_and_frees_its_room() {
    let mut d = CodexDriver::new(1, "BASE".into());
    let mut out = Outbox::default();
    d.bind("", None, &[], &mut out);
    let init = sent(&out).remove(0);
    feed(&mut d, ok(&init, json!({})));
    kept(&mut d, 1, "T1");

    let mut out = Outbox::default();
    d.begin(2, of(8, false, "other"), &mut out);
    assert!(
        events(&out)[0].contains("no free slot"),
        "{:?}",
        events(&out)
    );

    let mut out = Outbox::default();
    d.forget(7, &mut out);
    let delete = sent(&out).remove(0);
    assert_eq!(delete["method"], "thread/delete");
    assert_eq!(delete["params"]["threadId"], "T1");
    assert!(out.events.is_empty());
    let out = feed(&mut d, ok(&delete, json!({})));
    assert!(out.events.is_empty() && out.lines.is_empty());

    let mut out = Outbox::default();
    d.begin(3, of(8, false, "other"), &mut out);
    assert_eq!(sent(&out)[0]["method"], "thread/start");
}

#[test]
fn a_resumed_turn_that_fails_deletes_its_thread() {
    let mut d = ready();
    kept(&mut d, 1, "T1");
    let lines = resume(&mut d, 2, Vec::new());
    feed(&mut d, ok(&lines[0], json!({"turn": {"id": "ct"}})));
    let out = feed(&mut d, completed("T1", "failed", ""));
    assert!(
        events(&out)[0].starts_with("2:failed"),
        "{:?}",
        events(&out)
    );
    let delete = sent(&out).remove(0);
    assert_eq!(delete["method"], "thread/delete");
    assert_eq!(delete["params"]["threadId"], "T1");
    let out = feed(&mut d, ok(&delete, json!({})));
    assert_eq!(events(&out), ["Released { turn: 2, reusable: true }"]);
    // Gone: a later resume of it fails.
    let mut out = Outbox::default();
    d.begin(3, of(7, true, "q3"), &mut out);
    assert!(
        events(&out)[0].contains("no longer holds"),
        "{:?}",
        events(&out)
    );
}

#[test]
fn resuming_an_unknown_conversation_fails_without_answering() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, of(9, true, "q"), &mut out);
    assert!(out.lines.is_empty(), "{:?}", out.lines);
    assert_eq!(
        events(&out),
        [
            "1:failed backend codex is unavailable: the process no longer holds the conversation",
            "Released { turn: 1, reusable: true }"
        ]
    );
}

#[test]
fn an_interrupted_or_unkept_or_reasoning_turn_is_not_kept() {
    // Not asked to keep.
    let mut d = ready();
    let mut input = of(7, false, "q1");
    input.keep = false;
    let turn_start = started(&mut d, 1, "T1", input);
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    let out = feed(&mut d, completed("T1", "completed", "a1"));
    assert_eq!(sent(&out)[0]["method"], "thread/delete");

    // Interrupted.
    let turn_start = started(&mut d, 2, "T2", of(8, false, "q"));
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    d.interrupt(2, &mut Outbox::default());
    let out = feed(&mut d, completed("T2", "interrupted", ""));
    assert_eq!(sent(&out)[0]["method"], "thread/delete");

    // A reasoning item: the thread holds more than a replay would.
    let turn_start = started(&mut d, 3, "T3", of(9, false, "q"));
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    let line = json!({"method": "turn/completed", "params": {"threadId": "T3", "turn": {
        "id": "ct", "status": "completed", "error": null, "items": [
            {"type": "reasoning", "summary": []}, {"type": "agentMessage", "text": "a"}]}}});
    let out = feed(&mut d, line);
    assert!(events(&out).iter().any(|e| e == "3:done a (0 in, 0 out)"));
    assert_eq!(sent(&out)[0]["method"], "thread/delete");
}
