//! The HTTP edge: routes, the request-id/API-key middleware, and body reading. Handlers are thin:
//! parse, build a [`crate::protocol::TurnSpec`], submit it through the
//! [`SupervisorHandle`], render the events.

pub mod access;
pub mod admin;
pub mod anthropic;
pub mod batch;
pub mod error;
pub mod native;
pub mod openai;
pub mod openapi;
pub mod ops;
pub mod sse;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::protocol::RequestMeta;
use crate::routing::ModelRouter;
use crate::supervisor::SupervisorHandle;
use error::{ApiError, Dialect, DialectError};

/// What every handler shares (cloned into each worker).
#[derive(Clone)]
pub struct AppState {
    pub supervisor: SupervisorHandle,
    /// This instance's name, sent as `x-clinvoker-instance` on every response.
    pub instance: HeaderValue,
    pub router: ModelRouter,
    /// Keys for the model APIs; empty = open APIs. See [`access`] for the whole rule.
    pub api_keys: Vec<String>,
    /// The only keys that open `/admin`, `/admin/*` and `/metrics`. With no keys of either kind
    /// those routes answer loopback peers only; with user keys but no admin keys, nobody.
    pub admin_keys: Vec<String>,
    pub max_body_bytes: usize,
    /// The native API's workdir rules (`server.*_workdir_prefixes`).
    pub allowed_workdirs: Vec<std::path::PathBuf>,
    pub blocked_workdirs: Vec<std::path::PathBuf>,
    /// Whether the native API may use the agentic profile (`profiles.agentic.enabled`).
    pub agentic_enabled: bool,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// The id of the request being served, set by [`edge`] for every request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn of(req: &HttpRequest) -> String {
        req.extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default()
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health")
            .get(ops::health)
            .default_service(only("GET")),
    );
    cfg.service(
        web::resource("/ready")
            .get(ops::ready)
            .default_service(only("GET")),
    );
    admin::configure(cfg);
    anthropic::configure(cfg);
    native::configure(cfg);
    openai::configure(cfg);
    cfg.service(
        web::resource("/openapi.json")
            .get(openapi::openapi_json)
            .default_service(only("GET")),
    );
}

/// A client-supplied id is kept when it is short and printable; otherwise a new one is made.
fn request_id_from(req: &ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(String::from)
        .unwrap_or_else(|| format!("req_{}", uuid::Uuid::new_v4().simple()))
}

/// Middleware on every route: assigns the request id (header `request-id` on Anthropic routes,
/// `x-request-id` elsewhere), checks access ([`access::check`]), and after the answer writes the
/// request's one log line and its metrics.
pub async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    // The path the router matches (percent-decoded), so the dialect and the access rule judge
    // the route that will answer.
    let dialect = Dialect::of_path(req.match_info().as_str());
    let request_id = request_id_from(&req);
    let meta = std::sync::Arc::new(RequestMeta::default());
    let _ = meta.dialect.set(dialect.name());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(meta.clone());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let allowed = match &state {
        Some(s) => access::check(&req, &s.api_keys, &s.admin_keys),
        None => Ok(()),
    };
    let mut res = match allowed {
        Ok(()) => next.call(req).await?.map_into_boxed_body(),
        Err(refusal) => {
            let err = DialectError {
                error: refusal.error,
                dialect,
                request_id: Some(request_id.clone()),
            };
            let mut res = err.error_response();
            if refusal.challenge {
                res.headers_mut().insert(
                    actix_web::http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(access::BASIC_CHALLENGE),
                );
            }
            req.into_response(res)
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static(dialect.request_id_header()), value);
    }
    if let Some(s) = &state {
        res.headers_mut().insert(
            HeaderName::from_static("x-clinvoker-instance"),
            s.instance.clone(),
        );
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16();
    let took = started.elapsed();
    let (pool, pid) = meta
        .placement
        .get()
        .map_or(("-", 0), |(p, pid)| (p.as_str(), *pid));
    log::info!(
        "request {request_id} {} {route} model={} pool={pool} pid={pid} status={status} {}ms",
        res.request().method(),
        meta.model(),
        took.as_millis()
    );
    if let Some(s) = state {
        s.metrics
            .http(&route, dialect.name(), meta.model(), status, took);
    }
    Ok(res)
}

impl RequestId {
    /// The request's metadata for the operators' views (set by [`edge`]).
    pub fn meta(req: &HttpRequest) -> std::sync::Arc<RequestMeta> {
        req.extensions()
            .get::<std::sync::Arc<RequestMeta>>()
            .cloned()
            .unwrap_or_default()
    }
}

/// Structured outputs need a CLI that can carry a schema: the Gemini CLI has no way (its ACP
/// takes no schema per session or prompt), so such a request is the client's error.
pub fn check_structured(backend: crate::routing::Backend, schema: bool) -> Result<(), ApiError> {
    match (backend, schema) {
        (crate::routing::Backend::Gemini, true) => Err(ApiError::InvalidRequest(
            "structured outputs are not available on the gemini backend (its CLI takes no schema); use a Claude or Codex model".into(),
        )),
        _ => Ok(()),
    }
}

/// Reads a request body up to `limit` bytes.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::InvalidRequest(format!("could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// An error in the native dialect (`/api`, `/health`, `/admin`), with the request's id.
pub fn native_error(req: &HttpRequest, e: impl Into<ApiError>) -> DialectError {
    DialectError {
        error: e.into(),
        dialect: Dialect::Native,
        request_id: Some(RequestId::of(req)),
    }
}

fn dialect_error(req: &HttpRequest, error: ApiError) -> DialectError {
    DialectError {
        error,
        dialect: Dialect::of_path(req.path()),
        request_id: Some(RequestId::of(req)),
    }
}

/// Fallback for unknown routes, in the dialect of the path.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let msg = format!("no route for {} {}", req.method(), req.path());
    dialect_error(&req, ApiError::NotFound(msg)).error_response()
}

pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    dialect_error(&req, ApiError::MethodNotAllowed(req.method().to_string())).error_response()
}

/// A resource's fallback for other methods: 405 in the path's dialect, with `Allow: methods`.
pub fn only(methods: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        let mut resp = method_not_allowed(req).await;
        resp.headers_mut().insert(
            actix_web::http::header::ALLOW,
            HeaderValue::from_static(methods),
        );
        resp
    })
}
