//! The Gemini driver's guards: upstream errors, the local-command escape, refused CLI
//! requests, the session limit, content it cannot send, and garbage on stdout.

use serde_json::{json, Value};

use super::*;
use crate::error::UpstreamKind;

#[test]
fn an_upstream_error_fails_the_turn_with_its_status() {
    let mut d = ready(10);
    let prompt = prompted(&mut d, 1, "eeeeeeee-1", json!("q"));
    let error = json!({"jsonrpc": "2.0", "id": prompt["id"],
        "error": {"code": 429, "message": "quota exhausted"}});
    let out = feed(&mut d, error);
    match &out.events[0] {
        DriverEvent::Turn {
            event:
                TurnEvent::Failed(ServeError::Upstream {
                    kind: UpstreamKind::RateLimited,
                    status: Some(429),
                    message,
                }),
            ..
        } => assert_eq!(message, "quota exhausted"),
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&out)[1], "Released { turn: 1, reusable: true }");
}

#[test]
fn prompts_that_look_like_local_commands_are_sent_as_text() {
    let sent = |prompt: Value| {
        let mut d = ready(10);
        let prompt = prompted(&mut d, 1, "ffffffff-1", prompt);
        prompt["params"]["prompt"][0]["text"].clone()
    };
    assert_eq!(sent(json!("  /memory show")), "\u{200b}  /memory show");
    assert_eq!(sent(json!("$help")), "\u{200b}$help");
    let split = json!([{"type": "text", "text": " "}, {"type": "text", "text": "/help"}]);
    assert_eq!(sent(split), "\u{200b} ");
    assert_eq!(sent(json!("please /memory show")), "please /memory show");
    let image_first = json!([{"type": "image", "source": {"type": "base64",
        "media_type": "image/png", "data": "AA"}}, {"type": "text", "text": "/help"}]);
    let mut d = ready(10);
    let prompt = prompted(&mut d, 1, "ffffffff-1", image_first);
    assert_eq!(prompt["params"]["prompt"][0]["type"], "image");
    assert_eq!(prompt["params"]["prompt"][1]["text"], "/help");
}

#[test]
fn cli_requests_are_refused_so_nothing_waits() {
    let mut d = ready(10);
    let ask = json!({"jsonrpc": "2.0", "id": 0, "method": "session/request_permission",
        "params": {"sessionId": "x", "options": [
            {"optionId": "proceed_once", "kind": "allow_once"},
            {"optionId": "cancel", "kind": "reject_once"}]}});
    let refused = line(&feed(&mut d, ask));
    assert_eq!(refused["id"], 0);
    assert_eq!(
        refused["result"],
        json!({"outcome": {"outcome": "selected", "optionId": "cancel"}})
    );
    let read = json!({"jsonrpc": "2.0", "id": 1, "method": "fs/read_text_file", "params": {}});
    assert_eq!(line(&feed(&mut d, read))["error"]["code"], -32601);
}

#[test]
fn the_turn_that_reaches_the_session_limit_is_not_reusable() {
    let mut d = ready(2);
    let prompt = prompted(&mut d, 1, "11111111-1", json!("q"));
    assert_eq!(
        names(&feed(&mut d, end_turn(&prompt)))[1],
        "Released { turn: 1, reusable: true }"
    );
    let prompt = prompted(&mut d, 2, "22222222-2", json!("q"));
    assert_eq!(
        names(&feed(&mut d, end_turn(&prompt)))[1],
        "Released { turn: 2, reusable: false }"
    );
}

#[test]
fn unusable_content_fails_at_once_and_garbage_is_a_violation() {
    let mut d = ready(10);
    let mut out = Outbox::default();
    let url = json!([{"type": "image", "source": {"type": "url", "url": "https://x"}}]);
    d.begin(1, input("", "m", Vec::new(), url), &mut out);
    assert!(out.lines.is_empty());
    assert!(names(&out)[0].starts_with("1:failed"), "{:?}", names(&out));
    let mut out = Outbox::default();
    d.on_line("Loading... 50%", &mut out);
    assert!(matches!(out.events[0], DriverEvent::Violation(_)));
}
