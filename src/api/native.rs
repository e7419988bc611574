//! The native REST API (`/api/v1`): one prompt, several in parallel, a chain, a comparison across
//! backends — all through the same supervisor and pools as the SDK dialects — and the backend list.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error::{ApiError, DialectError};
pub(super) use super::native_error as native;
use super::sse::{self, Events, StreamGuard};
use super::{only, read_body, AppState, RequestId};
use crate::protocol::native::*;
use std::sync::Arc;

use crate::protocol::{PoolKey, Profile, RequestMeta, TurnEvent, TurnSpec};
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

fn plan(state: &AppState, p: &PromptRequest, request_id: &str) -> Result<Planned, ApiError> {
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
        history: Vec::new(),
        prompt: Value::String(p.prompt.clone()),
    };
    Ok(Planned {
        backend,
        model,
        spec,
    })
}

/// Runs one prompt to its end.
pub(super) async fn run(
    state: &AppState,
    p: &PromptRequest,
    request_id: &str,
    meta: Arc<RequestMeta>,
) -> Result<PromptResult, ApiError> {
    let started = Instant::now();
    let planned = plan(state, p, request_id)?;
    let (first, mut events) =
        sse::start(&state.supervisor, planned.spec, meta, &planned.model).await?;
    let outcome = sse::collect(first, &mut events).await?;
    let ms = started.elapsed().as_millis() as u64;
    Ok(PromptResult::new(
        planned.backend.name(),
        &planned.model,
        &outcome,
        ms,
        request_id,
    ))
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
    let planned = plan(&state, &p, &request_id).map_err(|e| native(&req, e))?;
    let (backend, model) = (planned.backend.name(), planned.model.clone());
    let (first, events) = sse::start(
        &state.supervisor,
        planned.spec,
        RequestId::meta(&req),
        &model,
    )
    .await
    .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(ndjson(
            first,
            events,
            backend,
            model,
            request_id,
            started,
            state
                .metrics
                .streams_restarted
                .with_label_values(&["native"]),
        )))
}

/// The stream-json output: one `text_delta` line per delta, then `result` or `error`.
fn ndjson(
    first: TurnEvent,
    events: Events,
    backend: &'static str,
    model: String,
    request_id: String,
    started: Instant,
    restarts: prometheus::IntCounter,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let line = |v: Value| Ok::<_, actix_web::Error>(Bytes::from(format!("{v}\n")));
    stream::unfold((Some(first), Some(events)), |(mut first, mut events)| async move {
        let rx = events.as_mut()?;
        let next = match first.take() {
            Some(e) => Some(e),
            None => rx.recv().await,
        };
        Some((next, (None, events)))
    })
    .scan((false, StreamGuard::default()), move |(ended, guard), event| {
        if *ended {
            return futures_util::future::ready(None);
        }
        if let Some(Err(e)) = event.as_ref().map(|e| guard.check(e)) {
            *ended = true;
            restarts.inc();
            let error = line(json!({"type": "error", "error": detail(&ApiError::Serve(e))}));
            return futures_util::future::ready(Some(Some(error)));
        }
        let out = match event {
            Some(TurnEvent::TextDelta(text)) => Some(line(json!({"type": "text_delta", "text": text}))),
            Some(
                TurnEvent::BlockStarted(_)
                | TurnEvent::ToolInputDelta(_)
                | TurnEvent::BlockStopped
                | TurnEvent::Restarted,
            ) => None,
            Some(TurnEvent::Done(outcome)) => {
                *ended = true;
                let ms = started.elapsed().as_millis() as u64;
                let result = PromptResult::new(backend, &model, &outcome, ms, &request_id);
                Some(line(json!({"type": "result", "result": result})))
            }
            Some(TurnEvent::Failed(e)) => {
                *ended = true;
                Some(line(json!({"type": "error", "error": detail(&ApiError::Serve(e))})))
            }
            None => {
                *ended = true;
                Some(line(json!({"type": "error", "error": {"type": "api_error", "message": "the process ended without finishing the turn"}})))
            }
        };
        futures_util::future::ready(Some(out))
    })
    .filter_map(futures_util::future::ready)
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
