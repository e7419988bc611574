//! What the [`super::SessionStore`] is asked, each with who sends it and what the reply means.

use actix::prelude::*;

use super::store::{Failure, Filter, Record, Summary, Turn};
use super::SessionError;

/// Native API → store: a new session whose first prompt was answered. The reply comes after its
/// transcript (header and turn) is fsynced; it carries the new session's id.
#[derive(Message)]
#[rtype(result = "Result<Summary, SessionError>")]
pub struct CreateSession {
    pub backend: String,
    pub model: String,
    pub system_prompt: String,
    pub workdir: Option<String>,
    pub owner: Option<String>,
    pub turn: Turn,
}

/// Native API → store: one more prompt of session `id`, answered or failed. The reply comes
/// after the line is fsynced. `owner` must be the session's (when the server has keys).
#[derive(Message)]
#[rtype(result = "Result<Summary, SessionError>")]
pub struct AppendTurn {
    pub id: String,
    pub owner: Option<String>,
    pub entry: Appended,
}

/// What a continuation adds to a transcript.
#[derive(Debug, Clone)]
pub enum Appended {
    Turn(Turn),
    Failed(Failure),
}

impl From<Appended> for Record {
    fn from(a: Appended) -> Self {
        match a {
            Appended::Turn(t) => Record::Turn(t),
            Appended::Failed(f) => Record::Failed(f),
        }
    }
}

/// Native API → store: a session's summary and every record of its transcript (read from disk).
#[derive(Message)]
#[rtype(result = "Result<SessionTranscript, SessionError>")]
pub struct GetSession {
    pub id: String,
    pub owner: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SessionTranscript {
    pub summary: Summary,
    /// The turns and failures after the header, in order.
    pub records: Vec<Record>,
}

/// Native API → store: one page of the sessions `filter` admits (from the index; no disk).
#[derive(Message)]
#[rtype(result = "SessionPage")]
pub struct ListSessions {
    pub filter: Filter,
}

#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<Summary>,
    /// How many sessions the filter admits in all.
    pub total: usize,
}

/// Native API → store: delete session `id` (its file is removed before the reply).
#[derive(Message)]
#[rtype(result = "Result<(), SessionError>")]
pub struct DeleteSession {
    pub id: String,
    pub owner: Option<String>,
}

/// The retention timer → store: delete what `[sessions]` no longer keeps. Replies how many.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ApplyRetention;
