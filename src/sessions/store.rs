//! The transcripts' file format, sans-IO. A session is one append-only JSON-lines file,
//! `<id>.jsonl`: a `session` header line, then one `turn` line per answered prompt (or a `failed`
//! line for a prompt whose turn failed). Encoding, decoding (a torn last line is skipped, never
//! fatal), the summary a transcript folds to, the history it replays, listing and the retention
//! decision are pure functions here; time is passed in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::{ChatMessage, Role, Usage};

/// The version written in every header; a reader refuses files of a newer one.
pub const FORMAT_VERSION: u32 = 1;

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The first line: what the session is and whose it is.
    Session(Header),
    /// A prompt and its answer: replayed when the session is continued.
    Turn(Turn),
    /// A prompt whose turn failed: shown, never replayed.
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub v: u32,
    pub id: String,
    pub created_at_ms: u64,
    /// Backend and model of the first turn (each turn records its own).
    pub backend: String,
    pub model: String,
    #[serde(default)]
    pub system_prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The client that created it, on a server with keys: only that client sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub at_ms: u64,
    pub request_id: String,
    pub backend: String,
    pub model: String,
    pub prompt: String,
    pub output: String,
    pub duration_ms: u64,
    #[serde(default)]
    pub usage: Tokens,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub at_ms: u64,
    pub request_id: String,
    pub prompt: String,
    pub error: String,
}

/// Tokens of a turn, or summed over a session (Go clinvoker's `token_usage` names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cached_tokens: u64,
}

impl From<&Usage> for Tokens {
    fn from(u: &Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_tokens: u.cache_read_input_tokens,
        }
    }
}

impl Tokens {
    fn add(&mut self, other: Tokens) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
    }
}

/// What a session's last prompt did: `active` (answered) or `error` (its turn failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Error => "error",
        }
    }
}

/// The line for `record`, newline included: written with one `write_all`, so a crash leaves at
/// most one unterminated line at the end.
pub fn encode(record: &Record) -> Vec<u8> {
    // Invariant: records are strings, numbers and options of them; serializing cannot fail.
    let mut line = serde_json::to_vec(record).expect("a record always serializes");
    line.push(b'\n');
    line
}

/// A transcript as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub header: Header,
    /// Every readable record after the header, in order.
    pub records: Vec<Record>,
    /// Bytes up to the end of the last terminated line: where the next record goes (an
    /// unterminated tail beyond it is cut off first, so a new line never joins a torn one).
    pub committed_len: u64,
    /// Lines skipped: an unterminated last line (a crash mid-write), or a damaged one.
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("no session header line")]
    NoHeader,
    #[error("format version {0} is newer than this server's ({FORMAT_VERSION})")]
    NewerVersion(u32),
}

/// Reads a transcript. Only newline-terminated lines count: the answer to a prompt is sent only
/// after its line (newline included) is fsynced, so an unterminated last line was never
/// acknowledged and is skipped. A terminated line that does not parse is skipped too.
pub fn decode(bytes: &[u8]) -> Result<Transcript, DecodeError> {
    let (mut header, mut records) = (None::<Header>, Vec::new());
    let (mut committed_len, mut skipped) = (0u64, 0usize);
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let Some(text) = line.strip_suffix(b"\n") else {
            skipped += 1;
            break;
        };
        committed_len += line.len() as u64;
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match (serde_json::from_slice::<Record>(text), &header) {
            (Ok(Record::Session(h)), None) if h.v > FORMAT_VERSION => {
                return Err(DecodeError::NewerVersion(h.v))
            }
            (Ok(Record::Session(h)), None) => header = Some(h),
            (Ok(Record::Session(_)), Some(_)) | (Ok(_), None) | (Err(_), _) => skipped += 1,
            (Ok(record), Some(_)) => records.push(record),
        }
    }
    let header = header.ok_or(DecodeError::NoHeader)?;
    Ok(Transcript {
        header,
        records,
        committed_len,
        skipped,
    })
}

/// What a session is at a glance: what listing shows and filters on.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub id: String,
    /// The latest turn's backend and model (the header's until one is recorded).
    pub backend: String,
    pub model: String,
    pub system_prompt: String,
    pub workdir: Option<String>,
    pub owner: Option<String>,
    pub created_at_ms: u64,
    pub last_used_ms: u64,
    /// Answered prompts (failed ones are not counted).
    pub turn_count: usize,
    pub status: Status,
    pub initial_prompt: String,
    pub tokens: Tokens,
    /// The error of the last prompt when it failed.
    pub last_error: Option<String>,
}

impl Summary {
    pub fn new(header: &Header) -> Self {
        Self {
            id: header.id.clone(),
            backend: header.backend.clone(),
            model: header.model.clone(),
            system_prompt: header.system_prompt.clone(),
            workdir: header.workdir.clone(),
            owner: header.owner.clone(),
            created_at_ms: header.created_at_ms,
            last_used_ms: header.created_at_ms,
            turn_count: 0,
            status: Status::Active,
            initial_prompt: String::new(),
            tokens: Tokens::default(),
            last_error: None,
        }
    }

    /// Folds one more record in.
    pub fn apply(&mut self, record: &Record) {
        let (at_ms, prompt) = match record {
            Record::Session(_) => return,
            Record::Turn(t) => {
                self.backend.clone_from(&t.backend);
                self.model.clone_from(&t.model);
                self.turn_count += 1;
                self.status = Status::Active;
                self.tokens.add(t.usage);
                self.last_error = None;
                (t.at_ms, &t.prompt)
            }
            Record::Failed(f) => {
                self.status = Status::Error;
                self.last_error = Some(f.error.clone());
                (f.at_ms, &f.prompt)
            }
        };
        self.last_used_ms = self.last_used_ms.max(at_ms);
        if self.initial_prompt.is_empty() {
            self.initial_prompt.clone_from(prompt);
        }
    }

    /// The session's title: its first prompt, cut to 50 characters.
    pub fn title(&self) -> String {
        let mut chars = self.initial_prompt.chars();
        let head: String = chars.by_ref().take(47).collect();
        match chars.clone().count() > 3 {
            true => format!("{head}..."),
            false => self.initial_prompt.clone(),
        }
    }
}

pub fn summarize(t: &Transcript) -> Summary {
    let mut summary = Summary::new(&t.header);
    t.records.iter().for_each(|r| summary.apply(r));
    summary
}

/// The prior turns a continuation replays: each answered prompt and its answer, in order.
pub fn history(records: &[Record]) -> Vec<ChatMessage> {
    let text = |s: &str| serde_json::Value::String(s.to_string());
    records
        .iter()
        .filter_map(|r| match r {
            Record::Turn(t) => Some([
                ChatMessage {
                    role: Role::User,
                    content: text(&t.prompt),
                },
                ChatMessage {
                    role: Role::Assistant,
                    content: text(&t.output),
                },
            ]),
            Record::Session(_) | Record::Failed(_) => None,
        })
        .flatten()
        .collect()
}

/// Session ids: 32 lowercase hex digits (128 random bits), like Go clinvoker's.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `id` is a session id. Anything else never reaches the file system (no `..`, `/`).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The transcript's file name.
pub fn file_name(id: &str) -> String {
    format!("{id}.jsonl")
}

/// How long and how many sessions are kept (`[sessions]`); `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_count: Option<usize>,
}

/// The sessions to delete at `now_ms`: those unused for longer than `max_age`, then the least
/// recently used beyond `max_count`. Input: (id, last used).
pub fn expired<'a>(
    sessions: impl Iterator<Item = (&'a str, u64)>,
    now_ms: u64,
    retention: Retention,
) -> Vec<String> {
    let max_age_ms = retention.max_age.map(|a| a.as_millis() as u64);
    let (mut keep, mut gone): (Vec<_>, Vec<_>) = sessions
        .partition(|(_, used)| max_age_ms.is_none_or(|max| now_ms.saturating_sub(*used) <= max));
    if let Some(max) = retention.max_count {
        // Newest first; ties by id, so the decision does not depend on the input's order.
        keep.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        gone.extend(keep.drain(max.min(keep.len())..));
    }
    gone.into_iter().map(|(id, _)| id.to_string()).collect()
}

/// What `GET /api/v1/sessions` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub backend: Option<String>,
    pub status: Option<String>,
    /// Only this client's sessions (a server with keys); `None`: everyone's.
    pub owner: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

impl Filter {
    pub fn admits(&self, s: &Summary) -> bool {
        self.backend.as_ref().is_none_or(|b| *b == s.backend)
            && self.status.as_ref().is_none_or(|st| st == s.status.name())
            && self
                .owner
                .as_ref()
                .is_none_or(|o| s.owner.as_ref() == Some(o))
    }
}

/// One page of the sessions `filter` admits, most recently used first, and how many it admits.
pub fn page<'a>(all: impl Iterator<Item = &'a Summary>, filter: &Filter) -> (Vec<Summary>, usize) {
    let mut admitted: Vec<&Summary> = all.filter(|s| filter.admits(s)).collect();
    admitted.sort_by(|a, b| b.last_used_ms.cmp(&a.last_used_ms).then(a.id.cmp(&b.id)));
    let total = admitted.len();
    let page = admitted
        .into_iter()
        .skip(filter.offset)
        .take(filter.limit)
        .cloned()
        .collect();
    (page, total)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
