//! Errors as clients see them. [`ApiError`] is what a handler can fail with; each dialect turns
//! it into its own body and status in one exhaustive `match` (no `_` arm: a new variant does not
//! compile until it has a status).

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::error::{ServeError, UpstreamKind};
use crate::sessions::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    /// A bad request where one field is at fault (OpenAI reports it as `error.param`).
    #[error("{message}")]
    InvalidParam { param: String, message: String },
    #[error("{0}")]
    Authentication(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method {0} is not allowed on this route")]
    MethodNotAllowed(String),
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The client's token bucket is empty (`[limits] requests_per_minute`).
    #[error("client {client} is over its rate limit of {per_minute} requests per minute; retry after {}s", retry_after.as_secs().max(1))]
    RateLimited {
        client: String,
        per_minute: u32,
        retry_after: Duration,
    },
    #[error("{0}")]
    Serve(#[from] ServeError),
    /// The native API's session store refused or failed.
    #[error("{0}")]
    Session(#[from] SessionError),
}

/// Which API's error shape a route answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Anthropic,
    /// `/openai/*`: `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `/health`, `/admin`: `{"error": {"type", "message"}}`.
    Native,
}

impl Dialect {
    /// The label in logs, metrics and the admin views.
    pub fn name(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::OpenAi => "openai",
            Self::Native => "native",
        }
    }

    /// Anthropic's clients read `request-id`; everyone else's `x-request-id`.
    pub fn request_id_header(self) -> &'static str {
        match self {
            Self::Anthropic => "request-id",
            Self::OpenAi | Self::Native => "x-request-id",
        }
    }

    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/anthropic") {
            Self::Anthropic
        } else if path.starts_with("/openai") {
            Self::OpenAi
        } else {
            Self::Native
        }
    }
}

/// The Anthropic status and `error.type` of every failure, plus `retry-after` where retrying
/// later is the remedy.
fn anthropic_status(e: &ApiError) -> (StatusCode, &'static str, Option<Duration>) {
    use StatusCode as S;
    match e {
        ApiError::InvalidRequest(_) | ApiError::InvalidParam { .. } => {
            (S::BAD_REQUEST, "invalid_request_error", None)
        }
        ApiError::Authentication(_) => (S::UNAUTHORIZED, "authentication_error", None),
        ApiError::PermissionDenied(_) => (S::FORBIDDEN, "permission_error", None),
        ApiError::NotFound(_) => (S::NOT_FOUND, "not_found_error", None),
        ApiError::MethodNotAllowed(_) => (S::METHOD_NOT_ALLOWED, "invalid_request_error", None),
        ApiError::PayloadTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "request_too_large", None),
        ApiError::RateLimited { retry_after, .. } => {
            (S::TOO_MANY_REQUESTS, "rate_limit_error", Some(*retry_after))
        }
        ApiError::Session(s) => match s {
            SessionError::InvalidId { .. } => (S::BAD_REQUEST, "invalid_request_error", None),
            SessionError::NotFound { .. } => (S::NOT_FOUND, "not_found_error", None),
            SessionError::Storage { .. } => (S::INTERNAL_SERVER_ERROR, "api_error", None),
            SessionError::Unavailable => (
                S::SERVICE_UNAVAILABLE,
                "api_error",
                Some(Duration::from_secs(5)),
            ),
        },
        ApiError::Serve(s) => match s {
            ServeError::PoolSaturated { retry_after, .. }
            | ServeError::QueueTimedOut { retry_after, .. } => {
                (overloaded(), "overloaded_error", Some(*retry_after))
            }
            ServeError::ClientOverLimit { retry_after, .. } => {
                (S::TOO_MANY_REQUESTS, "rate_limit_error", Some(*retry_after))
            }
            ServeError::TurnTimedOut { .. } | ServeError::UpstreamStalled { .. } => {
                (S::GATEWAY_TIMEOUT, "timeout_error", None)
            }
            ServeError::ProcessExited { .. }
            | ServeError::BackendProtocol { .. }
            | ServeError::StreamRestarted
            | ServeError::StructuredOutputInvalid { .. } => (S::BAD_GATEWAY, "api_error", None),
            ServeError::BackendUnavailable { .. } => (S::SERVICE_UNAVAILABLE, "api_error", None),
            ServeError::NotServed { .. } => (S::NOT_FOUND, "not_found_error", None),
            ServeError::ShuttingDown | ServeError::SupervisorUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "overloaded_error",
                Some(Duration::from_secs(5)),
            ),
            ServeError::Cancelled => (S::INTERNAL_SERVER_ERROR, "api_error", None),
            ServeError::CancelledByAdmin => (S::SERVICE_UNAVAILABLE, "api_error", None),
            ServeError::PoolDraining { retry_after, .. }
            | ServeError::InstanceDrained { retry_after } => (
                S::SERVICE_UNAVAILABLE,
                "overloaded_error",
                Some(*retry_after),
            ),
            ServeError::Upstream { kind, .. } => match kind {
                UpstreamKind::InvalidRequest => (S::BAD_REQUEST, "invalid_request_error", None),
                UpstreamKind::NotFound => (S::NOT_FOUND, "not_found_error", None),
                UpstreamKind::RateLimited => (
                    S::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    Some(Duration::from_secs(5)),
                ),
                UpstreamKind::Overloaded => (
                    overloaded(),
                    "overloaded_error",
                    Some(Duration::from_secs(5)),
                ),
                // The server's own upstream credentials failed: not the client's fault.
                UpstreamKind::Authentication
                | UpstreamKind::PermissionDenied
                | UpstreamKind::Other => (S::BAD_GATEWAY, "api_error", None),
            },
        },
    }
}

/// The `error.type` and message of a failure as the native API reports it inside batch results.
pub fn native_kind(e: &ApiError) -> (&'static str, String) {
    (anthropic_status(e).1, e.to_string())
}

/// Anthropic's "overloaded" status.
fn overloaded() -> StatusCode {
    // 529 is a valid status code number; from_u16 only rejects numbers outside 100..=999.
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// Status, `error.type`, `error.code` and `retry-after` of an OpenAI error.
type OpenAiStatus = (
    StatusCode,
    &'static str,
    Option<&'static str>,
    Option<Duration>,
);

/// The OpenAI status, `error.type` and `error.code` of every failure, plus `retry-after`. OpenAI's
/// clients know no 529, so saturation is a 503 here; a bad key is OpenAI's own
/// `invalid_request_error`/`invalid_api_key` (the SDKs raise `AuthenticationError` on the 401).
fn openai_status(e: &ApiError) -> OpenAiStatus {
    use StatusCode as S;
    let server = |status, code, after| (status, "server_error", code, after);
    match e {
        ApiError::InvalidRequest(_) | ApiError::InvalidParam { .. } => {
            (S::BAD_REQUEST, "invalid_request_error", None, None)
        }
        ApiError::Authentication(_) => (
            S::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            None,
        ),
        ApiError::PermissionDenied(_) => (S::FORBIDDEN, "permission_error", None, None),
        ApiError::NotFound(_) => (S::NOT_FOUND, "not_found_error", None, None),
        ApiError::MethodNotAllowed(_) => (
            S::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            Some("method_not_supported"),
            None,
        ),
        ApiError::PayloadTooLarge { .. } => (
            S::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            None,
        ),
        // OpenAI's own shape for a rate limit; its SDKs raise `RateLimitError` on the 429.
        ApiError::RateLimited { retry_after, .. } => (
            S::TOO_MANY_REQUESTS,
            "requests",
            Some("rate_limit_exceeded"),
            Some(*retry_after),
        ),
        ApiError::Session(s) => match s {
            SessionError::InvalidId { .. } => (S::BAD_REQUEST, "invalid_request_error", None, None),
            SessionError::NotFound { .. } => (S::NOT_FOUND, "not_found_error", None, None),
            SessionError::Storage { .. } => server(S::INTERNAL_SERVER_ERROR, None, None),
            SessionError::Unavailable => {
                server(S::SERVICE_UNAVAILABLE, None, Some(Duration::from_secs(5)))
            }
        },
        ApiError::Serve(s) => match s {
            ServeError::PoolSaturated { retry_after, .. }
            | ServeError::QueueTimedOut { retry_after, .. }
            | ServeError::PoolDraining { retry_after, .. }
            | ServeError::InstanceDrained { retry_after } => server(
                S::SERVICE_UNAVAILABLE,
                Some("overloaded"),
                Some(*retry_after),
            ),
            ServeError::ClientOverLimit { retry_after, .. } => (
                S::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
                Some(*retry_after),
            ),
            ServeError::TurnTimedOut { .. } | ServeError::UpstreamStalled { .. } => {
                server(S::GATEWAY_TIMEOUT, Some("timeout"), None)
            }
            ServeError::ProcessExited { .. }
            | ServeError::BackendProtocol { .. }
            | ServeError::StreamRestarted
            | ServeError::StructuredOutputInvalid { .. } => server(S::BAD_GATEWAY, None, None),
            ServeError::BackendUnavailable { .. } | ServeError::CancelledByAdmin => {
                server(S::SERVICE_UNAVAILABLE, None, None)
            }
            ServeError::NotServed { .. } => (
                S::NOT_FOUND,
                "not_found_error",
                Some("model_not_found"),
                None,
            ),
            ServeError::ShuttingDown | ServeError::SupervisorUnavailable => server(
                S::SERVICE_UNAVAILABLE,
                Some("overloaded"),
                Some(Duration::from_secs(5)),
            ),
            ServeError::Cancelled => server(S::INTERNAL_SERVER_ERROR, None, None),
            ServeError::Upstream { kind, .. } => match kind {
                UpstreamKind::InvalidRequest => {
                    (S::BAD_REQUEST, "invalid_request_error", None, None)
                }
                UpstreamKind::NotFound => (S::NOT_FOUND, "not_found_error", None, None),
                UpstreamKind::RateLimited => (
                    S::TOO_MANY_REQUESTS,
                    "requests",
                    Some("rate_limit_exceeded"),
                    Some(Duration::from_secs(5)),
                ),
                UpstreamKind::Overloaded => server(
                    S::SERVICE_UNAVAILABLE,
                    Some("overloaded"),
                    Some(Duration::from_secs(5)),
                ),
                // The server's own upstream credentials failed: not the client's fault.
                UpstreamKind::Authentication
                | UpstreamKind::PermissionDenied
                | UpstreamKind::Other => server(S::BAD_GATEWAY, None, None),
            },
        },
    }
}

/// An [`ApiError`] bound to its dialect and request id: what handlers return.
#[derive(Debug)]
pub struct DialectError {
    pub error: ApiError,
    pub dialect: Dialect,
    pub request_id: Option<String>,
}

impl std::fmt::Display for DialectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl DialectError {
    pub fn anthropic(error: impl Into<ApiError>, request_id: &str) -> Self {
        Self {
            error: error.into(),
            dialect: Dialect::Anthropic,
            request_id: Some(request_id.to_string()),
        }
    }

    pub fn openai(error: impl Into<ApiError>, request_id: &str) -> Self {
        Self {
            error: error.into(),
            dialect: Dialect::OpenAi,
            request_id: Some(request_id.to_string()),
        }
    }

    /// The status and `retry-after` in this error's dialect.
    fn status(&self) -> (StatusCode, Option<Duration>) {
        match self.dialect {
            Dialect::Anthropic | Dialect::Native => {
                let (status, _, after) = anthropic_status(&self.error);
                (status, after)
            }
            Dialect::OpenAi => {
                let (status, _, _, after) = openai_status(&self.error);
                (status, after)
            }
        }
    }

    /// The body, for use as an SSE `error` event once a stream has started.
    pub fn body(&self) -> serde_json::Value {
        let (_, kind, _) = anthropic_status(&self.error);
        let message = self.error.to_string();
        match self.dialect {
            Dialect::OpenAi => {
                let (_, kind, code, _) = openai_status(&self.error);
                let param = if let ApiError::InvalidParam { param, .. } = &self.error {
                    Some(param.as_str())
                } else {
                    None
                };
                json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
            }
            Dialect::Anthropic => json!({
                "type": "error",
                "error": {"type": kind, "message": message},
                "request_id": self.request_id,
            }),
            Dialect::Native => json!({
                "error": {"type": kind, "message": message, "request_id": self.request_id},
            }),
        }
    }
}

impl ResponseError for DialectError {
    fn status_code(&self) -> StatusCode {
        self.status().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, retry_after) = self.status();
        let mut resp = HttpResponse::build(status);
        if let Some(after) = retry_after {
            resp.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
        }
        resp.json(self.body())
    }
}
