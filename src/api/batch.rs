//! The native API's batches: several prompts at once (`parallel`), in sequence (`chain`), or one
//! prompt across backends (`compare`). Each task goes through the same pools as any request.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{stream, StreamExt};

use super::error::{ApiError, DialectError};
use super::native::{backend_and_model, body, detail, native, run, sub_meta};
use super::{AppState, RequestId};
use crate::error::ServeError;
use crate::protocol::native::*;

/// `POST /api/v1/parallel`
#[utoipa::path(post, path = "/api/v1/parallel", tag = "native", request_body = ParallelRequest,
    responses((status = 200, description = "Per-task results in task order", body = ParallelResponse), super::openapi::NativeErrors))]
pub async fn parallel(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let r: ParallelRequest = body(&req, payload, &state).await?;
    if r.tasks.is_empty() || r.max_parallel == Some(0) {
        return Err(native(
            &req,
            ApiError::InvalidRequest("tasks: at least one task; max_parallel: at least 1".into()),
        ));
    }
    let started = Instant::now();
    let request_id = RequestId::of(&req);
    let parent = RequestId::meta(&req);
    let failed_once = std::cell::Cell::new(false);
    let limit = r.max_parallel.unwrap_or(r.tasks.len());
    let (state, fail_fast) = (&state, r.fail_fast);
    let results: Vec<TaskResult> = stream::iter(r.tasks.iter().enumerate())
        .map(|(index, task)| {
            let (failed_once, request_id, parent) = (&failed_once, &request_id, &parent);
            async move {
                let (task_id, started) = (format!("{request_id}-{index}"), Instant::now());
                let outcome = if fail_fast && failed_once.get() {
                    Err(ApiError::Serve(ServeError::Cancelled))
                } else {
                    run(state, task, &task_id, sub_meta(parent)).await
                };
                failed_once.set(failed_once.get() || outcome.is_err());
                TaskResult {
                    index,
                    ok: outcome.is_ok(),
                    result: flat(state, task, outcome, started, &task_id),
                }
            }
        })
        .buffered(limit)
        .collect()
        .await;
    let completed = results.iter().filter(|t| t.ok).count();
    Ok(HttpResponse::Ok().json(ParallelResponse {
        total_tasks: results.len(),
        completed,
        failed: results.len() - completed,
        total_duration_ms: started.elapsed().as_millis() as u64,
        results,
        succeeded: completed,
    }))
}

/// A task's result, failed or not, as one flat prompt result (Go clinvoker's shape).
fn flat(
    state: &AppState,
    task: &PromptRequest,
    outcome: Result<PromptResult, ApiError>,
    started: Instant,
    request_id: &str,
) -> PromptResult {
    let e = match outcome {
        Ok(result) => return result,
        Err(e) => e,
    };
    let ms = started.elapsed().as_millis() as u64;
    let (backend, model) = backend_and_model(state, task);
    let mut result = PromptResult::failed(&backend, &model, detail(&e), ms, request_id);
    if !task.ephemeral {
        result.session_id = task.session_id.clone().unwrap_or_default();
    }
    result
}

fn split(outcome: Result<PromptResult, ApiError>) -> (Option<PromptResult>, Option<ErrorDetail>) {
    match outcome {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(detail(&e))),
    }
}

/// `POST /api/v1/chain`
#[utoipa::path(post, path = "/api/v1/chain", tag = "native", request_body = ChainRequest,
    responses((status = 200, description = "Per-step results", body = ChainResponse), super::openapi::NativeErrors))]
pub async fn chain(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let r: ChainRequest = body(&req, payload, &state).await?;
    if r.steps.is_empty() {
        return Err(native(
            &req,
            ApiError::InvalidRequest("steps: at least one step".into()),
        ));
    }
    let started = Instant::now();
    let request_id = RequestId::of(&req);
    let parent = RequestId::meta(&req);
    let stop_on_failure = r.stop_on_failure.unwrap_or(true);
    let mut previous = String::new();
    let mut steps = Vec::with_capacity(r.steps.len());
    let mut results = Vec::with_capacity(r.steps.len());
    for (index, step) in r.steps.iter().enumerate() {
        let p = PromptRequest {
            backend: step.backend.clone(),
            model: step.model.clone(),
            prompt: step.prompt.replace("{{previous}}", &previous),
            system_prompt: step.system_prompt.clone(),
            workdir: None,
            max_turns: None,
            output_format: OutputFormat::Json,
            profile: ProfileName::Chat,
            session_id: None,
            ephemeral: !r.persist_sessions,
        };
        let (step_id, step_started) = (format!("{request_id}-{index}"), Instant::now());
        let outcome = run(&state, &p, &step_id, sub_meta(&parent)).await;
        if let Ok(result) = &outcome {
            previous.clone_from(&result.output);
        }
        let (result, error) = match &outcome {
            Ok(r) => (Some(r.clone()), None),
            Err(e) => (None, Some(detail(e))),
        };
        let failed = error.is_some();
        results.push(ChainStepResult {
            step: index + 1,
            name: step.name.clone().unwrap_or_default(),
            ok: !failed,
            result: flat(&state, &p, outcome, step_started, &step_id),
        });
        steps.push(StepResult {
            index,
            name: step.name.clone(),
            ok: !failed,
            result,
            error,
        });
        if failed && stop_on_failure {
            break;
        }
    }
    let completed_steps = steps.iter().filter(|s| s.ok).count();
    Ok(HttpResponse::Ok().json(ChainResponse {
        total_steps: r.steps.len(),
        completed_steps,
        failed_step: steps.iter().position(|s| !s.ok).map_or(0, |i| i + 1),
        total_duration_ms: started.elapsed().as_millis() as u64,
        results,
        completed: completed_steps == r.steps.len(),
        steps,
    }))
}

/// `POST /api/v1/compare`
#[utoipa::path(post, path = "/api/v1/compare", tag = "native", request_body = CompareRequest,
    responses((status = 200, description = "One result per backend", body = CompareResponse), super::openapi::NativeErrors))]
pub async fn compare(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let r: CompareRequest = body(&req, payload, &state).await?;
    if r.backends.is_empty() {
        return Err(native(
            &req,
            ApiError::InvalidRequest("backends: name at least one backend".into()),
        ));
    }
    let started = Instant::now();
    let request_id = RequestId::of(&req);
    let parent = RequestId::meta(&req);
    let one = |index: usize, backend: &String| {
        let p = PromptRequest {
            backend: Some(backend.clone()),
            model: None,
            prompt: r.prompt.clone(),
            system_prompt: r.system_prompt.clone(),
            workdir: None,
            max_turns: None,
            output_format: OutputFormat::Json,
            profile: ProfileName::Chat,
            session_id: None,
            ephemeral: true,
        };
        let (state, request_id, parent) = (&state, &request_id, &parent);
        let backend = backend.clone();
        async move {
            let (result, error) = split(
                run(
                    state,
                    &p,
                    &format!("{request_id}-{index}"),
                    sub_meta(parent),
                )
                .await,
            );
            BackendResult {
                backend,
                ok: error.is_none(),
                result,
                error,
            }
        }
    };
    let limit = if r.sequential { 1 } else { r.backends.len() };
    let results: Vec<BackendResult> = stream::iter(r.backends.iter().enumerate())
        .map(|(i, b)| one(i, b))
        .buffered(limit)
        .collect()
        .await;
    Ok(HttpResponse::Ok().json(CompareResponse {
        results,
        total_duration_ms: started.elapsed().as_millis() as u64,
    }))
}
