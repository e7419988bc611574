//! Protocol truth for Gemini: the real CLI (`gemini --acp`, installed pinned by the test command)
//! as the pool's processes, against the mock Gemini upstream. Each test marks its prompts with a
//! unique token and finds its own upstream requests by it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;
use clinvoker::config::Settings;

fn gemini_path() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/node/node_modules/.bin/gemini"
    );
    assert!(
        std::path::Path::new(path).exists(),
        "the real Gemini CLI is missing: run the test command from the README (it installs it)"
    );
    path.to_string()
}

pub(crate) async fn real_gemini(tweak: impl FnOnce(&mut Settings)) -> TestServer {
    let mut s = fake_settings();
    let gemini = &mut s.backends.gemini;
    gemini.command = gemini_path();
    gemini.base_url = format!("http://127.0.0.1:{}", gemini_mock().port);
    gemini.env = [("GEMINI_API_KEY".to_string(), "test-key".to_string())].into();
    gemini.min_idle = 1;
    // Cold starts cost 2-3 s and ≈2 CPU-s each.
    s.pool.ready_timeout_secs = 60;
    s.pool.queue_timeout_secs = 90;
    s.server.request_timeout_secs = 60;
    tweak(&mut s);
    TestServer::start(s).await
}

fn token() -> String {
    format!("tok{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// (role, text) of the `contents` of a Gemini request.
fn contents(body: &Value) -> Vec<(String, String)> {
    body["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .map(|c| {
            let text: String = c["parts"]
                .as_array()
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .unwrap_or_default();
            (c["role"].as_str().unwrap_or_default().to_string(), text)
        })
        .collect()
}

#[actix_rt::test]
async fn system_prompt_history_and_model_reach_the_upstream() {
    let server = real_gemini(|_| {}).await;
    let t = token();
    let reply = server
        .messages(json!({"model": "gemini-2.5-flash", "max_tokens": 64,
            "system": format!("Be terse {t}."),
            "messages": [{"role": "user", "content": format!("q1 {t}")},
                         {"role": "assistant", "content": "a1"},
                         {"role": "user", "content": format!("q2 {t}")}]}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.text(), format!("MOCK_OK: q2 {t}"));
    assert_eq!(reply.body["usage"]["output_tokens"], 7);
    let upstream: Vec<Value> = gemini_mock()
        .bodies_with(&format!("q2 {t}"))
        .into_iter()
        .filter(|b| b["contents"].is_array())
        .collect();
    let turn = upstream
        .iter()
        .find(|b| b.to_string().contains("MOCK") || b["systemInstruction"].is_object())
        .unwrap_or(&upstream[0]);
    assert!(
        turn["systemInstruction"]
            .to_string()
            .contains(&format!("Be terse {t}.")),
        "{}",
        turn["systemInstruction"]
    );
    let convo = contents(turn);
    let tail: Vec<_> = convo.iter().rev().take(3).rev().cloned().collect();
    assert!(tail[0].1.ends_with(&format!("q1 {t}")), "{convo:?}");
    assert_eq!(
        tail[1],
        ("model".to_string(), "a1".to_string()),
        "{convo:?}"
    );
    assert!(tail[2].1.ends_with(&format!("q2 {t}")), "{convo:?}");
    assert!(
        upstream.iter().all(|b| b
            .get("tools")
            .is_none_or(|t| !t.to_string().contains("run_shell_command"))),
        "no shell tool offered"
    );

    let t2 = token();
    let reply = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gemini-2.5-flash", "stream": true,
                "messages": [{"role": "user", "content": format!("stream {t2}")}]}),
        )
        .await;
    let text = openai_stream_text(&reply.raw);
    assert_eq!(text, format!("MOCK_OK: stream {t2}"), "{}", reply.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn local_commands_and_shell_calls_do_not_run() {
    let server = real_gemini(|_| {}).await;
    let t = token();
    let reply = server
        .messages(user_of("gemini-2.5-flash", &format!("/memory show {t}")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(
        reply.text().starts_with("MOCK_OK: "),
        "ran locally: {}",
        reply.raw
    );
    assert!(
        !gemini_mock().bodies_with(&t).is_empty(),
        "the model got it"
    );

    let dir = tempfile::tempdir().expect("temp");
    let marker = dir.path().join("pwned");
    let t = token();
    let reply = server
        .messages(user_of(
            "gemini-2.5-flash",
            &format!("RUNCMD:touch {} {t}", marker.display()),
        ))
        .await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "the command ran: {}", reply.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn timeout_kill_and_upstream_errors_leave_a_working_pool() {
    let server = real_gemini(|s| {
        s.server.request_timeout_secs = 3;
        s.pool.max_processes = 1;
    })
    .await;
    let warm = server.messages(user_of("gemini-2.5-flash", &token())).await;
    assert_eq!(warm.status, 200, "{}", warm.raw);
    let pid = server.pids_of("gemini").await[0];
    server
        .messages(user_of("gemini-2.5-flash", &format!("HANG {}", token())))
        .await
        .anthropic_error(504, "timeout_error");
    server
        .messages(user_of("gemini-2.5-flash", &format!("FAIL429 {}", token())))
        .await
        .anthropic_error(429, "rate_limit_error");
    let t = token();
    let after = server.messages(user_of("gemini-2.5-flash", &t)).await;
    assert_eq!(after.text(), format!("MOCK_OK: {t}"), "{}", after.raw);
    assert_eq!(
        server.pids_of("gemini").await,
        [pid],
        "cancelled, not killed"
    );

    let url = server.url("/anthropic/v1/messages");
    let busy = actix_rt::spawn(async move {
        post_json(
            &url,
            user_of("gemini-2.5-flash", &format!("SLOW {}", token())),
            &[],
        )
        .await
    });
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    busy.await.expect("task").anthropic_error(502, "api_error");
    let t = token();
    let after = server.messages(user_of("gemini-2.5-flash", &t)).await;
    assert_eq!(after.text(), format!("MOCK_OK: {t}"), "{}", after.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn a_stalled_upstream_is_cut_by_the_servers_own_timers() {
    // The CLI itself would wait ≈300 s; the server's stall timers answer in seconds.
    let server = real_gemini(|s| {
        s.server.first_byte_timeout_secs = 3;
        s.server.stream_idle_timeout_secs = 2;
    })
    .await;
    let started = std::time::Instant::now();
    let msg = server
        .messages(user_of(
            "gemini-2.5-flash",
            &format!("HANGSTREAM {}", token()),
        ))
        .await
        .anthropic_error(504, "timeout_error");
    assert!(msg.contains("stalled"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let t = token();
    let after = server.messages(user_of("gemini-2.5-flash", &t)).await;
    assert_eq!(after.text(), format!("MOCK_OK: {t}"), "{}", after.raw);
    server.stop().await;
}
