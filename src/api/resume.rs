//! What a prompt does with its session: [`resume`] before the turn (a continued session's turns
//! become the prompt's history, its settings fill the request's gaps), [`SessionPlan::record`]
//! after it (a new session, or one more line of the continued one, fsynced before the answer is
//! sent).

use super::error::ApiError;
use super::sessions::owner;
use super::AppState;
use crate::protocol::native::PromptRequest;
use crate::protocol::{ChatMessage, RequestMeta, Usage};
use crate::sessions::messages::{Appended, CreateSession};
use crate::sessions::store::{self, Failure, Turn};
use crate::sessions::{now_ms, SessionStoreHandle};

/// A prompt as it will run, with its session.
pub(super) struct Resumed {
    /// The request, its gaps filled from the continued session.
    pub request: PromptRequest,
    /// The continued session's answered turns.
    pub history: Vec<ChatMessage>,
    pub session: SessionPlan,
}

/// What a prompt records once it has run.
pub(super) enum SessionPlan {
    /// `ephemeral`, or sessions are off.
    Nothing,
    /// A new session, once the prompt is answered.
    Create {
        store: SessionStoreHandle,
        owner: Option<String>,
    },
    /// One more line of session `id`.
    Append {
        store: SessionStoreHandle,
        id: String,
        owner: Option<String>,
    },
}

/// Before the turn: a prompt with `session_id` gets that session's turns as its history, and its
/// backend and model (unless it names either), system prompt and workdir (unless it sets them).
/// With `ephemeral` as well the session is replayed but not recorded to.
pub(super) async fn resume(
    state: &AppState,
    p: &PromptRequest,
    meta: &RequestMeta,
) -> Result<Resumed, ApiError> {
    let owner = owner(state, meta);
    let mut resumed = Resumed {
        request: p.clone(),
        history: Vec::new(),
        session: SessionPlan::Nothing,
    };
    let Some(store) = state.sessions.clone() else {
        return match p.session_id {
            None => Ok(resumed),
            Some(_) => Err(ApiError::InvalidParam {
                param: "session_id".into(),
                message: "session_id: sessions are disabled on this server (sessions.enabled)"
                    .into(),
            }),
        };
    };
    let Some(id) = p.session_id.clone() else {
        if !p.ephemeral {
            resumed.session = SessionPlan::Create { store, owner };
        }
        return Ok(resumed);
    };
    let t = store.get(&id, owner.clone()).await?;
    let (r, s) = (&mut resumed.request, &t.summary);
    if r.backend.is_none() && r.model.is_none() {
        r.backend = Some(s.backend.clone());
        r.model = Some(s.model.clone());
    }
    r.system_prompt
        .get_or_insert_with(|| s.system_prompt.clone());
    if r.workdir.is_none() {
        r.workdir.clone_from(&s.workdir);
    }
    resumed.history = store::history(&t.records);
    if !p.ephemeral {
        resumed.session = SessionPlan::Append { store, id, owner };
    }
    Ok(resumed)
}

/// An answered prompt, as recorded.
pub(super) struct Answered<'a> {
    pub request: &'a PromptRequest,
    pub backend: &'a str,
    pub model: &'a str,
    pub output: String,
    pub usage: &'a Usage,
    pub duration_ms: u64,
    pub request_id: &'a str,
}

impl SessionPlan {
    /// After the turn: records it — a new session or one more line — fsynced, before the answer
    /// is sent. The session's id; "" when nothing is recorded.
    pub async fn record(&self, a: Answered<'_>) -> Result<String, ApiError> {
        let turn = Turn {
            at_ms: now_ms(),
            request_id: a.request_id.to_string(),
            backend: a.backend.to_string(),
            model: a.model.to_string(),
            prompt: a.request.prompt.clone(),
            output: a.output,
            duration_ms: a.duration_ms,
            usage: a.usage.into(),
        };
        let summary = match self {
            SessionPlan::Nothing => return Ok(String::new()),
            SessionPlan::Create { store, owner } => {
                let create = CreateSession {
                    backend: a.backend.to_string(),
                    model: a.model.to_string(),
                    system_prompt: a.request.system_prompt.clone().unwrap_or_default(),
                    workdir: a.request.workdir.clone(),
                    owner: owner.clone(),
                    turn,
                };
                store.create(create).await?
            }
            SessionPlan::Append { store, id, owner } => {
                store
                    .append(id, owner.clone(), Appended::Turn(turn))
                    .await?
            }
        };
        Ok(summary.id)
    }

    /// A continued session's failed turn is recorded too (its status becomes `error`); a
    /// failure to record it is only logged, the client gets the turn's own error.
    pub async fn record_failure(&self, prompt: &str, error: &ApiError, request_id: &str) {
        let SessionPlan::Append { store, id, owner } = self else {
            return;
        };
        let failure = Failure {
            at_ms: now_ms(),
            request_id: request_id.to_string(),
            prompt: prompt.to_string(),
            error: error.to_string(),
        };
        if let Err(e) = store
            .append(id, owner.clone(), Appended::Failed(failure))
            .await
        {
            log::warn!("request {request_id}: session {id}: the failed turn was not recorded: {e}");
        }
    }
}
