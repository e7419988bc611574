//! The native API's `stream-json` output: NDJSON lines, `text_delta` for each piece of text, then
//! one `result` (recorded in the prompt's session first) or `error` line.

use std::time::Instant;

use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Value};

use super::error::ApiError;
use super::native::detail;
use super::resume::{Answered, SessionPlan};
use super::sse::{self, Events, StreamGuard};
use crate::protocol::native::{PromptRequest, PromptResult};
use crate::protocol::TurnEvent;

/// What the end of a stream-json answer needs: the request and its session, to record the turn
/// before the `result` line is sent.
pub(super) struct StreamEnd {
    pub request: PromptRequest,
    pub session: SessionPlan,
    pub backend: &'static str,
    pub model: String,
    pub request_id: String,
    pub started: Instant,
    pub restarts: prometheus::IntCounter,
}

impl StreamEnd {
    async fn done(&self, outcome: crate::protocol::TurnOutcome) -> Value {
        let ms = self.started.elapsed().as_millis() as u64;
        let mut result =
            PromptResult::new(self.backend, &self.model, &outcome, ms, &self.request_id);
        let recorded = self
            .session
            .record(Answered {
                request: &self.request,
                backend: self.backend,
                model: &self.model,
                output: result.output.clone(),
                usage: &outcome.usage,
                duration_ms: ms,
                request_id: &self.request_id,
            })
            .await;
        match recorded {
            Ok(id) => {
                result.session_id = id;
                json!({"type": "result", "result": result})
            }
            Err(e) => json!({"type": "error", "error": detail(&e)}),
        }
    }

    async fn failed(&self, e: ApiError) -> Value {
        self.session
            .record_failure(&self.request.prompt, &e, &self.request_id)
            .await;
        json!({"type": "error", "error": detail(&e)})
    }
}

/// The stream-json output: one `text_delta` line per delta, then `result` or `error`.
pub(super) fn ndjson(
    first: TurnEvent,
    events: Events,
    end: StreamEnd,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let line = |v: Value| Ok::<_, actix_web::Error>(Bytes::from(format!("{v}\n")));
    let state = (Some(first), events, StreamGuard::default(), Some(end));
    stream::unfold(
        state,
        move |(mut first, mut events, mut guard, mut end)| async move {
            loop {
                // `end` is taken by the last line: after it the stream is over.
                let finish = end.as_ref()?;
                let event = match first.take() {
                    Some(e) => Some(e),
                    None => events.recv().await,
                };
                if let Some(Err(e)) = event.as_ref().map(|e| guard.check(e)) {
                    finish.restarts.inc();
                    let out = finish.failed(ApiError::Serve(e)).await;
                    end = None;
                    return Some((line(out), (first, events, guard, end)));
                }
                let out = match event {
                    Some(TurnEvent::TextDelta(text)) => json!({"type": "text_delta", "text": text}),
                    Some(
                        TurnEvent::BlockStarted(_)
                        | TurnEvent::ToolInputDelta(_)
                        | TurnEvent::BlockStopped
                        | TurnEvent::Restarted,
                    ) => continue,
                    Some(TurnEvent::Done(outcome)) => {
                        let out = finish.done(outcome).await;
                        end = None;
                        out
                    }
                    Some(TurnEvent::Failed(e)) => {
                        let out = finish.failed(ApiError::Serve(e)).await;
                        end = None;
                        out
                    }
                    None => {
                        let out = finish.failed(ApiError::Serve(sse::lost())).await;
                        end = None;
                        out
                    }
                };
                return Some((line(out), (first, events, guard, end)));
            }
        },
    )
}
