//! The HTTP edge: routes, the request-id/API-key middleware, and body reading. Handlers are thin:
//! parse, build a [`crate::protocol::TurnSpec`], submit it through the
//! [`SupervisorHandle`], render the events.

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
    pub router: ModelRouter,
    /// Keys clients must present; empty = open server.
    pub api_keys: Vec<String>,
    /// Keys for `/admin/*` and `/metrics`; empty = loopback only.
    pub admin_keys: Vec<String>,
    pub max_body_bytes: usize,
    /// The native API's workdir rules (`server.*_workdir_prefixes`).
    pub allowed_workdirs: Vec<std::path::PathBuf>,
    pub blocked_workdirs: Vec<std::path::PathBuf>,
    /// Whether the native API may use the agentic profile (`profiles.agentic.enabled`).
    pub agentic_enabled: bool,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Each backend's configured CLI command, for the backend list.
    pub commands: std::collections::BTreeMap<crate::routing::Backend, String>,
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

fn presented_key(req: &ServiceRequest) -> Option<&str> {
    let headers = req.headers();
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
        })
}

/// Who may use a route: user keys for the APIs, admin keys (or, with none configured, loopback
/// peers) for `/admin/*` and `/metrics`. The dashboard page itself (`GET /admin`) is static and
/// open; everything it shows comes from the guarded routes.
pub fn access(
    path: &str,
    method: &str,
    loopback_peer: bool,
    presented: Option<&str>,
    api_keys: &[String],
    admin_keys: &[String],
) -> Result<(), ApiError> {
    let listed = |keys: &[String]| presented.is_some_and(|p| keys.iter().any(|k| k == p));
    let missing = "missing API key: send it in the x-api-key header or as Authorization: Bearer";
    let operator = path.starts_with("/admin/") || path == "/metrics";
    if path == "/admin" && method == "GET" {
        return Ok(());
    }
    if operator || path == "/admin" {
        return match (admin_keys.is_empty(), listed(admin_keys)) {
            (true, _) if loopback_peer => Ok(()),
            (true, _) => Err(ApiError::PermissionDenied(
                "no admin key is configured (server.admin_keys), so this route answers only on loopback".into(),
            )),
            (false, true) => Ok(()),
            (false, false) if presented.is_none() => Err(ApiError::Authentication(missing.into())),
            (false, false) => Err(ApiError::Authentication("invalid admin key".into())),
        };
    }
    match (api_keys.is_empty(), listed(api_keys), presented) {
        (true, _, _) | (_, true, _) => Ok(()),
        (_, _, None) => Err(ApiError::Authentication(missing.into())),
        _ => Err(ApiError::Authentication("invalid API key".into())),
    }
}

/// Middleware on every route: assigns the request id (header `request-id` on Anthropic routes,
/// `x-request-id` elsewhere), checks access, and after the answer writes the request's one log
/// line and its metrics.
pub async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let dialect = Dialect::of_path(req.path());
    let request_id = request_id_from(&req);
    let meta = std::sync::Arc::new(RequestMeta::default());
    let _ = meta.dialect.set(dialect.name());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(meta.clone());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let allowed = match &state {
        Some(s) => {
            let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
            let method = req.method().to_string();
            access(
                req.path(),
                &method,
                loopback,
                presented_key(&req),
                &s.api_keys,
                &s.admin_keys,
            )
        }
        None => Ok(()),
    };
    let mut res = match allowed {
        Ok(()) => next.call(req).await?.map_into_boxed_body(),
        Err(error) => {
            let err = DialectError {
                error,
                dialect,
                request_id: Some(request_id.clone()),
            };
            req.into_response(err.error_response())
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static(dialect.request_id_header()), value);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_matrix() {
        let users = vec!["user-key".to_string()];
        let admins = vec!["admin-key".to_string()];
        let none: Vec<String> = Vec::new();
        let check = |path, loopback, key: Option<&str>, admin_keys: &[String]| {
            access(path, "GET", loopback, key, &users, admin_keys).map_err(|e| e.to_string())
        };
        // Admin keys configured: only they open /admin/* and /metrics, from anywhere.
        for path in ["/admin/pools", "/metrics", "/admin/requests"] {
            assert!(check(path, true, None, &admins).is_err(), "{path}: no key");
            assert!(
                check(path, true, Some("user-key"), &admins).is_err(),
                "{path}: a user key is not an admin key"
            );
            assert!(
                check(path, false, Some("admin-key"), &admins).is_ok(),
                "{path}: admin key from afar"
            );
        }
        // ... and an admin key is not a user key.
        assert!(check("/anthropic/v1/messages", true, Some("admin-key"), &admins).is_err());
        assert!(check("/anthropic/v1/messages", false, Some("user-key"), &admins).is_ok());
        // No admin keys: loopback only.
        assert!(check("/admin/pools", true, None, &none).is_ok());
        let far = check("/admin/pools", false, Some("user-key"), &none).expect_err("not loopback");
        assert!(far.contains("only on loopback"), "{far}");
        // The dashboard page is static; its data is what is guarded.
        assert!(check("/admin", false, None, &admins).is_ok());
        assert!(access("/admin", "POST", false, None, &users, &admins).is_err());
    }
}
