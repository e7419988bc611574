//! Parked conversations on the fake Codex and Gemini CLIs, whose answers show the conversation
//! the thread or session holds (`history: u:…,a:…`): a chat that resends its history continues
//! on the thread or session that holds it, and every answer equals a replaying server's.

use serde_json::{json, Value};

use crate::support::*;
use clinvoker::config::Settings;

/// A server with one fake process of two conversations for `model`'s backend.
async fn server(model: &str, park: bool) -> TestServer {
    let gemini = model.starts_with("gemini");
    TestServer::fake(|s: &mut Settings| {
        if gemini {
            s.backends.gemini.command = FAKE_GEMINI.to_string();
            s.backends.gemini.conversations_per_process = 2;
            s.backends.gemini.min_idle = 1;
        } else {
            s.backends.codex.command = FAKE_CODEX.to_string();
            s.backends.codex.conversations_per_process = 2;
            s.backends.codex.min_idle = 1;
        }
        s.pool.max_processes = 1;
        s.pool.park_conversations = park;
    })
    .await
}

/// Runs the same six-turn chat of `model` on a parking and a replaying server; with `aside`,
/// turn 3 sends two user messages.
async fn same_answers_parked_and_replayed(model: &str, aside: bool) {
    let parking = server(model, true).await;
    let replaying = server(model, false).await;
    let (mut parked, mut replayed): (Vec<Value>, Vec<Value>) = (Vec::new(), Vec::new());
    for i in 0..6 {
        let mut answers = Vec::new();
        for (server, messages) in [(&parking, &mut parked), (&replaying, &mut replayed)] {
            if aside && i == 3 {
                messages.push(json!({"role": "user", "content": "aside"}));
            }
            messages.push(json!({"role": "user", "content": format!("turn-{i}")}));
            let body = json!({"model": model, "max_tokens": 64, "system": "Be brief.",
                "messages": messages});
            let reply = server.messages(body).await;
            assert_eq!(reply.status, 200, "{}", reply.raw);
            messages.push(json!({"role": "assistant", "content": reply.body["content"]}));
            answers.push(reply.text());
        }
        assert_eq!(
            answers[0], answers[1],
            "turn {i}: a parked conversation shows what a replay shows"
        );
        if i > 0 {
            let earlier = format!("turn-{},a:echo", i - 1);
            assert!(answers[0].contains(&earlier), "{}", answers[0]);
        }
    }
    assert_eq!(parking.hits_and_misses(None).await, (5, 0));
    assert_eq!(replaying.hits_and_misses(None).await, (0, 0));
    parking.stop().await;
    replaying.stop().await;
}

#[actix_rt::test]
async fn a_codex_chat_continues_on_its_kept_thread_and_sees_what_a_replay_would() {
    same_answers_parked_and_replayed("gpt-5", true).await;
}

#[actix_rt::test]
async fn a_gemini_chat_continues_in_its_kept_session_and_sees_what_a_replay_would() {
    same_answers_parked_and_replayed("gemini-2.5-flash", true).await;
}

#[actix_rt::test]
async fn a_kept_gemini_session_keeps_its_chat_files_until_it_is_forgotten() {
    let server = TestServer::fake(|s: &mut Settings| {
        s.backends.gemini.command = FAKE_GEMINI.to_string();
        s.backends.gemini.conversations_per_process = 1;
        s.backends.gemini.min_idle = 1;
        s.pool.max_processes = 1;
    })
    .await;
    let ask = |text: &str| {
        json!({"model": "gemini-2.5-flash", "max_tokens": 64,
            "messages": [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "a0"},
                {"role": "user", "content": text}]})
    };
    let settled = |p: &Value| p.to_string().contains("\"slots_in_use\":0");
    let reply = server.messages(ask("first")).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    server.wait_for("parked", settled, "/admin/pools").await;
    let first = crate::gemini::chat_files(&server);
    assert!(
        !first.is_empty(),
        "the parked conversation's chat files stay"
    );
    // Another conversation needs the only slot: the parked one is forgotten.
    let reply = server.messages(ask("second")).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    server.wait_for("parked", settled, "/admin/pools").await;
    let second = crate::gemini::chat_files(&server);
    assert!(!second.is_empty(), "the new parked conversation's");
    assert!(
        first.iter().all(|f| !second.contains(f)),
        "the forgotten conversation's chat files are gone: {first:?} {second:?}"
    );
    server.stop().await;
}
