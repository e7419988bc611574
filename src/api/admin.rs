//! Operator routes: `/admin/*`, the dashboard page at `GET /admin`, and `GET /metrics`. Only an
//! admin key opens them; a server with no keys of any kind opens them to loopback peers instead
//! (see [`super::access`]). Every action is one message to the supervisor, answered with the new
//! state.

use actix::Message;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, DialectError};
use super::native_error as native;
use super::openapi::{NativeErrors, PoolsResponse};
use super::{only, read_body, AppState};
use crate::supervisor::messages::*;

/// The dashboard: one static page, embedded in the binary; it polls the routes below.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin")
            .get(dashboard)
            .default_service(only("GET")),
    )
    .service(
        web::resource("/admin/pools")
            .get(pools)
            .default_service(only("GET")),
    )
    .service(
        web::resource("/admin/instance/drain")
            .post(drain_instance)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/admin/instance/resume")
            .post(resume_instance)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/admin/pools/{id}")
            .get(pool)
            .default_service(only("GET")),
    )
    .service(
        web::resource("/admin/pools/{id}/drain")
            .post(drain)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/admin/pools/{id}/resume")
            .post(resume)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/admin/pools/{id}/resize")
            .post(resize)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/admin/processes/{id}/recycle")
            .post(recycle)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/admin/processes/{id}/kill")
            .post(kill)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/admin/requests")
            .get(requests)
            .default_service(only("GET")),
    )
    .service(
        web::resource("/admin/requests/{id}/cancel")
            .post(cancel)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/metrics")
            .get(metrics)
            .default_service(only("GET")),
    );
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::UnknownPool(_)
            | AdminError::UnknownProcess(_)
            | AdminError::UnknownRequest(_) => ApiError::NotFound(e.to_string()),
            AdminError::Invalid(m) => ApiError::InvalidRequest(m),
        }
    }
}

/// Sends an admin command and renders its answer.
async fn command<M, T>(
    req: &HttpRequest,
    state: &AppState,
    msg: M,
) -> Result<HttpResponse, DialectError>
where
    M: Message<Result = Result<T, AdminError>> + Send + 'static,
    T: Serialize + Send + 'static,
    crate::supervisor::SessionSupervisor: actix::Handler<M>,
{
    let answer = state
        .supervisor
        .admin(msg)
        .await
        .map_err(|e| native(req, e))?;
    Ok(HttpResponse::Ok().json(answer.map_err(|e| native(req, e))?))
}

fn path_id(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or_default().to_string()
}

fn process_id(req: &HttpRequest) -> Result<u64, DialectError> {
    let id = path_id(req);
    id.parse()
        .map_err(|_| native(req, ApiError::NotFound(format!("no process {id}"))))
}

pub async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(DASHBOARD)
}

/// Every pool: limits, queue, counters since start, latency percentiles, recent errors, and each
/// process's pid, state, turns, resets, RSS, CPU time, current request.
#[utoipa::path(get, path = "/admin/pools", tag = "admin",
    responses((status = 200, description = "Every pool and process", body = PoolsResponse), NativeErrors))]
pub async fn pools(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let pools = state
        .supervisor
        .pools()
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(PoolsResponse { pools }))
}

#[utoipa::path(get, path = "/admin/pools/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "One pool", body = PoolStatus), NativeErrors))]
pub async fn pool(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    command(&req, &state, GetPool(path_id(&req))).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestsResponse {
    pub requests: Vec<RequestStatus>,
}

/// In-flight requests: queued and running.
#[utoipa::path(get, path = "/admin/requests", tag = "admin",
    responses((status = 200, description = "Queued and running requests", body = RequestsResponse), NativeErrors))]
pub async fn requests(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let requests = state
        .supervisor
        .admin(GetRequests)
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(RequestsResponse { requests }))
}

/// Out of the load balancer's rotation: `/ready` answers 503 and new turns are refused with a
/// 503 (running turns finish) until resumed.
#[utoipa::path(post, path = "/admin/instance/drain", tag = "admin",
    responses((status = 200, description = "The readiness, now not ready", body = crate::supervisor::messages::Readiness), NativeErrors))]
pub async fn drain_instance(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let readiness = state
        .supervisor
        .admin(DrainInstance { drain: true })
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(readiness))
}

/// Back into rotation once its pools are warm.
#[utoipa::path(post, path = "/admin/instance/resume", tag = "admin",
    responses((status = 200, description = "The readiness", body = crate::supervisor::messages::Readiness), NativeErrors))]
pub async fn resume_instance(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let readiness = state
        .supervisor
        .admin(DrainInstance { drain: false })
        .await
        .map_err(|e| native(&req, e))?;
    Ok(HttpResponse::Ok().json(readiness))
}

#[utoipa::path(post, path = "/admin/pools/{id}/drain", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "The pool, draining", body = PoolStatus), NativeErrors))]
pub async fn drain(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    command(&req, &state, DrainPool(path_id(&req))).await
}

#[utoipa::path(post, path = "/admin/pools/{id}/resume", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "The pool, taking requests again", body = PoolStatus), NativeErrors))]
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    command(&req, &state, ResumePool(path_id(&req))).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeBody {
    #[schema(minimum = 1)]
    pub max_processes: Option<usize>,
    pub min_idle: Option<usize>,
}

#[utoipa::path(post, path = "/admin/pools/{id}/resize", tag = "admin", params(("id" = String, Path)), request_body = ResizeBody,
    responses((status = 200, description = "The pool with its new limits", body = PoolStatus), NativeErrors))]
pub async fn resize(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let body = read_body(payload, state.max_body_bytes)
        .await
        .map_err(|e| native(&req, e))?;
    let body: ResizeBody = serde_json::from_slice(&body).map_err(|e| {
        native(
            &req,
            ApiError::InvalidRequest(format!("invalid request body: {e}")),
        )
    })?;
    let msg = ResizePool {
        pool: path_id(&req),
        max_processes: body.max_processes,
        min_idle: body.min_idle,
    };
    command(&req, &state, msg).await
}

#[utoipa::path(post, path = "/admin/processes/{id}/recycle", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, description = "The process, retiring", body = ProcessStatus), NativeErrors))]
pub async fn recycle(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let id = process_id(&req)?;
    command(&req, &state, RecycleProcess(id)).await
}

#[utoipa::path(post, path = "/admin/processes/{id}/kill", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, description = "The process as it was when killed", body = ProcessStatus), NativeErrors))]
pub async fn kill(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let id = process_id(&req)?;
    command(&req, &state, KillProcess(id)).await
}

#[utoipa::path(post, path = "/admin/requests/{id}/cancel", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "What was cancelled", body = Cancelled), NativeErrors))]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    command(&req, &state, CancelRequest(path_id(&req))).await
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
