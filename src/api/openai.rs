//! The OpenAI dialect: `POST /openai/v1/chat/completions` (streaming and not) and the model list.
//! The official SDKs append `/chat/completions` and `/models` to their base URL, so the documented
//! base URL `http://HOST:PORT/openai/v1` reaches these paths as they are.

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::Value;

use super::error::{ApiError, DialectError};
use super::sse::{self, StreamRenderer};
use super::{only, read_body, AppState, RequestId};
use crate::error::ServeError;
use crate::protocol::openai::{self as wire, ChunkWriter};
use crate::protocol::{TurnEvent, TurnOutcome, TurnSpec};
use crate::routing::Backend;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/openai/v1/chat/completions")
            .post(chat_completions)
            .default_service(only("POST")),
    )
    .service(
        web::resource("/openai/v1/models")
            .get(models)
            .default_service(only("GET")),
    )
    .service(
        web::resource("/openai/v1/models/{id}")
            .get(model)
            .default_service(only("GET")),
    );
}

/// Names Claude Code resolves itself, listed beside the configured ones.
const LISTED_ALIASES: [&str; 3] = ["sonnet", "opus", "haiku"];

/// The configured Claude model names, then the CLI's aliases.
fn model_names(state: &AppState) -> Vec<String> {
    let mut names = state.router.models_of(Backend::Claude);
    for alias in LISTED_ALIASES {
        if !names.iter().any(|n| n == alias) {
            names.push(alias.to_string());
        }
    }
    names
}

/// `GET /v1/models`
#[utoipa::path(get, path = "/openai/v1/models", tag = "openai",
    responses((status = 200, description = "Configured model names", body = super::openapi::OpenAiModelList), super::openapi::OpenAiErrors))]
pub async fn models(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(wire::model_list(&model_names(&state)))
}

/// `GET /v1/models/{id}`
#[utoipa::path(get, path = "/openai/v1/models/{id}", tag = "openai", params(("id" = String, Path)),
    responses((status = 200, description = "One model", body = super::openapi::OpenAiModel), super::openapi::OpenAiErrors))]
pub async fn model(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let id = req.match_info().get("id").unwrap_or_default();
    if model_names(&state).iter().any(|n| n == id) {
        return Ok(HttpResponse::Ok().json(wire::model_info(id)));
    }
    Err(DialectError::openai(
        ApiError::NotFound(format!("The model {id:?} does not exist")),
        &RequestId::of(&req),
    ))
}

/// Seconds since the Unix epoch, for `created`.
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `POST /v1/chat/completions`
#[utoipa::path(post, path = "/openai/v1/chat/completions", tag = "openai", request_body = super::openapi::ChatBody,
    responses((status = 200, description = "A chat completion, or `chat.completion.chunk` server-sent events when `stream` is true",
        content((super::openapi::ChatCompletionBody = "application/json"), (String = "text/event-stream"))), super::openapi::OpenAiErrors))]
pub async fn chat_completions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let request_id = RequestId::of(&req);
    let err = |e: ApiError| DialectError::openai(e, &request_id);
    let body = read_body(payload, state.max_body_bytes)
        .await
        .map_err(err)?;
    let parsed = wire::parse_request(&body).map_err(|e| {
        err(match e.param {
            Some(param) => ApiError::InvalidParam {
                param,
                message: e.message,
            },
            None => ApiError::InvalidRequest(e.message),
        })
    })?;
    let serve_err = |e: ServeError| err(ApiError::Serve(e));
    let route = state.router.resolve(&parsed.model).map_err(serve_err)?;
    super::check_structured(route.backend, parsed.output_schema.is_some()).map_err(err)?;
    super::check_tools(route.backend, !parsed.tools.is_empty()).map_err(err)?;
    let spec = TurnSpec {
        request_id: request_id.clone(),
        pool: parsed.pool(route.backend),
        system_prompt: parsed.system.clone(),
        stop_sequences: parsed.stop_sequences.clone(),
        output_schema: parsed.output_schema.clone(),
        cli_model: route.model,
        history: parsed.history,
        prompt: parsed.prompt,
        tools: parsed.tools.clone(),
    };
    let (first, mut events) = sse::start(
        &state.supervisor,
        spec,
        RequestId::meta(&req),
        &parsed.model,
    )
    .await
    .map_err(serve_err)?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_unix();
    if parsed.stream {
        let renderer = OpenAiSse {
            chunks: ChunkWriter::new(&id, &parsed.model, created, parsed.include_usage),
            request_id,
        };
        let restarts = state
            .metrics
            .streams_restarted
            .with_label_values(&["openai"]);
        return Ok(sse::response(first, events, renderer, restarts));
    }
    let outcome = sse::collect(first, &mut events).await.map_err(serve_err)?;
    Ok(HttpResponse::Ok().json(wire::chat_completion(&id, &parsed.model, created, &outcome)))
}

struct OpenAiSse {
    chunks: ChunkWriter,
    request_id: String,
}

fn frames(chunks: Vec<Value>) -> Vec<Bytes> {
    chunks
        .iter()
        .map(|c| sse::data_frame(&c.to_string()))
        .collect()
}

impl StreamRenderer for OpenAiSse {
    fn event(&mut self, event: &TurnEvent) -> Vec<Bytes> {
        frames(self.chunks.event(event))
    }

    fn done(&mut self, outcome: &TurnOutcome) -> Vec<Bytes> {
        let mut out = frames(self.chunks.done(outcome));
        out.push(sse::data_frame("[DONE]"));
        out
    }

    /// After the stream has started, a failure is one final `{"error": …}` chunk (the SDKs raise
    /// it as an `APIError`) and no `[DONE]`.
    fn error(&mut self, error: ServeError) -> Vec<Bytes> {
        log::warn!("request {}: failed mid-stream: {error}", self.request_id);
        let body = DialectError::openai(error, &self.request_id).body();
        vec![sse::data_frame(&body.to_string())]
    }
}
