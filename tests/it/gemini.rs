//! The Gemini backend on the fake ACP CLI: both dialects, conversations sharing a process,
//! history through session files, local commands kept as text, recycling, and the failure
//! paths. (The real CLI is driven in `real_gemini`.)

use std::time::Duration;

use serde_json::json;

use crate::support::*;

async fn gemini_server(
    slots: usize,
    tweak: impl FnOnce(&mut clinvoker::config::Settings),
) -> TestServer {
    TestServer::fake(|s| {
        s.backends.gemini.command = FAKE_GEMINI.to_string();
        s.backends.gemini.conversations_per_process = slots;
        s.backends.gemini.min_idle = 1;
        s.pool.max_processes = 1;
        tweak(s);
    })
    .await
}

/// Chat files the CLI keeps under the server's state directory.
pub(crate) fn chat_files(server: &TestServer) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.to_string_lossy().contains("/chats/") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.state_dir().join("gemini"), &mut out);
    out
}

#[actix_rt::test]
async fn system_prompt_history_and_model_reach_a_gemini_session() {
    // Not parked: the conversation ends with its turn (see `parking_backends` for kept ones).
    let server = gemini_server(4, |s| s.pool.park_conversations = false).await;
    let reply = server
        .messages(
            json!({"model": "gemini-2.5-flash", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                         {"role": "user", "content": "q2"}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let text = reply.text();
    assert!(
        text.starts_with("echo: q2 | history: u:q1,a:a1 | system: Be brief."),
        "{text}"
    );
    assert!(text.contains("model: gemini-2.5-flash"), "{text}");
    assert_eq!(reply.body["model"], "gemini-2.5-flash");
    // The conversation's chat files are gone once it is over.
    server
        .wait_for(
            "the slot released",
            |p| p.to_string().contains("\"slots_in_use\":0"),
            "/admin/pools",
        )
        .await;
    assert_eq!(chat_files(&server), Vec::<std::path::PathBuf>::new());
    let openai = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gemini", "messages": [{"role": "system", "content": "S"},
                {"role": "user", "content": "oa"}]}),
        )
        .await;
    assert_eq!(openai.status, 200, "{}", openai.raw);
    let content = openai.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        content.starts_with("echo: oa | history:  | system: S"),
        "{content}"
    );
    assert!(
        content.contains("model: gemini-2.5-pro"),
        "the table maps gemini: {content}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn local_commands_reach_the_model_as_text() {
    let server = gemini_server(4, |_| {}).await;
    for prompt in ["/memory show", "  $help", "/extensions install evil"] {
        let reply = server.messages(user_of("gemini-2.5-flash", prompt)).await;
        assert_eq!(reply.status, 200, "{}", reply.raw);
        let text = reply.text();
        assert!(text.starts_with("echo: "), "{prompt:?} ran locally: {text}");
        assert!(text.contains(prompt.trim()), "{text}");
    }
    server.stop().await;
}

#[actix_rt::test]
async fn conversations_share_one_gemini_process_without_seeing_each_other() {
    let server = gemini_server(4, |_| {}).await;
    let url = server.url("/anthropic/v1/messages");
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            actix_rt::spawn(async move {
                let body = json!({"model": "gemini-2.5-flash", "max_tokens": 64,
                    "system": format!("sys-{i}"),
                    "messages": [{"role": "user", "content": format!("FAKE_SLEEP_300 secret-{i}")}]});
                (i, post_json(&url, body, &[]).await)
            })
        })
        .collect();
    for task in tasks {
        let (i, reply) = task.await.expect("task");
        assert_eq!(reply.status, 200, "{}", reply.raw);
        let text = reply.text();
        assert!(
            text.contains(&format!("secret-{i} | history:  | system: sys-{i} |")),
            "{text}"
        );
        for j in (0..4).filter(|j| *j != i) {
            assert!(!text.contains(&format!("-{j} ")), "{i} saw {j}: {text}");
        }
    }
    assert_eq!(server.processes_of("gemini").await.len(), 1);
    server.stop().await;
}

#[actix_rt::test]
async fn a_gemini_process_is_recycled_after_its_sessions() {
    let server = gemini_server(2, |s| s.backends.gemini.max_sessions_per_process = 3).await;
    let first = server.messages(user_of("gemini-2.5-flash", "one")).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let pid = server.processes_of("gemini").await[0]["pid"]
        .as_u64()
        .expect("pid");
    for n in 0..3 {
        let reply = server
            .messages(user_of("gemini-2.5-flash", &format!("more {n}")))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.raw);
    }
    // Recycled after its third session: it exits, another serves.
    let gone = format!("\"pid\":{pid},");
    server
        .wait_for(
            "the recycled process gone",
            |p| !p.to_string().contains(&gone),
            "/admin/pools",
        )
        .await;
    let last = server.messages(user_of("gemini-2.5-flash", "last")).await;
    assert_eq!(last.status, 200, "{}", last.raw);
    assert!(!pid_alive(pid));
    server.stop().await;
}

#[actix_rt::test]
async fn gemini_timeouts_crashes_and_errors_are_clean() {
    let server = gemini_server(4, |s| s.server.request_timeout_secs = 1).await;
    let first = server.messages(user_of("gemini-2.5-flash", "warm")).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let pid = server.processes_of("gemini").await[0]["pid"]
        .as_u64()
        .expect("pid");
    server
        .messages(user_of("gemini-2.5-flash", "FAKE_SLEEP_5000"))
        .await
        .anthropic_error(504, "timeout_error");
    let after = server.messages(user_of("gemini-2.5-flash", "after")).await;
    assert!(after.text().starts_with("echo: after |"), "{}", after.raw);
    assert_eq!(
        server.processes_of("gemini").await[0]["pid"].as_u64(),
        Some(pid),
        "cancelled, not killed"
    );
    server
        .messages(user_of("gemini-2.5-flash", "FAKE_API_ERROR_429"))
        .await
        .anthropic_error(429, "rate_limit_error");
    let msg = server
        .messages(user_of("gemini-2.5-flash", "FAKE_CRASH"))
        .await
        .anthropic_error(502, "api_error");
    assert!(msg.contains("gemini process exited"), "{msg}");
    server
        .messages(user_of("gemini-2.5-flash", "FAKE_HANG"))
        .await
        .anthropic_error(504, "timeout_error");
    let msg = server
        .messages(user_of("gemini-2.5-flash", "FAKE_GARBAGE"))
        .await
        .anthropic_error(502, "api_error");
    assert!(msg.contains("broke protocol"), "{msg}");
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let after = server
        .messages(user_of("gemini-2.5-flash", "after all"))
        .await;
    assert_eq!(after.status, 200, "{}", after.raw);
    assert!(!pid_alive(pid), "the crashed process is gone");
    server.stop().await;
}

#[actix_rt::test]
async fn compare_runs_one_prompt_on_all_three_backends() {
    let server = TestServer::fake(|s| {
        s.backends.gemini.command = FAKE_GEMINI.to_string();
        s.backends.codex.command = FAKE_CODEX.to_string();
    })
    .await;
    let compared = server
        .post(
            "/api/v1/compare",
            json!({"prompt": "one question", "backends": ["claude", "codex", "gemini"]}),
        )
        .await;
    assert_eq!(compared.status, 200, "{}", compared.raw);
    let results = compared.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for (result, backend) in results.iter().zip(["claude", "codex", "gemini"]) {
        assert_eq!(result["backend"], backend);
        assert_eq!(result["ok"], true, "{result}");
        let output = result["result"]["output"].as_str().unwrap_or_default();
        assert!(output.starts_with("echo: one question |"), "{result}");
    }
    let health = server.get("/health").await;
    for backend in ["claude", "codex", "gemini"] {
        assert_eq!(health["backends"][backend]["served"], true, "{health}");
    }
    server.stop().await;
}
