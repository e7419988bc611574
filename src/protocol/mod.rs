//! The dialect-neutral request and event types that travel between the HTTP layer, the
//! supervisor and the process actors. Each dialect module converts its wire format to and from
//! these; nothing below the API layer knows which dialect a request came in.

pub mod anthropic;
pub mod native;
pub mod openai;
pub mod schema;
pub mod stop;
pub mod tools;

use std::path::PathBuf;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::config::Backend;
use crate::error::ServeError;
use crate::limits::Client;

/// Who said a message in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One message of a conversation. `content` is a string or an array of Anthropic content
/// blocks, passed to the CLI as given.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: Value,
}

/// What a pool's processes cannot change once started: requests with equal keys share a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolKey {
    /// The CLI the pool's processes run.
    pub backend: Backend,
    /// The system prompt bound at the process's first `initialize` ("" = none).
    pub system_prompt: String,
    /// The processes' working directory (None: the server's empty scratch directory).
    pub workdir: Option<PathBuf>,
    pub profile: Profile,
    /// The structured-output schema bound with the first `initialize` (canonical JSON text,
    /// see [`schema::canonical`]): Claude Code keeps a schema for the process's life, and a
    /// schema process cannot serve a plain turn.
    pub output_schema: Option<String>,
    /// The client's tools (canonical JSON text, see [`tools::canonical`]), served to Claude Code
    /// as an SDK MCP server bound with the process: the CLI keeps every tool it has advertised,
    /// so a process serves one tool set for its life.
    pub tools: Option<String>,
}

/// What the CLI may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Profile {
    /// A chat model: no tools, nothing on the host is read or run.
    Chat,
    /// The CLI's tools on, in `workdir`, at most `max_turns` agent steps (opt-in by config).
    Agentic { max_turns: Option<u32> },
}

impl PoolKey {
    /// Claude Code's pool of requests without a system prompt, kept warm with `pool.min_idle`
    /// processes.
    pub fn default_pool() -> Self {
        Self::default_of(Backend::Claude)
    }

    /// `backend`'s pool of requests without a system prompt.
    pub fn default_of(backend: Backend) -> Self {
        Self::chat(backend, String::new())
    }

    /// The chat pool of a request with `system_prompt` on `backend`. Claude Code binds its system
    /// prompt when a process starts, so each prompt has its pool; Codex and Gemini take it per
    /// conversation, so one pool serves every prompt.
    /// The same holds for a structured-output schema and for client tools.
    pub fn for_chat(
        backend: Backend,
        system_prompt: &str,
        output_schema: Option<&Value>,
        tools: &[tools::ClientTool],
    ) -> Self {
        match backend {
            Backend::Claude => Self {
                output_schema: output_schema.map(schema::canonical),
                tools: tools::canonical(tools),
                ..Self::chat(backend, system_prompt.to_string())
            },
            Backend::Codex | Backend::Gemini => Self::default_of(backend),
        }
    }

    /// A chat pool in the scratch directory.
    pub fn chat(backend: Backend, system_prompt: String) -> Self {
        Self {
            backend,
            system_prompt,
            workdir: None,
            profile: Profile::Chat,
            output_schema: None,
            tools: None,
        }
    }

    /// Whether this is its backend's default pool.
    pub fn is_default(&self) -> bool {
        *self == Self::default_of(self.backend)
    }

    /// The schema to bind, when the pool has one.
    pub fn schema(&self) -> Option<Value> {
        // Made by `schema::canonical` from a `Value`: it parses back.
        self.output_schema
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    }

    /// The client tools to bind (empty: no tools, no MCP server).
    pub fn tools(&self) -> Vec<tools::ClientTool> {
        tools::from_canonical(self.tools.as_deref())
    }

    /// Whether a pre-started spare of its backend (chat profile, scratch directory) can join
    /// this pool.
    pub fn takes_spares(&self) -> bool {
        self.workdir.is_none() && self.profile == Profile::Chat
    }

    /// A short, stable, printable name for logs and the admin API: `backend/id`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.backend.name(), self.id())
    }

    /// The pool's id in admin URLs: `default`, or kind and hash (`sys-1a2b3c4d`); prefixed with
    /// the backend (`codex-default`) for every backend but Claude Code, whose ids came first.
    pub fn id(&self) -> String {
        let prefix = match self.backend {
            Backend::Claude => String::new(),
            other => format!("{}-", other.name()),
        };
        format!("{prefix}{}", self.local_id())
    }

    /// The admin id of `backend`'s spares (processes not bound to a pool yet).
    pub fn spare_id(backend: Backend) -> String {
        match backend {
            Backend::Claude => "spare".to_string(),
            other => format!("{}-spare", other.name()),
        }
    }

    fn local_id(&self) -> String {
        if self.is_default() {
            return "default".to_string();
        }
        // FNV-1a: stable across runs (unlike std's RandomState hasher), good enough for a label.
        let mut text = format!(
            "{}\0{:?}\0{:?}\0{:?}",
            self.system_prompt, self.workdir, self.profile, self.output_schema
        );
        // Appended only when present: the ids of pools without tools stay as they were.
        if let Some(tools) = &self.tools {
            text.push('\0');
            text.push_str(tools);
        }
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let kind = match self.profile {
            Profile::Chat if self.output_schema.is_some() => "json",
            Profile::Chat if self.tools.is_some() => "tools",
            Profile::Chat if self.workdir.is_none() => "sys",
            Profile::Chat => "dir",
            Profile::Agentic { .. } => "agentic",
        };
        format!("{kind}-{:08x}", hash as u32)
    }

    /// The first characters of the system prompt, for the admin API.
    pub fn summary(&self) -> String {
        let mut s: String = self.system_prompt.chars().take(60).collect();
        if s.len() < self.system_prompt.len() {
            s.push('…');
        }
        s
    }
}

/// One model turn as the HTTP layer describes it; the supervisor handle adds the event channel.
#[derive(Debug)]
pub struct TurnSpec {
    pub request_id: String,
    pub pool: PoolKey,
    /// The conversation's system prompt ("" = none); part of the pool key where the CLI binds
    /// it per process.
    pub system_prompt: String,
    /// Where the answer ends: the server watches the streamed text for these.
    pub stop_sequences: Vec<String>,
    /// The schema a structured answer must satisfy (checked by [`schema::check`]).
    pub output_schema: Option<Value>,
    pub cli_model: String,
    pub history: Vec<ChatMessage>,
    pub prompt: Value,
    /// The client's tools (empty: none). Claude Code has them from its pool key; Codex takes
    /// them per conversation (its thread's dynamic tools).
    pub tools: Vec<tools::ClientTool>,
}

impl TurnSpec {
    pub fn with_events(
        self,
        events: mpsc::UnboundedSender<TurnEvent>,
        meta: std::sync::Arc<RequestMeta>,
    ) -> TurnRequest {
        TurnRequest {
            meta,
            submitted: std::time::Instant::now(),
            request_id: self.request_id,
            pool: self.pool,
            system_prompt: self.system_prompt,
            stop_sequences: self.stop_sequences,
            output_schema: self.output_schema,
            cli_model: self.cli_model,
            history: self.history,
            prompt: self.prompt,
            tools: self.tools,
            events,
        }
    }
}

/// What the layers know of a request beyond its turn: set by the HTTP layer (client, dialect,
/// model), the supervisor (where it runs) and the process (bytes streamed). Shared read-mostly;
/// each field is written once or only counted up, so no lock is needed.
#[derive(Debug, Default)]
pub struct RequestMeta {
    /// Who sent it and what that client may do: the supervisor queues, caps and shares the pools
    /// by it. Set by the edge when the request arrives.
    pub client: std::sync::Arc<Client>,
    pub dialect: std::sync::OnceLock<&'static str>,
    /// The model name as the client sent it.
    pub model: std::sync::OnceLock<String>,
    /// The pool and process pid that took the turn.
    pub placement: std::sync::OnceLock<(String, u32)>,
    /// Text bytes forwarded to the client so far.
    pub bytes_streamed: std::sync::atomic::AtomicU64,
}

impl RequestMeta {
    pub fn for_client(client: std::sync::Arc<Client>) -> Self {
        Self {
            client,
            ..Self::default()
        }
    }

    pub fn dialect(&self) -> &'static str {
        self.dialect.get().copied().unwrap_or("unknown")
    }

    pub fn model(&self) -> &str {
        self.model.get().map_or("", String::as_str)
    }
}

/// One model turn as the supervisor and a process see it.
#[derive(Debug)]
pub struct TurnRequest {
    /// The id the client sees in the `request-id` header and in error bodies.
    pub request_id: String,
    pub pool: PoolKey,
    /// The conversation's system prompt ("" = none).
    pub system_prompt: String,
    /// Where the answer ends (see [`stop`]).
    pub stop_sequences: Vec<String>,
    /// The schema a structured answer must satisfy.
    pub output_schema: Option<Value>,
    /// The model the CLI runs (already mapped from the client's name).
    pub cli_model: String,
    /// Prior turns, replayed into the process before `prompt` (may be empty).
    pub history: Vec<ChatMessage>,
    /// The content of the final user message: the one the model answers.
    pub prompt: Value,
    /// The client's tools (empty: none), for a CLI that takes them per conversation.
    pub tools: Vec<tools::ClientTool>,
    pub meta: std::sync::Arc<RequestMeta>,
    /// When the handler submitted it (queue wait counts towards latency).
    pub submitted: std::time::Instant,
    /// Where the process sends this turn's events. The receiver belongs to the HTTP handler;
    /// when it is dropped (client gone), the process interrupts the turn.
    pub events: mpsc::UnboundedSender<TurnEvent>,
}

/// What a process reports about a running turn, in order: blocks (each `BlockStarted`, its
/// deltas, `BlockStopped`), then exactly one of `Done` or `Failed` (a channel closed without
/// either means the process vanished). Dialect-neutral: each dialect renders these itself, and
/// each CLI driver produces them from its own wire format.
#[derive(Debug)]
pub enum TurnEvent {
    /// A content block of the answer begins; its content follows as deltas.
    BlockStarted(BlockKind),
    /// Text of the open text block.
    TextDelta(String),
    /// A piece of the open tool call's input, as partial JSON.
    ToolInputDelta(String),
    /// The open block is complete.
    BlockStopped,
    /// The CLI started its answer over (it retries the upstream call): whatever it streamed of
    /// this turn so far is void. A stream that already forwarded some of it cannot be mended.
    Restarted,
    Done(TurnOutcome),
    Failed(ServeError),
}

/// What kind of block a `BlockStarted` opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    ToolUse { id: String, name: String },
}

/// One block of a finished answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopReason {
    #[default]
    EndTurn,
    MaxTokens,
    ToolUse,
    StopSequence,
    Refusal,
}

impl StopReason {
    /// The Messages API's name, which the CLIs that speak it report (unknown names are an
    /// ordinary end of turn).
    pub fn from_messages_api(name: Option<&str>) -> Self {
        match name {
            Some("max_tokens") => Self::MaxTokens,
            Some("tool_use") => Self::ToolUse,
            Some("stop_sequence") => Self::StopSequence,
            Some("refusal") => Self::Refusal,
            _ => Self::EndTurn,
        }
    }
}

/// Token usage of one turn, summed over the upstream calls it made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

/// The end of a successful turn.
#[derive(Debug, Clone, Default)]
pub struct TurnOutcome {
    /// The blocks of the final answer (text and, with tools, tool calls).
    pub content: Vec<Block>,
    pub stop_reason: StopReason,
    /// The stop sequence that ended the answer (with `StopReason::StopSequence`).
    pub stop_sequence: Option<String>,
    pub usage: Usage,
    pub cost_usd: f64,
    pub duration_ms: u64,
}

impl TurnOutcome {
    /// The answer's text blocks, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) => Some(t.as_str()),
                Block::ToolUse { .. } => None,
            })
            .collect()
    }
}
