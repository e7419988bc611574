//! Protocol truth: the real Claude Code CLI (installed by the test command from npm, pinned) as
//! the pool's processes, talking to the mock upstream. Each test marks its prompts with a unique
//! token and finds its own upstream requests in the mock's log by it.

use serde_json::{json, Value};

use crate::support::*;
use clinvoker::config::{BareMode, Settings};

fn claude_path() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/node/node_modules/.bin/claude"
    );
    assert!(
        std::path::Path::new(path).exists(),
        "the real Claude Code CLI is missing: run the test command from the README (it installs it)"
    );
    path.to_string()
}

fn real_settings() -> Settings {
    let mut s = fake_settings();
    s.backends.claude.command = claude_path();
    s.backends.claude.bare = BareMode::On;
    s.backends.claude.max_retries = 0;
    s.backends.claude.env = [
        (
            "ANTHROPIC_BASE_URL".to_string(),
            format!("http://127.0.0.1:{}", mock().port),
        ),
        ("ANTHROPIC_API_KEY".to_string(), "sk-test".to_string()),
    ]
    .into();
    s.pool.ready_timeout_secs = 30;
    s.pool.spare_processes = 1;
    s.pool.max_total_processes = 4;
    s.server.request_timeout_secs = 30;
    // Cold starts of the real CLI cost ≈0.25 CPU-s each; tests run in parallel on small machines.
    s.pool.queue_timeout_secs = 60;
    s
}

pub(crate) async fn real(tweak: impl FnOnce(&mut Settings)) -> TestServer {
    let mut s = real_settings();
    tweak(&mut s);
    TestServer::start(s).await
}

pub(crate) fn token() -> String {
    format!("tok{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// (role, text) of the user/assistant messages of an upstream request, CLI-added blocks skipped.
fn conversation(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user" || m["role"] == "assistant")
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(blocks) => blocks
                    .iter()
                    .filter_map(|b| b["text"].as_str())
                    .filter(|t| !t.starts_with('<'))
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            };
            (
                m["role"].as_str().unwrap_or_default().to_string(),
                text.trim().to_string(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn seed_models_answer_through_the_real_cli() {
    let server = real(|_| {}).await;
    let t = token();
    let reply = server.messages(user(&format!("Hello, world! {t}"))).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.text(), format!("MOCK_OK: Hello, world! {t}"));
    assert_eq!(reply.body["model"], "claude");
    assert_eq!(reply.body["usage"]["input_tokens"], 11);
    assert_eq!(reply.body["usage"]["output_tokens"], 7);
    let upstream = mock().requests_with(&t);
    assert_eq!(upstream.len(), 1, "one upstream call per turn");
    assert_eq!(
        upstream[0]["model"], "claude-sonnet-5-5",
        "`claude` maps to the sonnet alias"
    );

    let t2 = token();
    let mut body = user(&t2);
    body["model"] = json!("claude-sonnet-4");
    let reply = server.messages(body).await;
    assert_eq!(reply.body["model"], "claude-sonnet-4", "{}", reply.raw);
    assert_eq!(
        mock().requests_with(&t2)[0]["model"],
        "claude-sonnet-4-20250514"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn streaming_relays_the_real_cli_partial_messages() {
    let server = real(|_| {}).await;
    let t = token();
    let reply = server
        .messages(streaming(&format!("Write a poem {t}")))
        .await;
    assert_eq!(reply.status, 200);
    let events = parse_sse(&reply.raw);
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert!(deltas.len() >= 3, "incremental deltas: {deltas:?}");
    assert_eq!(deltas.concat(), format!("MOCK_OK: Write a poem {t}"));
    assert_eq!(events.last().expect("events").0, "message_stop");
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 7);
    server.stop().await;
}

#[actix_rt::test]
async fn system_prompt_and_history_reach_upstream_faithfully() {
    let server = real(|_| {}).await;
    let t = token();
    let reply = server
        .messages(
            json!({"model": "claude", "max_tokens": 100, "system": format!("You are terse {t}."),
            "messages": [
                {"role": "user", "content": format!("q1 {t}")},
                {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
                {"role": "user", "content": "q2"},
                {"role": "assistant", "content": "a2"},
                {"role": "user", "content": "q3"}]}),
        )
        .await;
    assert_eq!(reply.text(), "MOCK_OK: q3", "{}", reply.raw);
    let upstream = mock().requests_with(&t);
    assert_eq!(upstream.len(), 1, "history is replayed without model calls");
    assert!(upstream[0]["system"]
        .to_string()
        .contains(&format!("You are terse {t}.")));
    let expected: Vec<(String, String)> = [
        ("user", format!("q1 {t}")),
        ("assistant", "a1".into()),
        ("user", "q2".into()),
        ("assistant", "a2".into()),
        ("user", "q3".into()),
    ]
    .into_iter()
    .map(|(r, c)| (r.to_string(), c))
    .collect();
    assert_eq!(conversation(&upstream[0]), expected);
    server.stop().await;
}

#[actix_rt::test]
async fn one_conversation_never_sees_another() {
    let server = real(|s| s.pool.max_processes = 1).await;
    server.wait_idle(1).await;
    let (a, b) = (token(), token());
    assert_eq!(
        server.messages(user(&format!("first {a}"))).await.status,
        200
    );
    assert_eq!(
        server.messages(user(&format!("second {b}"))).await.status,
        200
    );
    let upstream = mock().requests_with(&b);
    assert_eq!(
        conversation(&upstream[0]),
        vec![("user".to_string(), format!("second {b}"))]
    );
    assert!(!upstream[0].to_string().contains(&a));
    server.stop().await;
}

#[actix_rt::test]
async fn forwarded_text_cannot_read_server_files() {
    let server = real(|_| {}).await;
    let dir = tempfile::tempdir().expect("tmp");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-CONTENT").expect("write");
    let t = token();
    let reply = server
        .messages(user(&format!("look at @{} {t}", secret.display())))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let upstream = mock().requests_with(&t);
    assert!(
        !upstream[0].to_string().contains("TOP-SECRET-CONTENT"),
        "the file must not be read"
    );
    assert_eq!(
        upstream[0]["tools"],
        json!([]),
        "the chat profile has no tools"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn settings_and_claude_md_of_the_server_user_do_not_leak() {
    let home = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(home.path().join(".claude")).expect("mkdir");
    std::fs::write(
        home.path().join(".claude/CLAUDE.md"),
        "LEAKED-CLAUDE-MD-MARKER",
    )
    .expect("write");
    std::fs::write(
        home.path().join(".claude/settings.json"),
        r#"{"env": {"LEAK": "1"}, "systemPrompt": "LEAKED-SETTINGS-MARKER"}"#,
    )
    .expect("write");
    let server = real(|s| {
        s.backends.claude.bare = BareMode::Off;
        s.backends
            .claude
            .env
            .insert("HOME".into(), home.path().display().to_string());
    })
    .await;
    let t = token();
    let reply = server.messages(user(&t)).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let upstream = mock().requests_with(&t)[0].to_string();
    assert!(
        !upstream.contains("LEAKED-CLAUDE-MD-MARKER")
            && !upstream.contains("LEAKED-SETTINGS-MARKER")
    );
    server.stop().await;
}

#[actix_rt::test]
async fn upstream_failures_map_to_anthropic_errors() {
    let server = real(|_| {}).await;
    server
        .messages(user(&format!("FAIL529 {}", token())))
        .await
        .anthropic_error(529, "overloaded_error");
    server
        .messages(user(&format!("FAIL400 {}", token())))
        .await
        .anthropic_error(400, "invalid_request_error");
    let t = token();
    let reply = server.messages(user(&format!("after {t}"))).await;
    assert_eq!(reply.status, 200);
    let upstream = mock().requests_with(&t);
    assert_eq!(
        conversation(&upstream[0]).len(),
        1,
        "the failed prompts were rewound away"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn timeout_and_disconnect_interrupt_the_real_cli_and_the_pool_recovers() {
    let server = real(|s| {
        s.server.request_timeout_secs = 2;
        s.pool.max_processes = 1;
    })
    .await;
    server.wait_idle(1).await;
    let pid = server
        .processes()
        .await
        .iter()
        .find(|p| p["state"] == "idle")
        .expect("idle")["pid"]
        .clone();
    let hung = token();
    server
        .messages(user(&format!("HANG {hung}")))
        .await
        .anthropic_error(504, "timeout_error");

    let slow = token();
    let seen = read_then_disconnect(
        &server.url("/anthropic/v1/messages"),
        streaming(&format!("SLOW one two three four five {slow}")),
        "content_block_delta",
    )
    .await;
    assert!(seen.contains("MOCK_OK"), "{seen}");
    server
        .wait_for(
            "the process back to idle",
            |p| p["pools"][0]["processes"][0]["state"] == "idle",
            "/admin/pools",
        )
        .await;

    let t = token();
    let reply = server.messages(user(&format!("after {t}"))).await;
    assert_eq!(reply.text(), format!("MOCK_OK: after {t}"));
    let upstream = mock().requests_with(&t);
    assert_eq!(
        conversation(&upstream[0]),
        vec![("user".to_string(), format!("after {t}"))],
        "no trace of the cut turns"
    );
    let procs = server.processes().await;
    assert!(
        procs.iter().any(|p| p["pid"] == pid),
        "the same process served it all: {procs:?}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn native_rest_routes_work_on_the_real_cli() {
    let server = real(|_| {}).await;
    let t = token();
    let r = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": format!("rest {t}"), "system_prompt": "You are a REST test."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["output"], format!("MOCK_OK: rest {t}"));
    assert_eq!(r.body["token_usage"]["output_tokens"], 7);
    assert!(mock().requests_with(&t)[0]["system"]
        .to_string()
        .contains("You are a REST test."));

    let s = token();
    let r = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": format!("stream {s}"), "output_format": "stream-json"}),
        )
        .await;
    let lines: Vec<Value> = r
        .raw
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    let text: String = lines
        .iter()
        .filter(|l| l["type"] == "text_delta")
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert_eq!(text, format!("MOCK_OK: stream {s}"), "{lines:?}");
    assert_eq!(lines.last().expect("lines")["type"], "result");

    let c = token();
    let r = server
        .post(
            "/api/v1/chain",
            json!({"steps": [{"prompt": format!("one {c}")}, {"prompt": "two {{previous}}"}]}),
        )
        .await;
    assert_eq!(r.body["completed"], true, "{}", r.raw);
    assert_eq!(
        r.body["steps"][1]["result"]["output"],
        format!("MOCK_OK: two MOCK_OK: one {c}")
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_stream_the_cli_retries_after_partial_text_is_never_presented_as_complete() {
    // The mock drops every streaming call after two deltas; the CLI retries, then falls back
    // to a non-streaming call that succeeds.
    let server = real(|_| {}).await;
    let t = token();
    let reply = server.messages(streaming(&format!("DISCONNECT {t}"))).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let events = parse_sse(&reply.raw);
    let (last, data) = events.last().expect("events");
    assert_eq!(last, "error", "{events:?}");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(
        !events.iter().any(|(n, _)| n == "message_stop"),
        "{events:?}"
    );
    let t = token();
    let whole = server.messages(user(&format!("DISCONNECT {t}"))).await;
    assert_eq!(whole.status, 200, "{}", whole.raw);
    assert_eq!(whole.text(), format!("MOCK_OK: DISCONNECT {t}"));
    server.stop().await;
}
