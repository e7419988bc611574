//! Parked conversations on the fake CLI, whose answers show the conversation it holds
//! (`history: u:…,a:…`): a chat that resends its history continues in the process that holds
//! it and sees exactly what a replay would show, an edited history or another client's key is a
//! miss, and a parked process is taken (and reset) for another conversation when the pool needs
//! it.

use serde_json::{json, Value};

use crate::support::*;

const KEY_A: &str = "parking-key-a";
const KEY_B: &str = "parking-key-b";
const ADMIN: &str = "parking-admin-key";

/// A chat as an SDK client keeps it: every message so far, resent with each request.
struct Chat {
    key: Option<&'static str>,
    messages: Vec<Value>,
}

impl Chat {
    fn new(key: Option<&'static str>) -> Self {
        Self {
            key,
            messages: Vec::new(),
        }
    }

    /// Sends `text` with the whole history; keeps and returns the answer.
    async fn say(&mut self, server: &TestServer, text: &str) -> String {
        self.messages.push(json!({"role": "user", "content": text}));
        let body = json!({"model": "claude", "max_tokens": 256, "messages": self.messages});
        let headers: Vec<(&str, &str)> = self.key.map(|k| ("x-api-key", k)).into_iter().collect();
        let url = server.url("/anthropic/v1/messages");
        let reply = post_json(&url, body, &headers).await;
        assert_eq!(reply.status, 200, "{}", reply.raw);
        // Resent as the SDK's block list, as `messages.append(response.content)` does.
        self.messages
            .push(json!({"role": "assistant", "content": reply.body["content"]}));
        reply.text()
    }
}

/// What the fake shows as its conversation after `turns` turns `turn-0`, `turn-1`, … of `model`.
fn history_of(turns: usize, model: &str) -> String {
    let mut h = Vec::new();
    for i in 0..turns {
        let seen = history_of(i, model);
        h.push(format!("u:turn-{i}"));
        h.push(format!(
            "a:echo: turn-{i} | history: {seen} | system:  | model: {model}"
        ));
    }
    h.join(",")
}

#[actix_rt::test]
async fn a_chat_continues_where_it_is_parked_and_sees_what_a_replay_would() {
    let parking = TestServer::fake(|s| s.pool.max_processes = 2).await;
    let replaying = TestServer::fake(|s| {
        s.pool.max_processes = 2;
        s.pool.park_conversations = false;
    })
    .await;
    let (mut parked, mut replayed) = (Chat::new(None), Chat::new(None));
    for i in 0..6 {
        let text = format!("turn-{i}");
        let a = parked.say(&parking, &text).await;
        let b = replayed.say(&replaying, &text).await;
        assert_eq!(
            a, b,
            "turn {i}: a parked conversation shows what a replay shows"
        );
        let model = a.rsplit("model: ").next().unwrap_or_default();
        let history = history_of(i, model);
        assert_eq!(
            a,
            format!("echo: {text} | history: {history} | system:  | model: {model}")
        );
    }
    assert_eq!(parking.hits_and_misses(None).await, (5, 0));
    assert_eq!(replaying.hits_and_misses(None).await, (0, 0));
    // One process served the whole chat and holds it now.
    let procs = parking.processes().await;
    let holding: Vec<&Value> = procs
        .iter()
        .filter(|p| !p["parked"].as_array().expect("parked").is_empty())
        .collect();
    assert_eq!(holding.len(), 1, "{procs:?}");
    assert_eq!(holding[0]["turns"], 6);
    assert_eq!(holding[0]["parked"][0]["turns"], 6);
    assert_eq!(holding[0]["parked"][0]["messages"], 12);
    assert_eq!(holding[0]["resets"], 0, "nothing was reset along the way");
    let metrics = parking.get_text("/metrics").await;
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("clinvoker_pool_events_total") && l.contains("conversation_hit"));
    assert!(
        hits.is_some_and(|l| l.ends_with(" 5")),
        "hits are counted in /metrics: {hits:?}"
    );
    parking.stop().await;
    replaying.stop().await;
}

#[actix_rt::test]
async fn an_edited_history_misses_and_is_replayed_as_sent() {
    let server = TestServer::fake(|_| {}).await;
    let mut chat = Chat::new(None);
    chat.say(&server, "turn-0").await;
    chat.say(&server, "turn-1").await;
    // The client edits its first message: the parked conversation no longer matches.
    chat.messages[0] = json!({"role": "user", "content": "edited"});
    let answer = chat.say(&server, "turn-2").await;
    assert!(
        answer.starts_with("echo: turn-2 | history: u:edited,a:echo: turn-0 |"),
        "{answer}"
    );
    assert_eq!(server.hits_and_misses(None).await, (1, 1));
    // The replayed conversation is parked in turn and continues.
    let next = chat.say(&server, "turn-3").await;
    assert!(next.contains("u:edited,"), "{next}");
    assert_eq!(server.hits_and_misses(None).await, (2, 1));
    server.stop().await;
}

#[actix_rt::test]
async fn clients_with_other_keys_never_share_a_parked_conversation() {
    let server = TestServer::fake(|s| {
        s.server.api_keys = vec![KEY_A.into(), KEY_B.into()];
        s.server.admin_keys = vec![ADMIN.into()];
        s.pool.max_processes = 3;
        s.pool.min_idle = 3;
    })
    .await;
    // Warm first: a conversation finding no free process would take a parked one's place.
    server.wait_idle(3).await;
    let (mut a, mut b) = (Chat::new(Some(KEY_A)), Chat::new(Some(KEY_B)));
    assert_eq!(
        a.say(&server, "turn-0").await,
        b.say(&server, "turn-0").await
    );
    // B resends A's exact conversation: identical text, another key — a miss, not A's process.
    let mut b_with_a_history = Chat {
        key: Some(KEY_B),
        messages: a.messages.clone(),
    };
    b.say(&server, "turn-1").await;
    a.say(&server, "turn-1").await;
    b_with_a_history.say(&server, "turn-1").await;
    let (hits, misses) = server.hits_and_misses(Some(ADMIN)).await;
    // A and B continued their own; B's copy of A's history could only match B's conversation,
    // which B itself had taken on just before.
    assert_eq!((hits, misses), (2, 1));
    let procs = get_with(&server.url("/admin/pools"), &[("x-api-key", ADMIN)]).await;
    let parked: usize = procs.body["pools"][0]["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| p["parked"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        parked, 3,
        "three conversations, three parked: {}",
        procs.raw
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_parked_process_is_reset_for_another_conversation_when_the_pool_needs_it() {
    let server = TestServer::fake(|s| {
        s.pool.max_processes = 1;
        s.pool.min_idle = 1;
        s.pool.max_total_processes = 2;
    })
    .await;
    let (mut one, mut two) = (Chat::new(None), Chat::new(None));
    one.say(&server, "turn-0").await;
    // The only process holds `one`; `two` takes it: reset first, so it sees nothing of `one`.
    let answer = two.say(&server, "another chat").await;
    assert!(answer.contains("| history:  |"), "{answer}");
    // `one` is no longer parked: its follow-up is a miss, replayed correctly.
    let answer = one.say(&server, "turn-1").await;
    let model = answer.rsplit("model: ").next().unwrap_or_default();
    let history = history_of(1, model);
    assert!(answer.starts_with(&format!("echo: turn-1 | history: {history} |")));
    assert_eq!(server.hits_and_misses(None).await, (0, 1));
    let procs = server.processes().await;
    assert_eq!(
        procs.len(),
        1,
        "no process was added to keep a conversation"
    );
    // Each chat's conversation was reset when the other needed the process.
    assert_eq!(procs[0]["resets"], 2, "{procs:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_continued_native_session_continues_its_parked_conversation() {
    let server = TestServer::fake(|_| {}).await;
    let first = server
        .post("/api/v1/prompt", json!({"prompt": "turn-0"}))
        .await;
    let id = first.body["session_id"]
        .as_str()
        .expect("session")
        .to_string();
    for i in 1..4 {
        let next = server
            .post(
                "/api/v1/prompt",
                json!({"prompt": format!("turn-{i}"), "session_id": id}),
            )
            .await;
        let out = next.body["output"].as_str().expect("output").to_string();
        let model = out.rsplit("model: ").next().unwrap_or_default();
        let history = history_of(i, model);
        assert!(
            out.starts_with(&format!("echo: turn-{i} | history: {history} |")),
            "{out}"
        );
    }
    assert_eq!(server.hits_and_misses(None).await, (3, 0));
    server.stop().await;
}
