//! Protocol truth for client tools on Codex: the real CLI on the mock Responses upstream
//! (`TOOL:<name>:<json>` makes the mock call the tool). The upstream sees the client's tool
//! under its name and schema, and the follow-up's result reaches it as the call's
//! `function_call_output` — from the parked turn, or replayed into a new thread.

use serde_json::{json, Value};

use crate::real_codex::real_codex;
use crate::support::*;

fn ask(text: &str) -> Value {
    json!({"model": "gpt-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}],
        "tools": [{"name": "get_weather", "description": "Get the weather.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]}}]})
}

#[actix_rt::test]
async fn a_parked_tool_turn_on_the_real_codex_answers_the_call_upstream() {
    round_trip(true).await;
}

#[actix_rt::test]
async fn the_real_codex_takes_replayed_tool_history() {
    round_trip(false).await;
}

async fn round_trip(park: bool) {
    let server = real_codex(|s| s.pool.park_conversations = park).await;
    let t = format!("tok{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let text = format!(r#"weather {t} TOOL:get_weather:{{"city":"Paris"}}"#);
    let first = server.messages(ask(&text)).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.raw);
    let call = first.body["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
        .cloned()
        .expect("a tool_use block");
    assert_eq!(
        (&call["name"], &call["input"]),
        (&json!("get_weather"), &json!({"city": "Paris"}))
    );
    let upstream = responses_mock().bodies_with(&t);
    assert_eq!(upstream.len(), 1, "one upstream call so far");
    let tool = upstream[0]["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|x| x["name"] == "get_weather"))
        .cloned()
        .unwrap_or_else(|| panic!("advertised: {}", upstream[0]["tools"]));
    assert_eq!(tool["parameters"]["required"], json!(["city"]), "{tool}");

    let mut follow = ask(&text);
    follow["messages"] = json!([{"role": "user", "content": text},
        {"role": "assistant", "content": first.body["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
            "content": "sunny"}]}]);
    let answer = server.messages(follow).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.text(), "MOCK_TOOL_RESULT: sunny");
    let upstream = responses_mock().bodies_with(&t);
    let input = upstream
        .last()
        .and_then(|b| b["input"].as_array())
        .cloned()
        .expect("the continuation's input");
    let (call_item, last) = (&input[input.len() - 2], &input[input.len() - 1]);
    assert_eq!(
        (
            &call_item["type"],
            &call_item["call_id"],
            &call_item["name"]
        ),
        (&json!("function_call"), &call["id"], &json!("get_weather")),
        "{call_item}"
    );
    assert_eq!(
        (&last["type"], &last["call_id"], &last["output"]),
        (&json!("function_call_output"), &call["id"], &json!("sunny")),
        "{last}"
    );
    let pools = server.get("/admin/pools").await;
    let hits: u64 = pools["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["counters"]["conversation_hits"].as_u64())
        .sum();
    assert_eq!(hits, u64::from(park), "{pools}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_forgotten_tool_turn_leaves_the_real_codex_serving() {
    let server = real_codex(|s| s.pool.tool_result_timeout_secs = 1).await;
    let t = format!("tok{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let text = format!(r#"weather {t} TOOL:get_weather:{{"city":"Paris"}}"#);
    let first = server.messages(ask(&text)).await;
    assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.raw);
    let pids = server.pids_of("codex").await;
    // Interrupted (the pending call fails) and its thread deleted, in the same process.
    server
        .wait_for(
            "the parked tool turn forgotten",
            |p| !p.to_string().contains("\"awaiting_tool_results\":1"),
            "/admin/pools",
        )
        .await;
    let again = server
        .messages(user_of("gpt-5", &format!("after {t}")))
        .await;
    assert_eq!(again.text(), format!("MOCK_OK: after {t}"));
    assert_eq!(server.pids_of("codex").await, pids);
    server.stop().await;
}
