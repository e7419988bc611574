//! The Anthropic dialect: `POST /anthropic/v1/messages` (streaming and not). The official SDKs
//! append `/v1/messages` to their base URL, so with the documented base URL
//! `http://HOST:PORT/anthropic/v1` they reach `/anthropic/v1/v1/messages`; every such path is
//! accepted.

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::error::{ApiError, DialectError};
use super::sse::{self, StreamRenderer};
use super::{only, read_body, AppState, RequestId};
use crate::error::ServeError;
use crate::protocol::anthropic::{self as wire, StreamTranslator};
use crate::protocol::{TurnEvent, TurnOutcome, TurnSpec};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource([
            "/anthropic/v1/messages",
            "/anthropic/v1/v1/messages",
            "/anthropic/messages",
        ])
        .post(messages)
        .default_service(only("POST")),
    )
    .service(
        web::resource([
            "/anthropic/v1/messages/count_tokens",
            "/anthropic/v1/v1/messages/count_tokens",
            "/anthropic/messages/count_tokens",
        ])
        .post(count_tokens)
        .default_service(only("POST")),
    )
    .service(
        web::resource([
            "/anthropic/v1/models",
            "/anthropic/v1/v1/models",
            "/anthropic/models",
        ])
        .get(models)
        .default_service(only("GET")),
    )
    .service(
        web::resource([
            "/anthropic/v1/models/{id}",
            "/anthropic/v1/v1/models/{id}",
            "/anthropic/models/{id}",
        ])
        .get(model)
        .default_service(only("GET")),
    );
}

/// `POST /v1/messages/count_tokens`: an estimate, not the upstream's count. The CLI offers no way
/// to ask the upstream (it never calls count_tokens), so this counts ≈4 bytes of text per token
/// plus a fixed cost per message and image; the response header `x-clinvoker-token-count:
/// estimate` says so.
#[utoipa::path(post, path = "/anthropic/v1/messages/count_tokens", tag = "anthropic", request_body = super::openapi::MessagesBody,
    description = "An estimate (≈4 bytes of text per token, 4 per message, 1600 per image): the CLI cannot ask the upstream to count. The header x-clinvoker-token-count: estimate says so.",
    responses((status = 200, description = "Estimated input tokens", body = super::openapi::TokenCount), super::openapi::AnthropicErrors))]
pub async fn count_tokens(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let request_id = RequestId::of(&req);
    let err = |e: ApiError| DialectError::anthropic(e, &request_id);
    let body = read_body(payload, state.max_body_bytes)
        .await
        .map_err(err)?;
    let tokens = wire::estimate_tokens(&body).map_err(|m| err(ApiError::InvalidRequest(m)))?;
    Ok(HttpResponse::Ok()
        .insert_header(("x-clinvoker-token-count", "estimate"))
        .json(serde_json::json!({"input_tokens": tokens})))
}

/// `GET /v1/models`: every configured model name, in Anthropic's list shape (`limit`,
/// `after_id`, `before_id` page through it).
#[utoipa::path(get, path = "/anthropic/v1/models", tag = "anthropic",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000), ("after_id" = Option<String>, Query), ("before_id" = Option<String>, Query)),
    responses((status = 200, description = "Configured model names", body = super::openapi::ModelList), super::openapi::AnthropicErrors))]
pub async fn models(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let err =
        |m: String| DialectError::anthropic(ApiError::InvalidRequest(m), &RequestId::of(&req));
    let query = web::Query::<wire::ModelsQuery>::from_query(req.query_string())
        .map_err(|e| err(e.to_string()))?;
    let names: Vec<String> = state
        .router
        .models()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    Ok(HttpResponse::Ok().json(wire::models_page(&names, &query).map_err(err)?))
}

/// `GET /v1/models/{id}`
#[utoipa::path(get, path = "/anthropic/v1/models/{id}", tag = "anthropic", params(("id" = String, Path)),
    responses((status = 200, description = "One model", body = super::openapi::ModelInfo), super::openapi::AnthropicErrors))]
pub async fn model(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    match state
        .router
        .models()
        .into_iter()
        .find(|(name, _)| *name == id)
    {
        Some((name, _)) => Ok(HttpResponse::Ok().json(wire::model_info(&name))),
        None => Err(DialectError::anthropic(
            ApiError::NotFound(format!("model: {id}")),
            &RequestId::of(&req),
        )),
    }
}

#[utoipa::path(post, path = "/anthropic/v1/messages", tag = "anthropic", request_body = super::openapi::MessagesBody,
    description = "Also served at /anthropic/v1/v1/messages, the path the official SDKs reach with base URL /anthropic/v1.",
    responses((status = 200, description = "A message, or server-sent events when `stream` is true",
        content((super::openapi::MessageBody = "application/json"), (String = "text/event-stream"))), super::openapi::AnthropicErrors))]
pub async fn messages(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let request_id = RequestId::of(&req);
    let err = |e: ApiError| DialectError::anthropic(e, &request_id);
    let body = read_body(payload, state.max_body_bytes)
        .await
        .map_err(err)?;
    let parsed = wire::parse_request(&body).map_err(|m| err(ApiError::InvalidRequest(m)))?;
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
    let message_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    if parsed.stream {
        let renderer = AnthropicSse {
            translator: StreamTranslator::new(&parsed.model, &message_id),
            request_id,
        };
        let restarts = state
            .metrics
            .streams_restarted
            .with_label_values(&["anthropic"]);
        return Ok(sse::response(first, events, renderer, restarts));
    }
    let outcome = sse::collect(first, &mut events).await.map_err(serve_err)?;
    Ok(HttpResponse::Ok().json(wire::message_response(&message_id, &parsed.model, &outcome)))
}

struct AnthropicSse {
    translator: StreamTranslator,
    request_id: String,
}

fn frames(events: Vec<wire::SseEvent>) -> Vec<Bytes> {
    events
        .iter()
        .map(|(name, data)| sse::frame(name, data))
        .collect()
}

impl StreamRenderer for AnthropicSse {
    fn event(&mut self, event: &TurnEvent) -> Vec<Bytes> {
        frames(self.translator.event(event))
    }

    fn done(&mut self, outcome: &TurnOutcome) -> Vec<Bytes> {
        frames(self.translator.done(outcome))
    }

    /// After the stream has started, a failure is one final `error` event.
    fn error(&mut self, error: ServeError) -> Vec<Bytes> {
        log::warn!("request {}: failed mid-stream: {error}", self.request_id);
        let body = DialectError::anthropic(error, &self.request_id).body();
        vec![sse::frame("error", &body)]
    }
}
