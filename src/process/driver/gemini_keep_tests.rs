//! Kept conversations in the Gemini driver, as plain lines: a clean turn that asked to be kept
//! keeps its session and chat files, a turn that resumes it prompts that session at once (its
//! new user messages first in the prompt), `forget` removes the chat files, and a resumed turn
//! that fails is dropped as any other.

use serde_json::{json, Value};

use super::tests::{answer, chunk, end_turn, input, line, ready, removal};
use super::*;
use crate::process::driver::test_lines::{feed, names};
use crate::protocol::{ChatMessage, Role};

const S1: &str = "abcdef12-s1";

fn of(conversation: ConversationId, resume: bool, prompt: &str) -> TurnInput {
    TurnInput {
        conversation,
        resume,
        keep: true,
        ..input("SYS", "m", Vec::new(), json!(prompt))
    }
}

/// Runs `turn` of conversation 7 on a new session `S1` to a clean end; returns the outbox of
/// the prompt's answer.
fn kept(d: &mut GeminiDriver, turn: TurnId) -> Outbox {
    let mut out = Outbox::default();
    d.begin(turn, of(7, false, "q1"), &mut out);
    let new = line(&out);
    let set = line(&feed(d, answer(&new, json!({"sessionId": S1}))));
    let prompt = line(&feed(d, answer(&set, json!({}))));
    feed(d, chunk(S1, "agent_message_chunk", "a1"));
    feed(d, end_turn(&prompt))
}

/// Answers a resumed turn's prompt `prompt` with `text`; returns the outbox of the answer.
fn answered(d: &mut GeminiDriver, prompt: &Value, text: &str) -> Outbox {
    feed(d, chunk(S1, "agent_message_chunk", text));
    feed(d, end_turn(prompt))
}

#[test]
fn a_clean_turn_that_asked_keeps_its_session_and_chat_files() {
    let mut d = ready(10);
    let out = kept(&mut d, 1);
    assert_eq!(
        names(&out),
        ["1:BlockStopped", "1:done a1", "Kept { turn: 1 }"]
    );
    assert!(out.files.is_empty(), "chat files kept: {:?}", out.files);
}

#[test]
fn a_resumed_turn_prompts_the_kept_session_with_only_the_new_messages() {
    let mut d = ready(10);
    kept(&mut d, 1);
    let mut out = Outbox::default();
    d.begin(2, of(7, true, "q2"), &mut out);
    assert!(
        out.files.is_empty(),
        "no system prompt file: {:?}",
        out.files
    );
    let prompt = line(&out);
    assert_eq!(
        prompt["params"],
        json!({"sessionId": S1, "prompt": [{"type": "text", "text": "q2"}]}),
        "no creation, the model already pinned"
    );
    let out = answered(&mut d, &prompt, "a2");
    assert_eq!(names(&out)[2], "Kept { turn: 2 }");

    let mut resumed = of(7, true, "q3");
    resumed.history = vec![ChatMessage {
        role: Role::User,
        content: json!("/also this"),
    }];
    let mut out = Outbox::default();
    d.begin(3, resumed, &mut out);
    let prompt = line(&out);
    assert_eq!(prompt["method"], "session/prompt");
    assert_eq!(
        prompt["params"]["prompt"],
        json!([{"type": "text", "text": "\u{200b}/also this"}, {"type": "text", "text": "q3"}]),
        "the new user messages lead the prompt (guarded as any prompt)"
    );
}

#[test]
fn a_resumed_turn_with_another_model_pins_it_first() {
    let mut d = ready(10);
    kept(&mut d, 1);
    let mut resumed = of(7, true, "q2");
    resumed.model = "other".into();
    let mut out = Outbox::default();
    d.begin(2, resumed, &mut out);
    let set = line(&out);
    assert_eq!(set["params"], json!({"sessionId": S1, "modelId": "other"}));
    let prompt = line(&feed(&mut d, answer(&set, json!({}))));
    assert_eq!(prompt["method"], "session/prompt");
}

#[test]
fn forget_removes_the_chat_files_and_frees_the_room() {
    let mut d = GeminiDriver::new(
        2,
        GeminiParams {
            conversations: 1,
            ..super::tests::params(10)
        },
    );
    let mut out = Outbox::default();
    d.bind("", None, &[], &mut out);
    feed(&mut d, answer(&line(&out), json!({})));
    kept(&mut d, 1);
    let mut out = Outbox::default();
    d.begin(2, of(8, false, "other"), &mut out);
    assert!(names(&out)[0].contains("no free slot"), "{:?}", names(&out));

    let mut out = Outbox::default();
    d.forget(7, &mut out);
    assert_eq!(out.files, [removal(S1)]);
    assert!(out.lines.is_empty() && out.events.is_empty());
    let mut out = Outbox::default();
    d.begin(3, of(8, false, "other"), &mut out);
    assert_eq!(line(&out)["method"], "session/new");
}

#[test]
fn a_resumed_turn_that_fails_drops_its_session() {
    let mut d = ready(10);
    kept(&mut d, 1);
    let mut out = Outbox::default();
    d.begin(2, of(7, true, "q2"), &mut out);
    let prompt = line(&out);
    let error = json!({"jsonrpc": "2.0", "id": prompt["id"],
        "error": {"code": 500, "message": "boom"}});
    let out = feed(&mut d, error);
    assert!(names(&out)[0].starts_with("2:failed"), "{:?}", names(&out));
    assert_eq!(names(&out)[1], "Released { turn: 2, reusable: true }");
    assert_eq!(out.files, [removal(S1)]);
    let mut out = Outbox::default();
    d.begin(3, of(7, true, "q3"), &mut out);
    assert!(
        names(&out)[0].contains("no longer holds"),
        "{:?}",
        names(&out)
    );
}

#[test]
fn resuming_an_unknown_conversation_fails_without_prompting() {
    let mut d = ready(10);
    let mut out = Outbox::default();
    d.begin(1, of(9, true, "q"), &mut out);
    assert!(out.lines.is_empty() && out.files.is_empty());
    assert_eq!(
        names(&out),
        [
            "1:failed backend gemini is unavailable: the process no longer holds the conversation",
            "Released { turn: 1, reusable: true }"
        ]
    );
}

#[test]
fn the_turn_that_reaches_the_session_limit_is_not_kept() {
    let mut d = ready(1);
    let out = kept(&mut d, 1);
    assert_eq!(names(&out)[2], "Released { turn: 1, reusable: false }");
    assert_eq!(out.files, [removal(S1)]);
}

#[test]
fn an_interrupted_turn_is_not_kept() {
    let mut d = ready(10);
    let mut out = Outbox::default();
    d.begin(1, of(7, false, "q1"), &mut out);
    let new = line(&out);
    let set = line(&feed(&mut d, answer(&new, json!({"sessionId": S1}))));
    let prompt = line(&feed(&mut d, answer(&set, json!({}))));
    d.interrupt(1, &mut Outbox::default());
    let out = feed(&mut d, answer(&prompt, json!({"stopReason": "cancelled"})));
    assert_eq!(
        names(&out).last().map(String::as_str),
        Some("Released { turn: 1, reusable: true }")
    );
    assert_eq!(out.files, [removal(S1)]);
}
