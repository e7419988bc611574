//! `GET /health` (liveness: the server answers; whether the CLIs are there and how many
//! processes do what) and `GET /ready` (readiness: whether a load balancer should send traffic).

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

/// 200 once every pool's `min_idle` processes are warm; 503 before that and while shutting down,
/// so a load balancer sends no traffic an instance would have to queue behind a cold start.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "ready", body = crate::supervisor::messages::Readiness),
        (status = 503, description = "not ready: warming up or shutting down", body = crate::supervisor::messages::Readiness)))]
pub async fn ready(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let readiness = state
        .supervisor
        .readiness()
        .await
        .map_err(|e| native(&req, e))?;
    Ok(match readiness.ready {
        true => HttpResponse::Ok().json(readiness),
        false => HttpResponse::ServiceUnavailable().json(readiness),
    })
}
