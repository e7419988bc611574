//! The HTTP edge: routes, the request-id/API-key middleware, and body reading. Handlers are thin:
//! parse, build a [`crate::protocol::TurnSpec`], submit it through the
//! [`SupervisorHandle`], render the events.

pub mod anthropic;
pub mod error;
pub mod native;
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
    pub max_body_bytes: usize,
    /// The native API's workdir rules (`server.*_workdir_prefixes`).
    pub allowed_workdirs: Vec<std::path::PathBuf>,
    pub blocked_workdirs: Vec<std::path::PathBuf>,
    /// Whether the native API may use the agentic profile (`profiles.agentic.enabled`).
    pub agentic_enabled: bool,
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
    )
    .service(
        web::resource("/admin/pools")
            .get(ops::pools)
            .default_service(only("GET")),
    );
    anthropic::configure(cfg);
    native::configure(cfg);
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

/// Middleware on every route: assigns the request id (header `request-id` on Anthropic routes,
/// `x-request-id` elsewhere) and checks the API key when keys are configured.
pub async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let dialect = Dialect::of_path(req.path());
    let request_id = request_id_from(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let keys = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.api_keys.clone())
        .unwrap_or_default();
    let mut res = if keys.is_empty()
        || presented_key(&req).is_some_and(|k| keys.iter().any(|key| key == k))
    {
        next.call(req).await?.map_into_boxed_body()
    } else {
        let reason = match presented_key(&req) {
            None => "missing API key: send it in the x-api-key header or as Authorization: Bearer",
            Some(_) => "invalid API key",
        };
        let err = DialectError {
            error: ApiError::Authentication(reason.into()),
            dialect,
            request_id: Some(request_id.clone()),
        };
        req.into_response(err.error_response())
    };
    let header = match dialect {
        Dialect::Anthropic => "request-id",
        Dialect::Native => "x-request-id",
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static(header), value);
    }
    Ok(res)
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
