//! The HTTP edge: routes, the request-id/API-key middleware, and body reading. Handlers are thin:
//! parse, build a [`crate::protocol::TurnSpec`], submit it through the
//! [`SupervisorHandle`], render the events.

pub mod access;
pub mod admin;
pub mod anthropic;
pub mod batch;
pub mod cors;
pub mod error;
pub mod native;
pub mod openai;
pub mod openapi;
pub mod ops;
mod resume;
pub mod sessions;
pub mod sse;
mod stream_json;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use std::sync::Arc;

use crate::limits::bucket::rfc3339;
use crate::limits::{Client, Clients, Quota, RateLimiterHandle};
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
    /// `[limits]` by key: each request's client and its limits.
    pub clients: Arc<Clients>,
    /// The owner of the clients' token buckets.
    pub limiter: RateLimiterHandle,
    /// The owner of the native API's sessions; `None` when `sessions.enabled` is off.
    pub sessions: Option<crate::sessions::SessionStoreHandle>,
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
    sessions::configure(cfg);
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
/// `x-request-id` elsewhere), names the client, checks access ([`access::check`]) and the
/// client's rate (`admit`), and after the answer writes the request's one log line and its
/// metrics.
pub async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    // The path the router matches (percent-decoded), so the dialect and the access rule judge
    // the route that will answer.
    let dialect = Dialect::of_path(req.match_info().as_str());
    let request_id = request_id_from(&req);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let client = state
        .as_ref()
        .map_or_else(Arc::default, |s| identify(&req, s));
    let meta = Arc::new(RequestMeta::for_client(client.clone()));
    let _ = meta.dialect.set(dialect.name());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(meta.clone());
    let (admitted, quota) = match &state {
        Some(s) => admit(&req, s, &client).await,
        None => (Ok(()), None),
    };
    let mut res = match admitted {
        Ok(()) => next.call(req).await?.map_into_boxed_body(),
        Err(refusal) => refuse(req, refusal, dialect, &request_id),
    };
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static(dialect.request_id_header()), value);
    }
    if let (Some(quota), Dialect::Anthropic) = (quota, dialect) {
        ratelimit_headers(headers, quota);
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
        "request {request_id} {} {route} client={} model={} pool={pool} pid={pid} status={status} {}ms",
        res.request().method(),
        client.id,
        meta.model(),
        took.as_millis()
    );
    if let Some(s) = state {
        s.metrics
            .http(&route, dialect.name(), meta.model(), status, took);
    }
    Ok(res)
}

/// The request's client: named by the key that opens the model APIs, else by its socket peer
/// (a server without keys).
fn identify(req: &ServiceRequest, state: &AppState) -> Arc<Client> {
    let presented = access::presented_keys(req);
    match access::client_key(&presented, &state.api_keys, &state.admin_keys) {
        Some(key) => state.clients.of_key(key),
        None => state.clients.of_peer(req.peer_addr().map(|a| a.ip())),
    }
}

/// Whether the request may go on: access ([`access::check`]), then, on the model APIs, the
/// client's rate. The quota left is returned either way, for the rate-limit headers.
async fn admit(
    req: &ServiceRequest,
    state: &AppState,
    client: &Client,
) -> (Result<(), access::Refusal>, Option<Quota>) {
    if let Err(refusal) = access::check(req, &state.api_keys, &state.admin_keys) {
        return (Err(refusal), None);
    }
    let Some(rate) = client.rate else {
        return (Ok(()), None);
    };
    if !access::is_model_api(req.match_info().as_str(), req.method().as_str()) {
        return (Ok(()), None);
    }
    match state.limiter.take(&client.id, rate).await {
        None => (Ok(()), None),
        Some(Ok(quota)) => (Ok(()), Some(quota)),
        Some(Err(limited)) => {
            state.metrics.client_limited(client.id.as_str(), "rate");
            let error = ApiError::RateLimited {
                client: client.id.to_string(),
                per_minute: rate.per_minute,
                retry_after: limited.retry_after,
            };
            (Err(error.into()), Some(limited.quota))
        }
    }
}

/// The answer to a request the edge turned away, in its dialect.
fn refuse(
    req: ServiceRequest,
    refusal: access::Refusal,
    dialect: Dialect,
    request_id: &str,
) -> ServiceResponse<BoxBody> {
    let err = DialectError {
        error: refusal.error,
        dialect,
        request_id: Some(request_id.to_string()),
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

/// Anthropic's `anthropic-ratelimit-requests-*` headers: the rate, what is left of the burst,
/// and when the bucket is full again (RFC 3339).
fn ratelimit_headers(headers: &mut HeaderMap, quota: Quota) {
    let reset = std::time::SystemTime::now() + quota.reset_in;
    for (name, value) in [
        (
            "anthropic-ratelimit-requests-limit",
            quota.limit.to_string(),
        ),
        (
            "anthropic-ratelimit-requests-remaining",
            quota.remaining.to_string(),
        ),
        ("anthropic-ratelimit-requests-reset", rfc3339(reset)),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
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

/// Client tools are served through Claude Code (its SDK MCP server) and the Codex CLI (a
/// thread's dynamic tools). The Gemini CLI's route to them would be an MCP server per session
/// over HTTP, not built: such a request is refused rather than answered without its tools.
pub fn check_tools(backend: crate::routing::Backend, tools: bool) -> Result<(), ApiError> {
    use crate::routing::Backend;
    match (backend, tools) {
        (Backend::Gemini, true) => Err(ApiError::InvalidParam {
            param: "tools".into(),
            message: format!(
                "tools: client tools are not available on the {} backend; use a Claude or Codex model",
                backend.name()
            ),
        }),
        (Backend::Claude | Backend::Codex, _) | (_, false) => Ok(()),
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
