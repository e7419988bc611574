//! The native API's persisted sessions on the fake CLI: created, continued (the transcript's turns
//! replayed to the CLI), listed, deleted; ids that are not ids; sessions of another client; batch
//! results in Go clinvoker's shapes. Restarts, torn lines and retention: `sessions_disk`.

use std::path::{Path, PathBuf};

use clinvoker::sessions::store::{self, Header, Record, Tokens, Turn};
use serde_json::{json, Value};

use crate::support::*;

/// A fake-CLI server whose transcripts live in `dir`.
pub async fn server_on(
    dir: &Path,
    tweak: impl FnOnce(&mut clinvoker::config::Settings),
) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::fake(move |s| {
        s.sessions.dir = dir;
        tweak(s);
    })
    .await
}

pub async fn delete(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().delete(server.url(path));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = req.send().await.expect("DELETE");
    let bytes = resp.body().await.expect("body");
    let raw = String::from_utf8_lossy(&bytes).to_string();
    Reply {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    }
}

pub fn transcript(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.jsonl"))
}

pub fn session_id(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.raw);
    let id = r.body["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();
    assert!(store::valid_id(&id), "{}", r.raw);
    id
}

/// A transcript written by hand: a header and one turn per (prompt, answer), `last_used_ms` old.
pub fn handwritten(dir: &Path, turns: &[(&str, &str)], at_ms: u64) -> (String, Vec<u8>) {
    let id = store::new_id();
    let mut records = vec![Record::Session(Header {
        v: store::FORMAT_VERSION,
        id: id.clone(),
        created_at_ms: at_ms,
        backend: "claude".into(),
        model: "claude".into(),
        system_prompt: "Old system.".into(),
        workdir: None,
        owner: None,
    })];
    for (i, (prompt, output)) in turns.iter().enumerate() {
        records.push(Record::Turn(Turn {
            at_ms: at_ms + i as u64,
            request_id: format!("req_hand_{i}"),
            backend: "claude".into(),
            model: "claude".into(),
            prompt: prompt.to_string(),
            output: output.to_string(),
            duration_ms: 1,
            usage: Tokens::default(),
        }));
    }
    let bytes: Vec<u8> = records.iter().flat_map(store::encode).collect();
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(transcript(dir, &id), &bytes).expect("write");
    (id, bytes)
}

#[actix_rt::test]
async fn sessions_are_created_continued_listed_and_deleted() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = server_on(dir.path(), |_| {}).await;
    let first = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "first", "system_prompt": "Be brief."}),
        )
        .await;
    let id = session_id(&first);
    assert_eq!(
        (first.body["exit_code"].clone(), first.body["error"].clone()),
        (json!(0), json!(""))
    );
    assert!(
        transcript(dir.path(), &id).exists(),
        "written before the answer"
    );

    // Continued: the first turn is replayed, the system prompt is the session's.
    let second = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "second", "session_id": id}),
        )
        .await;
    assert_eq!(session_id(&second), id);
    let out = second.body["output"].as_str().expect("output");
    assert!(
        out.starts_with("echo: second | history: u:first,a:echo: first"),
        "{out}"
    );
    assert!(out.contains("| system: Be brief."), "{out}");

    // Continued as stream-json: the result line names the session.
    let streamed = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "third", "session_id": id, "output_format": "stream-json"}),
        )
        .await;
    let last: Value =
        serde_json::from_str(streamed.raw.lines().last().expect("lines")).expect("json");
    assert_eq!(
        last["result"]["session_id"],
        id.as_str(),
        "{}",
        streamed.raw
    );
    assert!(last["result"]["output"]
        .as_str()
        .expect("output")
        .contains("u:second,a:echo: second"));

    let ephemeral = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "none", "ephemeral": true}),
        )
        .await;
    assert_eq!(ephemeral.body["session_id"], "", "{}", ephemeral.raw);

    let list = server.get("/api/v1/sessions").await;
    assert_eq!(
        (list["total"].clone(), list["limit"].clone()),
        (json!(1), json!(100)),
        "{list}"
    );
    let s = &list["sessions"][0];
    assert_eq!(
        (s["id"].as_str(), s["turn_count"].as_u64()),
        (Some(id.as_str()), Some(3)),
        "{s}"
    );
    assert_eq!(
        (s["status"].as_str(), s["initial_prompt"].as_str()),
        (Some("active"), Some("first"))
    );
    assert_eq!(s["backend"], "claude");
    assert!(s["created_at"].as_str().expect("created_at").ends_with('Z'));
    let detail = server.get(&format!("/api/v1/sessions/{id}")).await;
    let turns = detail["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 3, "{detail}");
    assert_eq!(turns[1]["prompt"], "second");

    // A failed continuation is recorded (status error) but never replayed.
    let failed = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "FAKE_API_ERROR_400 x", "session_id": id}),
        )
        .await;
    assert_eq!(failed.status, 400, "{}", failed.raw);
    let errors = server.get("/api/v1/sessions?status=error").await;
    assert_eq!(errors["total"], 1, "{errors}");
    assert!(
        errors["sessions"][0]["error_message"].is_string(),
        "{errors}"
    );
    let again = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "fourth", "session_id": id}),
        )
        .await;
    let out = again.body["output"].as_str().expect("output");
    assert!(!out.contains("FAKE_API_ERROR"), "{out}");
    assert!(out.contains("u:third"), "{out}");

    assert_eq!(
        server.get("/api/v1/sessions?backend=codex").await["total"],
        0
    );
    server
        .post("/api/v1/prompt", json!({"prompt": "another"}))
        .await;
    let page = server.get("/api/v1/sessions?limit=1&offset=1").await;
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(
        page["sessions"][0]["id"],
        id.as_str(),
        "the older one is second"
    );

    let gone = delete(&server, &format!("/api/v1/sessions/{id}"), &[]).await;
    assert_eq!(gone.status, 200, "{}", gone.raw);
    assert_eq!(gone.body, json!({"deleted": true, "id": id}));
    assert!(
        !transcript(dir.path(), &id).exists(),
        "deletion removes the file"
    );
    let r = get_with(&server.url(&format!("/api/v1/sessions/{id}")), &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );
    let r = server
        .post("/api/v1/prompt", json!({"prompt": "x", "session_id": id}))
        .await;
    assert_eq!(r.status, 404, "{}", r.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn ids_that_are_not_session_ids_never_reach_the_disk() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = server_on(dir.path(), |_| {}).await;
    for path in [
        "/api/v1/sessions/..",
        "/api/v1/sessions/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/sessions/%2E%2E",
        "/api/v1/sessions/ABCDEF0123456789ABCDEF0123456789",
        "/api/v1/sessions/abc",
    ] {
        let r = get_with(&server.url(path), &[]).await;
        assert!(matches!(r.status.as_u16(), 400 | 404), "{path}: {}", r.raw);
        let r = delete(&server, path, &[]).await;
        assert!(matches!(r.status.as_u16(), 400 | 404), "{path}: {}", r.raw);
    }
    let r = get_with(&server.url("/api/v1/sessions/..%2Fx"), &[]).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(r.raw.contains("invalid session id"), "{}", r.raw);
    let r = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "x", "session_id": "../../etc/passwd"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    let r = get_with(&server.url("/api/v1/sessions?limit=5000"), &[]).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn batches_name_their_sessions_in_go_clinvokers_shapes() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = server_on(dir.path(), |_| {}).await;
    let r = server
        .post(
            "/api/v1/parallel",
            json!({"tasks": [{"prompt": "p1"}, {"prompt": "p2", "ephemeral": true}, {"prompt": "FAKE_API_ERROR_400"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let b = &r.body;
    assert_eq!(
        (
            b["total_tasks"].clone(),
            b["completed"].clone(),
            b["failed"].clone()
        ),
        (json!(3), json!(2), json!(1)),
        "{b}"
    );
    let results = b["results"].as_array().expect("results");
    let persisted = results[0]["session_id"].as_str().expect("session_id");
    assert!(store::valid_id(persisted), "{b}");
    assert_eq!(results[1]["session_id"], "");
    assert_eq!(
        (
            results[2]["exit_code"].clone(),
            results[2]["error_type"].clone()
        ),
        (json!(1), json!("invalid_request_error"))
    );
    assert!(
        results[2]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{b}"
    );
    for key in [
        "session_id",
        "backend",
        "exit_code",
        "duration_ms",
        "output",
        "error",
        "token_usage",
    ] {
        assert!(results.iter().all(|t| t.get(key).is_some()), "{key}: {b}");
    }
    let cont = server
        .post(
            "/api/v1/parallel",
            json!({"tasks": [{"prompt": "p1 again", "session_id": persisted}]}),
        )
        .await;
    assert!(
        cont.body["results"][0]["output"]
            .as_str()
            .expect("output")
            .contains("history: u:p1,"),
        "{}",
        cont.raw
    );

    let chain = json!({"steps": [{"name": "a", "prompt": "one"}, {"prompt": "FAKE_API_ERROR_400"}], "stop_on_failure": true});
    let r = server.post("/api/v1/chain", chain.clone()).await;
    let b = &r.body;
    assert_eq!(
        (
            b["total_steps"].clone(),
            b["completed_steps"].clone(),
            b["failed_step"].clone()
        ),
        (json!(2), json!(1), json!(2)),
        "{b}"
    );
    let step = &b["results"][0];
    assert_eq!(
        (
            step["step"].clone(),
            step["name"].clone(),
            step["session_id"].clone()
        ),
        (json!(1), json!("a"), json!("")),
        "chains are ephemeral: {b}"
    );
    assert_eq!(b["results"][1]["exit_code"], 1);
    let mut persisted = chain;
    persisted["persist_sessions"] = json!(true);
    let r = server.post("/api/v1/chain", persisted).await;
    assert!(
        store::valid_id(r.body["results"][0]["session_id"].as_str().expect("id")),
        "{}",
        r.raw
    );
    server.stop().await;
}

#[actix_rt::test]
async fn with_keys_a_session_is_its_clients_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = server_on(dir.path(), |s| {
        s.server.api_keys = vec!["k-one".into(), "k-two".into()]
    })
    .await;
    let url = server.url("/api/v1/prompt");
    let one = [("x-api-key", "k-one")];
    let two = [("x-api-key", "k-two")];
    let id = session_id(&post_json(&url, json!({"prompt": "mine"}), &one).await);
    let path = format!("/api/v1/sessions/{id}");
    assert_eq!(get_with(&server.url(&path), &one).await.status, 200);
    assert_eq!(get_with(&server.url(&path), &two).await.status, 404);
    assert_eq!(
        get_with(&server.url("/api/v1/sessions"), &two).await.body["total"],
        0
    );
    let r = post_json(&url, json!({"prompt": "x", "session_id": id}), &two).await;
    assert_eq!(r.status, 404, "{}", r.raw);
    assert_eq!(delete(&server, &path, &two).await.status, 404);
    assert_eq!(delete(&server, &path, &one).await.status, 200);
    server.stop().await;
}

#[actix_rt::test]
async fn with_sessions_off_every_prompt_is_ephemeral() {
    let server = TestServer::fake(|s| s.sessions.enabled = false).await;
    let r = server.post("/api/v1/prompt", json!({"prompt": "x"})).await;
    assert_eq!(
        (r.status.as_u16(), r.body["session_id"].as_str()),
        (200, Some("")),
        "{}",
        r.raw
    );
    let r = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "x", "session_id": store::new_id()}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(r.raw.contains("sessions.enabled"), "{}", r.raw);
    assert_eq!(
        get_with(&server.url("/api/v1/sessions"), &[]).await.status,
        404
    );
    server.stop().await;
}
