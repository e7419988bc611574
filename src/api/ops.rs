//! `GET /health`: whether the CLI is there and how many processes do what.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::DialectError;
use super::native_error as native;
use super::AppState;

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
