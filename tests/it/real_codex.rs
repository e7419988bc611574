//! Protocol truth for Codex: the real CLI (`codex app-server`, installed pinned by the test
//! command) as the pool's processes, against the mock Responses upstream. Each test marks its
//! prompts with a unique token and finds its own upstream requests by it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;
use clinvoker::config::Settings;

fn codex_path() -> String {
    // The npm wrapper: the server runs the native binary behind it.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/node/node_modules/.bin/codex"
    );
    assert!(
        std::path::Path::new(path).exists(),
        "the real Codex CLI is missing: run the test command from the README (it installs it)"
    );
    path.to_string()
}

pub(crate) async fn real_codex(tweak: impl FnOnce(&mut Settings)) -> TestServer {
    let mut s = fake_settings();
    let codex = &mut s.backends.codex;
    codex.command = codex_path();
    codex.base_url = format!("http://127.0.0.1:{}/v1", responses_mock().port);
    codex.env = [("OPENAI_API_KEY".to_string(), "sk-test".to_string())].into();
    codex.min_idle = 1;
    codex.stream_idle_timeout_ms = 5000;
    codex.request_max_retries = 0;
    s.pool.ready_timeout_secs = 30;
    s.pool.queue_timeout_secs = 60;
    s.server.request_timeout_secs = 30;
    tweak(&mut s);
    TestServer::start(s).await
}

fn token() -> String {
    format!("tok{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// (role, text) of the message items of a Responses request.
fn items(body: &Value) -> Vec<(String, String)> {
    body["input"]
        .as_array()
        .expect("input")
        .iter()
        .filter(|i| i["type"] == "message")
        .map(|i| {
            let text: String = i["content"]
                .as_array()
                .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
                .unwrap_or_default();
            (i["role"].as_str().unwrap_or_default().to_string(), text)
        })
        .collect()
}

#[actix_rt::test]
async fn system_prompt_and_history_reach_the_upstream_in_both_dialects() {
    let server = real_codex(|_| {}).await;
    let t = token();
    let reply = server
        .messages(
            json!({"model": "gpt-5", "max_tokens": 64, "system": format!("Be terse {t}."),
            "messages": [{"role": "user", "content": format!("q1 {t}")},
                         {"role": "assistant", "content": "a1"},
                         {"role": "user", "content": format!("q2 {t}")}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.text(), format!("MOCK_OK: q2 {t}"));
    assert_eq!(reply.body["model"], "gpt-5");
    assert_eq!(reply.body["usage"]["output_tokens"], 7);
    let upstream = responses_mock().bodies_with(&format!("q2 {t}"));
    assert_eq!(upstream.len(), 1, "one upstream call");
    assert_eq!(upstream[0]["model"], "gpt-5");
    let conv = items(&upstream[0]);
    assert_eq!(
        conv[0],
        ("developer".into(), format!("Be terse {t}.")),
        "{conv:?}"
    );
    let tail: Vec<_> = conv.iter().rev().take(3).rev().cloned().collect();
    assert_eq!(
        tail,
        [
            ("user".to_string(), format!("q1 {t}")),
            ("assistant".to_string(), "a1".to_string()),
            ("user".to_string(), format!("q2 {t}")),
        ]
    );
    assert!(
        upstream[0]
            .get("tools")
            .is_none_or(|t| !t.to_string().contains("exec_command")),
        "no shell tool offered: {}",
        upstream[0]["tools"]
    );

    let t2 = token();
    let reply = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gpt-5", "stream": true,
                "messages": [{"role": "user", "content": format!("stream {t2}")}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let text = openai_stream_text(&reply.raw);
    assert_eq!(text, format!("MOCK_OK: stream {t2}"));
    server.stop().await;
}

#[actix_rt::test]
async fn concurrent_conversations_share_one_real_process() {
    let server = real_codex(|s| s.pool.max_processes = 1).await;
    let tokens: Vec<String> = (0..4).map(|_| token()).collect();
    let url = server.url("/anthropic/v1/messages");
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            let (url, t) = (url.clone(), t.clone());
            actix_rt::spawn(async move {
                post_json(&url, user_of("gpt-5", &format!("SLOW {t}")), &[]).await
            })
        })
        .collect();
    for (t, task) in tokens.iter().zip(tasks) {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, 200, "{}", reply.raw);
        assert_eq!(reply.text(), format!("MOCK_OK: SLOW {t}"));
    }
    assert_eq!(
        server.pids_of("codex").await.len(),
        1,
        "one process served all four"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn timeout_kill_and_disconnect_leave_a_working_pool() {
    let server = real_codex(|s| {
        s.server.request_timeout_secs = 4;
        s.pool.max_processes = 1;
    })
    .await;
    let warm = server.messages(user_of("gpt-5", &token())).await;
    assert_eq!(warm.status, 200, "{}", warm.raw);
    let pid = server.pids_of("codex").await[0];
    // A stalled upstream: the server's own timer interrupts the turn.
    server
        .messages(user_of("gpt-5", &format!("HANG {}", token())))
        .await
        .anthropic_error(504, "timeout_error");
    let t = token();
    let after = server.messages(user_of("gpt-5", &t)).await;
    assert_eq!(after.text(), format!("MOCK_OK: {t}"), "{}", after.raw);
    assert_eq!(
        server.pids_of("codex").await,
        [pid],
        "interrupted, not killed"
    );

    // A client that goes away mid-stream.
    let mut body = user_of("gpt-5", &format!("SLOW {}", token()));
    body["stream"] = json!(true);
    read_then_disconnect(
        &server.url("/anthropic/v1/messages"),
        body,
        "content_block_delta",
    )
    .await;
    let t = token();
    let after = server.messages(user_of("gpt-5", &t)).await;
    assert_eq!(after.text(), format!("MOCK_OK: {t}"), "{}", after.raw);

    // kill -9 of the busy CLI: that turn fails, a new process serves the next.
    let url = server.url("/anthropic/v1/messages");
    let busy = actix_rt::spawn(async move {
        post_json(&url, user_of("gpt-5", &format!("SLOW {}", token())), &[]).await
    });
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let failed = busy.await.expect("task");
    failed.anthropic_error(502, "api_error");
    let t = token();
    let after = server.messages(user_of("gpt-5", &t)).await;
    assert_eq!(after.text(), format!("MOCK_OK: {t}"), "{}", after.raw);
    assert_ne!(server.pids_of("codex").await, [pid]);
    server.stop().await;
}

#[actix_rt::test]
async fn a_prompt_cannot_run_a_command_on_the_server() {
    let server = real_codex(|_| {}).await;
    let dir = tempfile::tempdir().expect("temp");
    let marker = dir.path().join("pwned");
    let t = token();
    let prompt = format!("RUNCMD:touch {} {t}", marker.display());
    let reply = server.messages(user_of("gpt-5", &prompt)).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    // The mock makes the model call whatever shell tool it is offered: none is.
    let upstream = responses_mock().bodies_with(&t);
    assert!(!upstream.is_empty());
    for body in &upstream {
        let tools = body["tools"].to_string();
        for tool in ["exec_command", "\"shell\"", "unified_exec", "apply_patch"] {
            assert!(!tools.contains(tool), "{tool} offered: {tools}");
        }
    }
    assert!(!reply.text().contains("exit code"), "{}", reply.raw);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "the command ran: {}", reply.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn upstream_failures_map_to_dialect_errors() {
    let server = real_codex(|_| {}).await;
    server
        .messages(user_of("gpt-5", &format!("FAIL429 {}", token())))
        .await
        .anthropic_error(429, "rate_limit_error");
    server
        .messages(user_of("gpt-5", &format!("FAIL500 {}", token())))
        .await
        .anthropic_error(502, "api_error");
    let t = token();
    let after = server.messages(user_of("gpt-5", &t)).await;
    assert_eq!(after.text(), format!("MOCK_OK: {t}"));
    server.stop().await;
}
