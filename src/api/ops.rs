//! Operator routes: `GET /health` and `GET /admin/pools`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::{ApiError, Dialect, DialectError};
use super::{AppState, RequestId};

fn native(req: &HttpRequest, e: impl Into<ApiError>) -> DialectError {
    DialectError {
        error: e.into(),
        dialect: Dialect::Native,
        request_id: Some(RequestId::of(req)),
    }
}

/// `ok` or `degraded`, whether the CLI was found, and process counts.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "ok or degraded", body = crate::supervisor::messages::HealthStatus), super::openapi::NativeErrors))]
pub async fn health(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let health = state
        .supervisor
        .health()
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(health))
}

/// Every pool: limits, queue, counters, and each process's pid, state, turns, age, request.
#[utoipa::path(get, path = "/admin/pools", tag = "operations",
    responses((status = 200, description = "Every pool and process", body = super::openapi::PoolsResponse), super::openapi::NativeErrors))]
pub async fn pools(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let pools = state
        .supervisor
        .pools()
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(json!({ "pools": pools })))
}
