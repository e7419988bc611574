//! Sessions on disk: continued after a restart, a transcript with a torn last line, retention.

use clinvoker::sessions::store::{self, Record, Tokens, Turn};
use serde_json::json;

use crate::sessions::{handwritten, server_on, session_id, transcript};

#[actix_rt::test]
async fn sessions_are_continued_after_a_restart_and_a_torn_last_line_is_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = server_on(dir.path(), |_| {}).await;
    let id = session_id(
        &first
            .post("/api/v1/prompt", json!({"prompt": "before restart"}))
            .await,
    );
    first.stop().await;

    // A transcript whose last line was torn by a crash mid-write: a prefix of a turn line.
    let (torn, whole) = handwritten(
        dir.path(),
        &[("kept", "kept answer")],
        clinvoker::sessions::now_ms(),
    );
    let mut tail = store::encode(&Record::Turn(Turn {
        at_ms: 1,
        request_id: "lost".into(),
        backend: "claude".into(),
        model: "claude".into(),
        prompt: "torn prompt".into(),
        output: "torn answer".into(),
        duration_ms: 1,
        usage: Tokens::default(),
    }));
    tail.pop();
    let mut bytes = whole.clone();
    bytes.extend_from_slice(&tail);
    std::fs::write(transcript(dir.path(), &torn), &bytes).expect("write");

    let second = server_on(dir.path(), |_| {}).await;
    let list = second.get("/api/v1/sessions").await;
    assert_eq!(list["total"], 2, "{list}");
    let detail = second.get(&format!("/api/v1/sessions/{torn}")).await;
    assert_eq!(detail["turn_count"], 1, "{detail}");
    assert_eq!(
        detail["turns"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );

    let r = second
        .post(
            "/api/v1/prompt",
            json!({"prompt": "after restart", "session_id": id}),
        )
        .await;
    assert_eq!(session_id(&r), id);
    let out = r.body["output"].as_str().expect("output");
    assert!(
        out.contains("history: u:before restart,a:echo: before restart"),
        "{out}"
    );

    let r = second
        .post(
            "/api/v1/prompt",
            json!({"prompt": "go on", "session_id": torn}),
        )
        .await;
    let out = r.body["output"].as_str().expect("output");
    assert!(
        out.starts_with("echo: go on | history: u:kept,a:kept answer | system: Old system."),
        "{out}"
    );
    assert!(!out.contains("torn"), "{out}");
    // The torn tail was cut before the new line: the file reads back whole.
    let t = store::decode(&std::fs::read(transcript(dir.path(), &torn)).expect("read"))
        .expect("decodes");
    assert_eq!((t.records.len(), t.skipped), (2, 0), "{t:?}");
    second.stop().await;
}

#[actix_rt::test]
async fn retention_deletes_old_sessions_and_the_least_recently_used() {
    let dir = tempfile::tempdir().expect("tmp");
    let day = 86_400_000;
    let (old, _) = handwritten(
        dir.path(),
        &[("old", "a")],
        clinvoker::sessions::now_ms() - 40 * day,
    );
    let (recent, _) = handwritten(
        dir.path(),
        &[("recent", "b")],
        clinvoker::sessions::now_ms() - day,
    );
    let server = server_on(dir.path(), |s| {
        s.sessions.max_age_days = 30;
        s.sessions.max_count = 2;
    })
    .await;
    // The store reads its directory before it answers anything.
    assert_eq!(server.get("/api/v1/sessions").await["total"], 1);
    assert!(
        !transcript(dir.path(), &old).exists(),
        "too old: deleted at startup"
    );
    assert!(transcript(dir.path(), &recent).exists());
    let a = session_id(&server.post("/api/v1/prompt", json!({"prompt": "a"})).await);
    let b = session_id(&server.post("/api/v1/prompt", json!({"prompt": "b"})).await);
    assert!(
        !transcript(dir.path(), &recent).exists(),
        "least recently used beyond max_count"
    );
    let list = server.get("/api/v1/sessions").await;
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()], "{list}");
    server.stop().await;
}
