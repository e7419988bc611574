//! The native REST API (`/api/v1`): one prompt, several in parallel, a chain, a comparison across
//! backends — all through the same supervisor and pools as the SDK dialects — and the backend list.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, DialectError};
pub(super) use super::native_error as native;
use super::sse;
use super::{only, read_body, AppState, RequestId};
use crate::protocol::native::*;
use std::sync::Arc;

use super::resume::{self, Answered, Resumed};
use super::stream_json::{ndjson, StreamEnd};
use crate::protocol::{ChatMessage, PoolKey, Profile, RequestMeta, TurnSpec};
use crate::routing::Backend;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/prompt")
            .post(prompt)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/api/v1/parallel")
            .post(super::batch::parallel)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/api/v1/chain")
            .post(super::batch::chain)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/api/v1/compare")
            .post(super::batch::compare)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/api/v1/backends")
            .get(backends)
            .default_service(only("GET")),
    );
}

pub(super) async fn body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<T, DialectError> {
    let bytes = read_body(payload, state.max_body_bytes)
        .await
        .map_err(|e| native(req, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        native(
            req,
            ApiError::InvalidRequest(format!("invalid request body: {e}")),
        )
    })
}

/// A prompt checked and turned into a turn: which backend/model serve it, in which pool.
struct Planned {
    backend: Backend,
    model: String,
    spec: TurnSpec,
}

fn plan(
    state: &AppState,
    p: &PromptRequest,
    request_id: &str,
    history: Vec<ChatMessage>,
) -> Result<Planned, ApiError> {
    let invalid = |m: String| ApiError::InvalidRequest(m);
    if p.prompt.trim().is_empty() {
        return Err(invalid("prompt: must not be empty".into()));
    }
    let explicit = match &p.backend {
        None => None,
        Some(name) => Some(Backend::parse(name).ok_or_else(|| {
            invalid(format!(
                "backend: unknown backend {name:?}; use claude, codex or gemini"
            ))
        })?),
    };
    // Without a model, the backend's own name, which its model table maps.
    let model = p
        .model
        .clone()
        .unwrap_or_else(|| explicit.unwrap_or(Backend::Claude).name().to_string());
    let route = state.router.route(&model);
    let backend = explicit.unwrap_or(route.backend);
    if backend != Backend::Claude && state.router.installed_at(backend).is_none() {
        return Err(state.router.unserved(backend).into());
    }
    if backend != Backend::Claude && (p.workdir.is_some() || p.profile != ProfileName::Chat) {
        return Err(invalid(format!(
            "workdir and profile: the {} backend serves the chat profile only",
            backend.name()
        )));
    }
    let workdir = match &p.workdir {
        None => None,
        Some(dir) => Some(
            check_workdir(dir, &state.allowed_workdirs, &state.blocked_workdirs)
                .map_err(invalid)?,
        ),
    };
    let profile = match p.profile {
        ProfileName::Chat => Profile::Chat,
        ProfileName::Agentic if state.agentic_enabled => Profile::Agentic {
            max_turns: p.max_turns,
        },
        ProfileName::Agentic => {
            return Err(invalid(
                "profile: the agentic profile is disabled (profiles.agentic.enabled)".into(),
            ))
        }
    };
    let system_prompt = p.system_prompt.clone().unwrap_or_default();
    let (pool, cli_model) = match backend {
        Backend::Claude => {
            let pool = PoolKey {
                backend,
                system_prompt: system_prompt.clone(),
                workdir,
                profile,
                output_schema: None,
                tools: None,
            };
            (pool, state.router.claude_model(&model))
        }
        // A name of another backend's family, sent to this one, passes as it is.
        _ if route.backend != backend => (
            PoolKey::for_chat(backend, &system_prompt, None, &[]),
            model.clone(),
        ),
        _ => (
            PoolKey::for_chat(backend, &system_prompt, None, &[]),
            route.model,
        ),
    };
    let spec = TurnSpec {
        request_id: request_id.to_string(),
        system_prompt,
        stop_sequences: Vec::new(),
        output_schema: None,
        pool,
        cli_model,
        history,
        prompt: Value::String(p.prompt.clone()),
        tools: Vec::new(),
    };
    Ok(Planned {
        backend,
        model,
        spec,
    })
}

/// Runs one prompt to its end, in its session (see [`sessions::resume`]).
pub(super) async fn run(
    state: &AppState,
    p: &PromptRequest,
    request_id: &str,
    meta: Arc<RequestMeta>,
) -> Result<PromptResult, ApiError> {
    let started = Instant::now();
    let Resumed {
        request,
        history,
        session,
    } = resume::resume(state, p, &meta).await?;
    let planned = plan(state, &request, request_id, history)?;
    let (backend, model) = (planned.backend.name(), planned.model.clone());
    let turn = async {
        let (first, mut events) = sse::start(&state.supervisor, planned.spec, meta, &model).await?;
        sse::collect(first, &mut events).await
    };
    let outcome = match turn.await {
        Ok(outcome) => outcome,
        Err(e) => {
            let e = ApiError::Serve(e);
            session.record_failure(&p.prompt, &e, request_id).await;
            return Err(e);
        }
    };
    let ms = started.elapsed().as_millis() as u64;
    let mut result = PromptResult::new(backend, &model, &outcome, ms, request_id);
    result.session_id = session
        .record(Answered {
            request: &request,
            backend,
            model: &model,
            output: result.output.clone(),
            usage: &outcome.usage,
            duration_ms: ms,
            request_id,
        })
        .await?;
    Ok(result)
}

/// The backend and model a prompt names, as far as they can be told without planning it (for
/// the result of a task that failed).
pub(super) fn backend_and_model(state: &AppState, p: &PromptRequest) -> (String, String) {
    let backend = p.backend.clone().unwrap_or_else(|| match &p.model {
        Some(model) => state.router.route(model).backend.name().to_string(),
        None => Backend::Claude.name().to_string(),
    });
    (backend, p.model.clone().unwrap_or_default())
}

/// Metadata of one task of a batch (parallel, chain, compare): the batch's client.
pub(super) fn sub_meta(parent: &RequestMeta) -> Arc<RequestMeta> {
    let meta = RequestMeta::for_client(parent.client.clone());
    let _ = meta.dialect.set("native");
    Arc::new(meta)
}

pub(super) fn detail(e: &ApiError) -> ErrorDetail {
    let (kind, message) = super::error::native_kind(e);
    ErrorDetail {
        kind: kind.to_string(),
        message,
    }
}

/// `POST /api/v1/prompt`
#[utoipa::path(post, path = "/api/v1/prompt", tag = "native", request_body = PromptRequest,
    responses((status = 200, description = "The answer (`json`), or NDJSON lines: `text_delta`…, then `result` or `error` (`stream-json`)",
        content((PromptResult = "application/json"), (String = "application/x-ndjson"))), super::openapi::NativeErrors))]
pub async fn prompt(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let p: PromptRequest = body(&req, payload, &state).await?;
    let request_id = RequestId::of(&req);
    if p.output_format == OutputFormat::Json {
        let result = run(&state, &p, &request_id, RequestId::meta(&req))
            .await
            .map_err(|e| native(&req, e))?;
        return Ok(HttpResponse::Ok().json(result));
    }
    let started = Instant::now();
    let meta = RequestId::meta(&req);
    let Resumed {
        request,
        history,
        session,
    } = resume::resume(&state, &p, &meta)
        .await
        .map_err(|e| native(&req, e))?;
    let planned = plan(&state, &request, &request_id, history).map_err(|e| native(&req, e))?;
    let (backend, model) = (planned.backend.name(), planned.model.clone());
    let (first, events) = match sse::start(&state.supervisor, planned.spec, meta, &model).await {
        Ok(started) => started,
        Err(e) => {
            let e = ApiError::Serve(e);
            session.record_failure(&p.prompt, &e, &request_id).await;
            return Err(native(&req, e));
        }
    };
    let restarts = state
        .metrics
        .streams_restarted
        .with_label_values(&["native"]);
    let end = StreamEnd {
        request,
        session,
        backend,
        model,
        request_id,
        started,
        restarts,
    };
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(ndjson(first, events, end)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackendInfo {
    pub name: String,
    pub command: String,
    pub found: bool,
    pub path: Option<String>,
    pub version: Option<String>,
    /// Whether this version of clinvoker serves requests through it.
    pub served: bool,
    pub models: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackendsResponse {
    pub backends: Vec<BackendInfo>,
}

/// `GET /api/v1/backends`
#[utoipa::path(get, path = "/api/v1/backends", tag = "native",
    responses((status = 200, description = "Each backend: CLI found, version, models", body = BackendsResponse), super::openapi::NativeErrors))]
pub async fn backends(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let health = state
        .supervisor
        .health()
        .await
        .map_err(|e| native(&req, e))?;
    let mut list = Vec::new();
    for backend in Backend::ALL {
        let cli = match backend {
            Backend::Claude => &health.backends.claude,
            Backend::Codex => &health.backends.codex,
            Backend::Gemini => &health.backends.gemini,
        };
        list.push(BackendInfo {
            name: backend.name().into(),
            command: cli.command.clone(),
            found: cli.found,
            path: cli.path.clone(),
            version: cli.version.clone(),
            served: cli.served,
            models: state.router.models_of(backend),
        });
    }
    Ok(HttpResponse::Ok().json(BackendsResponse { backends: list }))
}
