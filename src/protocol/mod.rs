//! The dialect-neutral request and event types that travel between the HTTP layer, the
//! supervisor and the process actors. Each dialect module converts its wire format to and from
//! these; nothing below the API layer knows which dialect a request came in.

pub mod anthropic;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ServeError;

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
    /// The system prompt bound at the process's first `initialize` ("" = none).
    pub system_prompt: String,
}

impl PoolKey {
    /// The pool of requests without a system prompt, kept warm with `pool.min_idle` processes.
    pub fn default_pool() -> Self {
        Self {
            system_prompt: String::new(),
        }
    }

    pub fn is_default(&self) -> bool {
        self.system_prompt.is_empty()
    }

    /// A short, stable, printable name for logs and the admin API.
    pub fn name(&self) -> String {
        if self.is_default() {
            return "claude/default".to_string();
        }
        // FNV-1a: stable across runs (unlike std's RandomState hasher), good enough for a label.
        let hash = self
            .system_prompt
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        format!("claude/sys-{:08x}", hash as u32)
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
    pub cli_model: String,
    pub history: Vec<ChatMessage>,
    pub prompt: Value,
}

impl TurnSpec {
    pub fn with_events(self, events: mpsc::UnboundedSender<TurnEvent>) -> TurnRequest {
        TurnRequest {
            request_id: self.request_id,
            pool: self.pool,
            cli_model: self.cli_model,
            history: self.history,
            prompt: self.prompt,
            events,
        }
    }
}

/// One model turn as the supervisor and a process see it.
#[derive(Debug)]
pub struct TurnRequest {
    /// The id the client sees in the `request-id` header and in error bodies.
    pub request_id: String,
    pub pool: PoolKey,
    /// The model the CLI runs (already mapped from the client's name).
    pub cli_model: String,
    /// Prior turns, replayed into the process before `prompt` (may be empty).
    pub history: Vec<ChatMessage>,
    /// The content of the final user message: the one the model answers.
    pub prompt: Value,
    /// Where the process sends this turn's events. The receiver belongs to the HTTP handler;
    /// when it is dropped (client gone), the process interrupts the turn.
    pub events: mpsc::UnboundedSender<TurnEvent>,
}

/// What a process reports about a running turn, in order: any number of `Stream`, then exactly
/// one of `Done` or `Failed` (a channel closed without either means the process vanished).
#[derive(Debug)]
pub enum TurnEvent {
    /// A raw Messages-API streaming event from the CLI (`message_start`, `content_block_delta`, …).
    Stream(Value),
    Done(TurnOutcome),
    Failed(ServeError),
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
    /// Content blocks of the final assistant message (text and, with tools, tool_use).
    pub content: Vec<Value>,
    pub stop_reason: Option<String>,
    pub usage: Usage,
    pub cost_usd: f64,
    pub duration_ms: u64,
}
