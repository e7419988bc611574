//! Parked conversations, as the book sees them: what a conversation looks like when its client
//! resends it, and whether a new request continues one that a process still holds.
//!
//! SDK clients are stateless: every request carries the whole conversation. After a clean turn
//! a process keeps its conversation (it is *parked*), and the book remembers the conversation's
//! [`Transcript`] — who owns it and every message including the answer just given, normalised.
//! A request whose messages, minus the new trailing user message(s), equal a parked transcript
//! goes to that process with only the new messages ([`Lookup`]); anything else is a miss and is
//! replayed into a clean conversation as before.
//!
//! A turn that ended because the model called client tools is parked too, still waiting on the
//! calls ([`Parked::awaiting_tools`]): only a request whose one new message holds exactly the
//! results of those calls continues it; the process answers the calls and the model goes on.
//!
//! Normal form: a message is its role and its content as a list of blocks, where a string is
//! one text block, adjacent text blocks are joined, and what does not reach the model
//! (`cache_control`, `citations`) is dropped — so an answer resent as a string, as the SDK's
//! block list or as one text block compares equal.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::process::ConversationId;
use crate::protocol::{Block, ChatMessage, Role, TurnRequest};

/// A conversation as its client will resend it: its owner and its messages, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Client, model, system prompt and tools: a conversation never continues across any of
    /// them (Codex keeps a thread's tools for its life).
    owner: String,
    /// Each message's normal form as JSON text (`role` and `content` blocks).
    messages: Vec<String>,
    /// Of `owner` and `messages`, to compare cheaply before comparing exactly.
    hash: u64,
}

impl Transcript {
    fn new(owner: String, messages: Vec<String>) -> Self {
        let hash = hash_of(&owner, &messages);
        Self {
            owner,
            messages,
            hash,
        }
    }

    /// Messages in the conversation.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The conversation after the model answered with `answer`.
    pub fn answered(self, answer: &[Block]) -> Self {
        let blocks: Vec<Value> = answer
            .iter()
            .map(|b| match b {
                Block::Text(text) => json!({"type": "text", "text": text}),
                Block::ToolUse { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
            })
            .collect();
        let mut messages = self.messages;
        messages.push(normal_form(Role::Assistant, &Value::Array(blocks)));
        Self::new(self.owner, messages)
    }
}

/// Of a conversation's owner and messages.
fn hash_of(owner: &str, messages: &[String]) -> u64 {
    let mut hasher = DefaultHasher::new();
    owner.hash(&mut hasher);
    messages.hash(&mut hasher);
    hasher.finish()
}

/// What the book needs to know of a request to park or continue its conversation.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The whole conversation as sent: the messages resent before the new trailing user
    /// message(s) — the *prefix*, which a parked transcript must equal for the request to
    /// continue it — then the new ones.
    pub sent: Transcript,
    /// Messages in the prefix, and its hash (as a transcript of its own would have).
    prefix_len: usize,
    prefix_hash: u64,
    /// The `tool_use_id`s answered, sorted, when the one new message holds only tool results.
    pub tool_results: Option<Vec<String>>,
}

impl Lookup {
    /// The request's conversation, normalised.
    pub fn of(request: &TurnRequest) -> Self {
        let owner = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            request.meta.client.id.as_str(),
            request.cli_model,
            request.system_prompt,
            crate::protocol::tools::canonical(&request.tools).unwrap_or_default()
        );
        let mut messages: Vec<String> = request
            .history
            .iter()
            .map(|m| normal_form(m.role, &m.content))
            .collect();
        messages.push(normal_form(Role::User, &request.prompt));
        let new = trailing_user_messages(&request.history) + 1;
        let prefix_len = messages.len() - new;
        let prefix_hash = hash_of(&owner, &messages[..prefix_len]);
        Self {
            sent: Transcript::new(owner, messages),
            prefix_len,
            prefix_hash,
            tool_results: (new == 1)
                .then(|| tool_result_ids(&request.prompt))
                .flatten(),
        }
    }

    /// Whether the process holding `parked` can continue this request's conversation: the
    /// messages before the new ones are the parked conversation, and when it waits on tool
    /// calls, the new message is exactly their results.
    pub fn continues(&self, parked: &Parked) -> bool {
        let Some(transcript) = &parked.transcript else {
            return false;
        };
        let same = self.has_history()
            && transcript.hash == self.prefix_hash
            && transcript.owner == self.sent.owner
            && transcript.messages == self.prefix();
        same && (parked.awaiting_tools.is_empty()
            || self.tool_results.as_ref() == Some(&parked.awaiting_tools))
    }
}

impl Lookup {
    /// The messages resent before the new ones.
    fn prefix(&self) -> &[String] {
        &self.sent.messages[..self.prefix_len]
    }

    /// Whether the request resends earlier turns (a first turn continues nothing).
    pub fn has_history(&self) -> bool {
        self.prefix_len > 0
    }

    /// Messages the request adds to its conversation.
    pub fn new_messages(&self) -> usize {
        self.sent.len() - self.prefix_len
    }

    /// Whether the request continues `earlier` once answered: its prefix is `earlier` and one
    /// message more (the answer to it).
    pub fn follows(&self, earlier: &Transcript) -> bool {
        self.sent.owner == earlier.owner
            && self.prefix_len == earlier.messages.len() + 1
            && self.prefix().starts_with(&earlier.messages)
    }
}

/// The sorted `tool_use_id`s of a user message made only of tool results.
fn tool_result_ids(content: &Value) -> Option<Vec<String>> {
    let blocks = content.as_array().filter(|b| !b.is_empty())?;
    let mut ids = blocks
        .iter()
        .map(|b| match b.get("type").and_then(Value::as_str) {
            Some("tool_result") => b
                .get("tool_use_id")
                .and_then(Value::as_str)
                .map(String::from),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()?;
    ids.sort();
    Some(ids)
}

/// Trailing user messages of `history` (the new messages besides the prompt).
fn trailing_user_messages(history: &[ChatMessage]) -> usize {
    history
        .iter()
        .rev()
        .take_while(|m| m.role == Role::User)
        .count()
}

/// A conversation a process holds between turns.
#[derive(Debug, Clone)]
pub struct Parked {
    pub conversation: ConversationId,
    /// What its client will resend; `None` when the client's copy differs from the CLI's (an
    /// answer cut at a stop sequence): it can never be continued and waits to be forgotten.
    pub transcript: Option<Transcript>,
    /// The calls of client tools it waits on (sorted `tool_use` ids), when its turn stopped for
    /// them; empty for a finished turn.
    pub awaiting_tools: Vec<String>,
    /// Turns it has had.
    pub turns: u32,
    /// When its first turn was dispatched and when its newest ended.
    pub born: Instant,
    pub parked_at: Instant,
}

/// A parked conversation for the admin views.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ParkedView {
    pub conversation: ConversationId,
    pub turns: u32,
    /// Messages it holds.
    pub messages: usize,
    pub age_secs: u64,
    pub idle_secs: u64,
    /// Whether a request can continue it (false: waits to be reset).
    pub continuable: bool,
    /// Client tool calls it waits on (its turn stopped for them).
    pub awaiting_tool_results: usize,
}

impl Parked {
    pub fn view(&self, now: Instant) -> ParkedView {
        ParkedView {
            conversation: self.conversation,
            turns: self.turns,
            messages: self.transcript.as_ref().map_or(0, Transcript::len),
            age_secs: now.saturating_duration_since(self.born).as_secs(),
            idle_secs: now.saturating_duration_since(self.parked_at).as_secs(),
            continuable: self.transcript.is_some(),
            awaiting_tool_results: self.awaiting_tools.len(),
        }
    }

    /// The sorted ids of the client tool calls in `answer`.
    pub fn tool_calls_of(answer: &[Block]) -> Vec<String> {
        let mut ids: Vec<String> = answer
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { id, .. } => Some(id.clone()),
                Block::Text(_) => None,
            })
            .collect();
        ids.sort();
        ids
    }
}

/// `content` of a `role` message in normal form, as JSON text.
fn normal_form(role: Role, content: &Value) -> String {
    let role = match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    json!({"role": role, "content": normal_blocks(content)}).to_string()
}

fn normal_blocks(content: &Value) -> Vec<Value> {
    let blocks: Vec<Value> = match content {
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        Value::Array(items) => items.iter().map(normal_block).collect(),
        other => vec![other.clone()],
    };
    let mut joined: Vec<Value> = Vec::with_capacity(blocks.len());
    // An empty text block says nothing (an OpenAI answer of only tool calls has none at all).
    for block in blocks.into_iter().filter(|b| block_text(b) != Some("")) {
        let text = block_text(&block).map(String::from);
        match (text, joined.last_mut()) {
            (Some(text), Some(last)) if block_text(last).is_some() => {
                let mut merged = block_text(last).unwrap_or_default().to_string();
                merged.push_str(&text);
                *last = json!({"type": "text", "text": merged});
            }
            _ => joined.push(block),
        }
    }
    joined
}

fn block_text(block: &Value) -> Option<&str> {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => block.get("text").and_then(Value::as_str),
        _ => None,
    }
}

/// One content block without what never reaches the model; a tool result's content in normal
/// form too.
fn normal_block(block: &Value) -> Value {
    let Value::Object(fields) = block else {
        return block.clone();
    };
    let mut kept: Map<String, Value> = fields
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "cache_control" | "citations") && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if kept.get("type").and_then(Value::as_str) == Some("tool_result") {
        if let Some(content) = kept.get("content").cloned() {
            kept.insert("content".into(), Value::Array(normal_blocks(&content)));
        }
        if kept.get("is_error") == Some(&Value::Bool(false)) {
            kept.remove("is_error");
        }
    }
    Value::Object(kept)
}

#[cfg(test)]
#[path = "parking_tests.rs"]
mod tests;
