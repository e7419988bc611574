//! Shared test plumbing: a server started in-process on port 0, HTTP helpers, the mock upstream.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use awc::http::header::HeaderMap;
use clinvoker::app::{self, Running};
use clinvoker::config::Settings;
use futures_util::StreamExt;
use serde_json::Value;

pub const FAKE_CLAUDE: &str = env!("CARGO_BIN_EXE_fake-claude");
pub const FAKE_CODEX: &str = env!("CARGO_BIN_EXE_fake-codex");
pub const FAKE_GEMINI: &str = env!("CARGO_BIN_EXE_fake-gemini");

pub struct TestServer {
    running: Option<Running>,
    pub base: String,
    _state: tempfile::TempDir,
}

/// Settings for a small, fast pool of fake CLI processes.
pub fn fake_settings() -> Settings {
    let mut s = Settings::load(None).expect("defaults load");
    s.server.port = 0;
    s.server.request_timeout_secs = 20;
    s.server.shutdown_grace_secs = 5;
    s.backends.claude.command = FAKE_CLAUDE.to_string();
    // Served only where a test asks for them (a CLI on the PATH must not join every test).
    s.backends.codex.command = "/nonexistent/codex".into();
    s.backends.gemini.command = "/nonexistent/gemini".into();
    s.pool.max_processes = 2;
    s.pool.min_idle = 1;
    s.pool.spare_processes = 0;
    s.pool.max_total_processes = 3;
    s.pool.queue_timeout_secs = 10;
    s.pool.ready_timeout_secs = 5;
    s.pool.interrupt_grace_secs = 1;
    s
}

impl TestServer {
    pub async fn start(mut settings: Settings) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let state = tempfile::tempdir().expect("temp dir");
        settings.server.state_dir = state.path().to_path_buf();
        settings.validate().expect("test settings are valid");
        let running = app::start(settings).expect("server starts");
        let base = format!("http://{}", running.addr);
        Self {
            running: Some(running),
            base,
            _state: state,
        }
    }

    pub async fn fake(tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut s = fake_settings();
        tweak(&mut s);
        Self::start(s).await
    }

    /// The server's state directory (the CLIs' private homes live under it).
    pub fn state_dir(&self) -> &std::path::Path {
        self._state.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let mut resp = client().get(self.url(path)).send().await.expect("GET");
        resp.json::<Value>()
            .limit(1 << 20)
            .await
            .expect("JSON body")
    }

    /// A GET whose body is text (`/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        let mut resp = client().get(self.url(path)).send().await.expect("GET");
        let body = resp.body().limit(1 << 22).await.expect("body");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Waits until `/health` shows at least `n` idle processes.
    pub async fn wait_idle(&self, n: u64) {
        self.wait_for(
            &format!("{n} idle processes"),
            |h| h["idle"].as_u64() >= Some(n),
            "/health",
        )
        .await;
    }

    /// Polls `path` until `pred` holds (30 s at most: the machines running tests are small and
    /// busy).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool, path: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.get(path).await;
            if pred(&v) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}: {v}"
            );
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every process of every pool from `/admin/pools`.
    pub async fn processes(&self) -> Vec<Value> {
        let pools = self.get("/admin/pools").await;
        pools["pools"]
            .as_array()
            .expect("pools")
            .iter()
            .flat_map(|p| p["processes"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The processes of `backend`'s pools from `/admin/pools`.
    pub async fn processes_of(&self, backend: &str) -> Vec<Value> {
        let pools = self.get("/admin/pools").await;
        pools["pools"]
            .as_array()
            .expect("pools")
            .iter()
            .filter(|p| p["backend"] == backend)
            .flat_map(|p| p["processes"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The pids of `backend`'s processes.
    pub async fn pids_of(&self, backend: &str) -> Vec<u64> {
        let procs = self.processes_of(backend).await;
        procs.iter().filter_map(|p| p["pid"].as_u64()).collect()
    }

    /// `conversation_hits` and `conversation_misses` of every pool, summed (`admin`: the admin
    /// key, on a server with keys).
    pub async fn hits_and_misses(&self, admin: Option<&str>) -> (u64, u64) {
        let headers: Vec<(&str, &str)> = admin.map(|k| ("x-api-key", k)).into_iter().collect();
        let pools = get_with(&self.url("/admin/pools"), &headers).await.body;
        let sum = |name: &str| -> u64 {
            pools["pools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["counters"][name].as_u64())
                .sum()
        };
        (sum("conversation_hits"), sum("conversation_misses"))
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        post_json(&self.url(path), body, &[]).await
    }

    pub async fn messages(&self, body: Value) -> Reply {
        self.post("/anthropic/v1/messages", body).await
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl Reply {
    pub fn text(&self) -> String {
        self.body["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Asserts an Anthropic-shaped error of `status` and `kind`; returns its message.
    pub fn anthropic_error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.raw);
        assert_eq!(self.body["type"], "error", "{}", self.raw);
        assert_eq!(self.body["error"]["type"], kind, "{}", self.raw);
        self.body["error"]["message"]
            .as_str()
            .expect("message")
            .to_string()
    }
}

pub async fn post_json(url: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = client()
        .post(url)
        .insert_header(("content-type", "application/json"));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let resp = req.send_body(body.to_string()).await.expect("POST");
    Reply::read(resp).await
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let resp = req.send().await.expect("GET");
    Reply::read(resp).await
}

impl Reply {
    async fn read<S>(mut resp: awc::ClientResponse<S>) -> Self
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let bytes = resp.body().limit(16 << 20).await.expect("body");
        let raw = String::from_utf8_lossy(&bytes).to_string();
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
        }
    }
}

/// `user` for another model (and so, by its name, another backend).
pub fn user_of(model: &str, text: &str) -> Value {
    let mut b = user(text);
    b["model"] = Value::String(model.into());
    b
}

pub fn user(text: &str) -> Value {
    serde_json::json!({"model": "claude", "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
}

pub fn streaming(text: &str) -> Value {
    let mut b = user(text);
    b["stream"] = Value::Bool(true);
    b
}

/// The chunks of a Chat Completions stream, `[DONE]` left out; every one must be JSON.
pub fn openai_chunks(raw: &str) -> Vec<Value> {
    raw.split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect()
}

/// The text a Chat Completions stream delivered.
pub fn openai_stream_text(raw: &str) -> String {
    openai_chunks(raw)
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Parses a complete SSE body into (event, data) pairs.
pub fn parse_sse(raw: &str) -> Vec<(String, Value)> {
    raw.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let mut event = String::new();
            let mut data = Value::Null;
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).expect("SSE data is JSON");
                }
            }
            (event, data)
        })
        .collect()
}

/// Reads an SSE response until `n` bytes of events arrived, then drops the connection.
pub async fn read_then_disconnect(url: &str, body: Value, until: &str) -> String {
    let mut resp = client()
        .post(url)
        .insert_header(("content-type", "application/json"))
        .send_body(body.to_string())
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);
    let mut seen = String::new();
    while let Some(chunk) = resp.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        if seen.contains(until) {
            break;
        }
    }
    seen
}

pub fn pid_alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The mock Anthropic upstream (tests/support/mock_anthropic.py), one per test binary; it exits
/// when this process does (its stdin closes).
pub struct Mock {
    pub port: u16,
    _child: Child,
}

pub fn mock() -> &'static Mock {
    static MOCK: OnceLock<Mock> = OnceLock::new();
    MOCK.get_or_init(|| Mock::start("mock_anthropic.py"))
}

/// The mock OpenAI Responses upstream (tests/support/mock_openai_responses.py), for Codex.
pub fn responses_mock() -> &'static Mock {
    static MOCK: OnceLock<Mock> = OnceLock::new();
    MOCK.get_or_init(|| Mock::start("mock_openai_responses.py"))
}

/// The mock Gemini upstream (tests/support/mock_gemini.py).
pub fn gemini_mock() -> &'static Mock {
    static MOCK: OnceLock<Mock> = OnceLock::new();
    MOCK.get_or_init(|| Mock::start("mock_gemini.py"))
}

impl Mock {
    /// Starts `tests/support/<script>` on a free port; it exits when this process does.
    fn start(script: &str) -> Mock {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let script = format!("{}/tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
        let child = Command::new("python3")
            .args([&script, &port.to_string(), "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs the mock upstream");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "mock upstream {script} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Mock {
            port,
            _child: child,
        }
    }

    /// The bodies of the upstream requests that mention `token` anywhere.
    pub fn bodies_with(&self, token: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|r| r["body"].to_string().contains(token))
            .map(|r| r["body"].clone())
            .collect()
    }

    /// Every upstream request the mock saw.
    pub fn log(&self) -> Vec<Value> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("mock");
        use std::io::Write;
        write!(stream, "GET /__log HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read");
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or("[]");
        serde_json::from_str::<Vec<Value>>(body).expect("log JSON")
    }

    /// The upstream requests whose messages mention `token`.
    pub fn requests_with(&self, token: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|r| r["body"]["messages"].to_string().contains(token))
            .map(|r| r["body"].clone())
            .collect()
    }
}
