//! The normal form and matching of parked conversations, with plain values.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use crate::limits::{Client, ClientId};
use crate::protocol::{PoolKey, RequestMeta, TurnSpec};

fn park(transcript: Transcript, answer: &[Block]) -> Parked {
    let now = Instant::now();
    Parked {
        conversation: 1,
        transcript: Some(transcript.answered(answer)),
        awaiting_tools: Parked::tool_calls_of(answer),
        turns: 1,
        born: now,
        parked_at: now,
    }
}

fn request(client: &str, history: Vec<(Role, Value)>, prompt: Value) -> TurnRequest {
    let meta = RequestMeta::for_client(Arc::new(Client {
        id: ClientId::named(client),
        ..Client::default()
    }));
    TurnSpec {
        request_id: "r".into(),
        pool: PoolKey::default_pool(),
        system_prompt: String::new(),
        stop_sequences: Vec::new(),
        output_schema: None,
        cli_model: "m".into(),
        history: history
            .into_iter()
            .map(|(role, content)| ChatMessage { role, content })
            .collect(),
        prompt,
        tools: Vec::new(),
    }
    .with_events(mpsc::unbounded_channel().0, Arc::new(meta))
}

#[test]
fn the_answer_resent_in_any_shape_continues_the_conversation() {
    let first = Lookup::of(&request("a", vec![], json!("hi")));
    assert!(!first.has_history(), "a first turn continues nothing");
    let parked = park(
        first.sent,
        &[Block::Text("hel".into()), Block::Text("lo".into())],
    );
    for answer in [
        json!("hello"),
        json!([{"type": "text", "text": "hello", "citations": null}]),
        json!([{"type": "text", "text": "he"}, {"type": "text", "text": "llo"}]),
    ] {
        let next = request(
            "a",
            vec![
                (Role::User, json!([{"type": "text", "text": "hi"}])),
                (Role::Assistant, answer.clone()),
            ],
            json!("and then?"),
        );
        assert!(Lookup::of(&next).continues(&parked), "{answer}");
    }
}

#[test]
fn an_edit_another_client_or_model_is_a_miss() {
    let parked = park(
        Lookup::of(&request("a", vec![], json!("hi"))).sent,
        &[Block::Text("hello".into())],
    );
    let follow_up = |client: &str, first: &str, answer: &str| {
        request(
            client,
            vec![(Role::User, json!(first)), (Role::Assistant, json!(answer))],
            json!("next"),
        )
    };
    assert!(Lookup::of(&follow_up("a", "hi", "hello")).continues(&parked));
    assert!(!Lookup::of(&follow_up("b", "hi", "hello")).continues(&parked));
    assert!(!Lookup::of(&follow_up("a", "hi!", "hello")).continues(&parked));
    assert!(!Lookup::of(&follow_up("a", "hi", "hello.")).continues(&parked));
    let mut other_model = follow_up("a", "hi", "hello");
    other_model.cli_model = "other".into();
    assert!(!Lookup::of(&other_model).continues(&parked));
}

#[test]
fn several_new_user_messages_are_all_new() {
    let parked = park(
        Lookup::of(&request("a", vec![], json!("hi"))).sent,
        &[Block::Text("hello".into())],
    );
    let next = request(
        "a",
        vec![
            (Role::User, json!("hi")),
            (Role::Assistant, json!("hello")),
            (Role::User, json!("one")),
        ],
        json!("two"),
    );
    let lookup = Lookup::of(&next);
    assert!(lookup.continues(&parked));
    assert_eq!(lookup.new_messages(), 2);
}

#[test]
fn a_turn_waiting_on_tools_continues_only_with_exactly_their_results() {
    let tool = |id: &str| Block::ToolUse {
        id: id.into(),
        name: "get_weather".into(),
        input: json!({"city": id}),
    };
    let parked = park(
        Lookup::of(&request("a", vec![], json!("weather?"))).sent,
        &[Block::Text("".into()), tool("t1"), tool("t2")],
    );
    assert_eq!(parked.awaiting_tools, ["t1", "t2"]);
    let resent = json!([
        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "t1"}},
        {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "t2"}},
    ]);
    let result = |id: &str| json!({"type": "tool_result", "tool_use_id": id, "content": "sunny"});
    let follow_up = |prompt: Value| {
        Lookup::of(&request(
            "a",
            vec![
                (Role::User, json!("weather?")),
                (Role::Assistant, resent.clone()),
            ],
            prompt,
        ))
    };
    assert!(follow_up(json!([result("t2"), result("t1")])).continues(&parked));
    assert!(
        !follow_up(json!([result("t1")])).continues(&parked),
        "one result missing"
    );
    let with_text = json!([result("t1"), result("t2"), {"type": "text", "text": "and?"}]);
    assert!(
        !follow_up(with_text).continues(&parked),
        "text the calls cannot carry"
    );
    assert!(!follow_up(json!("never mind")).continues(&parked));
}

#[test]
fn tool_results_compare_by_meaning() {
    let a = normal_form(
        Role::User,
        &json!([{"type": "tool_result", "tool_use_id": "t", "content": "ok", "is_error": false, "cache_control": {"type": "ephemeral"}}]),
    );
    let b = normal_form(
        Role::User,
        &json!([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "ok"}]}]),
    );
    assert_eq!(a, b);
}
