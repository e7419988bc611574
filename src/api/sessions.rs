//! The native API's session routes, in Go clinvoker's shapes: `GET /api/v1/sessions`, and `GET`
//! and `DELETE` on `/api/v1/sessions/{id}`. What a prompt does with its session is
//! `resume.rs`'s; the transcripts are the [`crate::sessions::SessionStore`]'s.
//!
//! On a server with keys a session belongs to the client that created it: another client's
//! requests find no such session (404). Without keys every caller sees every session.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, DialectError};
use super::native::native;
use super::{only, AppState, RequestId};
use crate::limits::bucket::rfc3339;
use crate::protocol::RequestMeta;
use crate::sessions::messages::SessionTranscript;
use crate::sessions::store::{Filter, Record, Summary, Tokens};
use crate::sessions::SessionStoreHandle;

/// `limit` when a listing names none (as Go clinvoker's), and the most it may name.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/sessions")
            .get(list)
            .default_service(only("GET")),
    )
    .service(
        web::resource("/api/v1/sessions/{id}")
            .get(get)
            .delete(delete)
            .default_service(only("GET, DELETE")),
    );
}

/// A session as Go clinvoker's `SessionInfo`, plus `system_prompt` and `error_message`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub backend: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub last_used: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    pub model: String,
    pub initial_prompt: String,
    /// `active` (its last prompt was answered) or `error` (its turn failed).
    pub status: String,
    /// Prompts answered.
    pub turn_count: usize,
    pub token_usage: SessionTokens,
    /// The first prompt, cut to 50 characters.
    pub title: String,
    pub system_prompt: String,
    /// The last prompt's error, when its turn failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionTokens {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub total_tokens: u64,
}

impl From<Tokens> for SessionTokens {
    fn from(t: Tokens) -> Self {
        Self {
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cached_tokens: t.cached_tokens,
            total_tokens: t.input_tokens + t.output_tokens,
        }
    }
}

fn time(ms: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

impl From<Summary> for SessionInfo {
    fn from(s: Summary) -> Self {
        Self {
            title: s.title(),
            created_at: time(s.created_at_ms),
            last_used: time(s.last_used_ms),
            status: s.status.name().to_string(),
            token_usage: s.tokens.into(),
            id: s.id,
            backend: s.backend,
            working_dir: s.workdir,
            model: s.model,
            initial_prompt: s.initial_prompt,
            turn_count: s.turn_count,
            system_prompt: s.system_prompt,
            error_message: s.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
    /// Sessions the filters admit in all.
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

/// `GET /api/v1/sessions/{id}`: the session and its transcript.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionInfo,
    pub turns: Vec<TurnInfo>,
}

/// One prompt of a transcript: answered (`error` "") or failed (`output` "").
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnInfo {
    pub at: String,
    pub request_id: String,
    pub prompt: String,
    pub output: String,
    pub error: String,
    pub backend: String,
    pub model: String,
    pub duration_ms: u64,
    pub token_usage: SessionTokens,
}

impl TurnInfo {
    fn of(record: Record) -> Option<Self> {
        match record {
            Record::Session(_) => None,
            Record::Turn(t) => Some(Self {
                at: time(t.at_ms),
                request_id: t.request_id,
                prompt: t.prompt,
                output: t.output,
                error: String::new(),
                backend: t.backend,
                model: t.model,
                duration_ms: t.duration_ms,
                token_usage: t.usage.into(),
            }),
            Record::Failed(f) => Some(Self {
                at: time(f.at_ms),
                request_id: f.request_id,
                prompt: f.prompt,
                output: String::new(),
                error: f.error,
                backend: String::new(),
                model: String::new(),
                duration_ms: 0,
                token_usage: Tokens::default().into(),
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteSessionResponse {
    pub deleted: bool,
    pub id: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only sessions whose latest turn ran on this backend.
    pub backend: Option<String>,
    /// Only sessions of this status (`active`, `error`).
    pub status: Option<String>,
    /// Most sessions returned (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Sessions skipped, most recently used first.
    pub offset: Option<usize>,
}

/// The client whose sessions a request sees: its own on a server with keys, `None` (everyone's)
/// without.
pub(super) fn owner(state: &AppState, meta: &RequestMeta) -> Option<String> {
    let keyed = !state.api_keys.is_empty() || !state.admin_keys.is_empty();
    keyed.then(|| meta.client.id.to_string())
}

fn store(state: &AppState) -> Result<&SessionStoreHandle, ApiError> {
    state.sessions.as_ref().ok_or_else(|| {
        ApiError::NotFound("sessions are disabled on this server (sessions.enabled)".into())
    })
}

/// `GET /api/v1/sessions`
#[utoipa::path(get, path = "/api/v1/sessions", tag = "native", params(ListQuery),
    responses((status = 200, description = "Sessions, most recently used first", body = SessionList), super::openapi::NativeErrors))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let q = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| native(&req, ApiError::InvalidRequest(format!("query: {e}"))))?
        .into_inner();
    let limit = match q.limit.unwrap_or(0) {
        0 => DEFAULT_LIMIT,
        n if n > MAX_LIMIT => {
            return Err(native(
                &req,
                ApiError::InvalidParam {
                    param: "limit".into(),
                    message: format!("limit: at most {MAX_LIMIT}"),
                },
            ))
        }
        n => n,
    };
    let filter = Filter {
        backend: q.backend,
        status: q.status,
        owner: owner(&state, &RequestId::meta(&req)),
        limit,
        offset: q.offset.unwrap_or(0),
    };
    let offset = filter.offset;
    let page = store(&state)
        .map_err(|e| native(&req, e))?
        .list(filter)
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(SessionList {
        sessions: page.sessions.into_iter().map(SessionInfo::from).collect(),
        total: page.total,
        limit,
        offset,
    }))
}

/// `GET /api/v1/sessions/{id}`
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "native",
    params(("id" = String, Path, description = "The session id (32 hex digits)")),
    responses((status = 200, description = "The session and its transcript", body = SessionDetail), super::openapi::NativeErrors))]
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let owner = owner(&state, &RequestId::meta(&req));
    let SessionTranscript { summary, records } = store(&state)
        .map_err(|e| native(&req, e))?
        .get(&path, owner)
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(SessionDetail {
        session: summary.into(),
        turns: records.into_iter().filter_map(TurnInfo::of).collect(),
    }))
}

/// `DELETE /api/v1/sessions/{id}`
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "native",
    params(("id" = String, Path, description = "The session id (32 hex digits)")),
    responses((status = 200, description = "Deleted: its transcript file is gone", body = DeleteSessionResponse), super::openapi::NativeErrors))]
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let owner = owner(&state, &RequestId::meta(&req));
    store(&state)
        .map_err(|e| native(&req, e))?
        .delete(&path, owner)
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(DeleteSessionResponse {
        deleted: true,
        id: path.into_inner(),
    }))
}
