//! Kept conversations in the Claude Code driver, as plain lines: a clean turn that asked to be
//! kept is not rewound, a turn that resumes it sends only its new messages, and any other turn
//! (or one after `forget`) rewinds the whole conversation first.

use serde_json::{json, Value};

use super::tests::{control_ok, input, ready, result};
use super::*;
use crate::process::driver::test_lines::{feed, lines, names};
use crate::protocol::ChatMessage;
use crate::protocol::Role;

/// Runs a turn of `conversation` on `d` to a clean end; returns the prompt line and the outbox
/// of its result.
fn run(d: &mut ClaudeDriver, turn: TurnId, mut input: TurnInput) -> (Value, Outbox) {
    input.keep = true;
    let mut out = Outbox::default();
    d.begin(turn, input, &mut out);
    let prompt = lines(&out).pop().expect("the prompt");
    assert_eq!(prompt["type"], "user", "{prompt}");
    let answer = json!({"type": "assistant", "message": {"id": format!("m{turn}"),
        "content": [{"type": "text", "text": format!("a{turn}")}]}});
    feed(d, answer);
    let out = feed(
        d,
        result(&prompt["uuid"], json!({"stop_reason": "end_turn"})),
    );
    (prompt, out)
}

fn of(conversation: ConversationId, resume: bool, prompt: &str) -> TurnInput {
    TurnInput {
        conversation,
        resume,
        ..input("sonnet", Vec::new(), prompt)
    }
}

#[test]
fn a_kept_conversation_is_resumed_with_only_the_new_message() {
    let mut d = ready();
    let (first, out) = run(&mut d, 1, of(7, false, "q1"));
    assert_eq!(names(&out), ["1:done a1", "Kept { turn: 1 }"]);
    assert!(out.lines.is_empty(), "no rewind: {:?}", out.lines);

    let mut resumed = of(7, true, "q2");
    resumed.history = vec![ChatMessage {
        role: Role::User,
        content: json!("also this"),
    }];
    resumed.keep = true;
    let mut out = Outbox::default();
    d.begin(2, resumed, &mut out);
    let sent = lines(&out);
    assert_eq!(
        sent.len(),
        1,
        "only the new user message, no replay: {sent:?}"
    );
    assert_eq!(sent[0]["message"]["content"], "also this");
    assert_eq!(sent[0]["shouldQuery"], false);
    let out = feed(&mut d, result(&sent[0]["uuid"], json!({})));
    let prompt = lines(&out).remove(0);
    assert_eq!(prompt["message"]["content"], "q2");

    // Not kept this time (say, interrupted): the rewind empties the whole conversation.
    let mut out = Outbox::default();
    d.interrupt(2, &mut out);
    let out = feed(
        &mut d,
        result(
            &prompt["uuid"],
            json!({"subtype": "error_during_execution", "is_error": true}),
        ),
    );
    let rewind = lines(&out).remove(0);
    assert_eq!(rewind["request"]["target_message_uuid"], first["uuid"]);
    assert_eq!(
        rewind["request"]["last_seen_user_message_uuid"],
        prompt["uuid"]
    );
}

#[test]
fn another_conversation_rewinds_the_kept_one_before_anything_else() {
    let mut d = ready();
    let (first, _) = run(&mut d, 1, of(7, false, "q1"));
    let mut out = Outbox::default();
    d.begin(2, of(8, false, "other"), &mut out);
    let rewind = lines(&out).remove(0);
    assert_eq!(rewind["request"]["subtype"], "rewind_conversation");
    assert_eq!(rewind["request"]["target_message_uuid"], first["uuid"]);
    assert_eq!(
        out.lines.len(),
        1,
        "nothing else before the rewind is confirmed"
    );
    let out = feed(&mut d, control_ok(&rewind, json!({"rewound": true})));
    let prompt = lines(&out).remove(0);
    assert_eq!(prompt["message"]["content"], "other");
    assert_eq!(prompt["shouldQuery"], true);
}

#[test]
fn a_forgotten_conversation_is_rewound_by_the_next_turn_even_of_its_own_id() {
    let mut d = ready();
    run(&mut d, 1, of(7, false, "q1"));
    d.forget(7, &mut Outbox::default());
    let mut out = Outbox::default();
    d.begin(2, of(7, true, "q2"), &mut out);
    assert_eq!(
        names(&out),
        [
            "2:failed backend claude is unavailable: the process no longer holds the conversation",
            "Released { turn: 2, reusable: true }"
        ]
    );
    let mut out = Outbox::default();
    d.begin(3, of(9, false, "q3"), &mut out);
    assert_eq!(lines(&out)[0]["request"]["subtype"], "rewind_conversation");
}

#[test]
fn a_failed_rewind_before_a_turn_fails_it_and_retires_the_process() {
    let mut d = ready();
    run(&mut d, 1, of(7, false, "q1"));
    let mut out = Outbox::default();
    d.begin(2, of(8, false, "other"), &mut out);
    let rewind = lines(&out).remove(0);
    let out = feed(&mut d, control_ok(&rewind, json!({"rewound": false})));
    let names = names(&out);
    assert!(names[0].starts_with("2:failed"), "{names:?}");
    assert_eq!(names[1], "Released { turn: 2, reusable: false }");
}

#[test]
fn a_failed_turn_is_never_kept() {
    let mut d = ready();
    let mut out = Outbox::default();
    let mut keep = of(7, false, "q");
    keep.keep = true;
    d.begin(1, keep, &mut out);
    let prompt = lines(&out).remove(0);
    let out = feed(
        &mut d,
        result(
            &prompt["uuid"],
            json!({"is_error": true, "result": "API Error: 500"}),
        ),
    );
    assert_eq!(lines(&out)[0]["request"]["subtype"], "rewind_conversation");
}
