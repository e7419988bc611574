//! Turning a turn's event channel into an HTTP answer: the first event decides between an error
//! status and a `200`, then either the events are collected into one outcome or streamed as
//! server-sent events through a dialect's [`StreamRenderer`]. When the client goes away, actix
//! drops the stream and with it the receiver, which is what tells the process to interrupt.

use std::collections::VecDeque;
use std::sync::Arc;

use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::stream;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::ServeError;
use crate::protocol::{RequestMeta, TurnEvent, TurnOutcome, TurnSpec};
use crate::supervisor::SupervisorHandle;

pub type Events = UnboundedReceiver<TurnEvent>;

/// The process vanished without a final event (its actor stopped).
fn lost() -> ServeError {
    ServeError::ProcessExited {
        backend: "claude",
        status: "the process ended without finishing the turn".into(),
    }
}

/// Submits a turn for the client's `model` (recorded for the operators' views) and waits for its
/// first event: a failure before anything was produced is returned as an error, so the client
/// gets a proper status code.
pub async fn start(
    supervisor: &SupervisorHandle,
    spec: TurnSpec,
    meta: Arc<RequestMeta>,
    model: &str,
) -> Result<(TurnEvent, Events), ServeError> {
    let _ = meta.model.set(model.to_string());
    let mut events = supervisor.submit_with(spec, meta).await?;
    let first = first_event(&mut events).await?;
    Ok((first, events))
}

async fn first_event(events: &mut Events) -> Result<TurnEvent, ServeError> {
    match events.recv().await {
        Some(TurnEvent::Failed(e)) => Err(e),
        Some(event) => Ok(event),
        None => Err(lost()),
    }
}

/// Collects the whole turn (non-streaming answers).
pub async fn collect(first: TurnEvent, events: &mut Events) -> Result<TurnOutcome, ServeError> {
    let mut next = Some(first);
    loop {
        match next.take() {
            Some(TurnEvent::Done(outcome)) => return Ok(outcome),
            Some(TurnEvent::Failed(e)) => return Err(e),
            Some(_) => {}
            None => return Err(lost()),
        }
        next = events.recv().await;
    }
}

/// One dialect's way of writing a turn as SSE.
pub trait StreamRenderer: 'static {
    /// A block start, delta or stop (never `Done`/`Failed`: those are `done` and `error`).
    fn event(&mut self, event: &TurnEvent) -> Vec<Bytes>;
    fn done(&mut self, outcome: &TurnOutcome) -> Vec<Bytes>;
    fn error(&mut self, error: ServeError) -> Vec<Bytes>;
}

/// `event: <name>` + `data: <json>` + blank line.
pub fn frame(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// `data: <payload>` + blank line: OpenAI's frames carry no event name.
pub fn data_frame(payload: &str) -> Bytes {
    Bytes::from(format!("data: {payload}\n\n"))
}

struct SseState<R> {
    first: Option<TurnEvent>,
    /// None once the final event was rendered: the stream ends when `pending` is empty.
    events: Option<Events>,
    pending: VecDeque<Bytes>,
    renderer: R,
}

/// A `200 text/event-stream` response that renders `first` and every later event.
pub fn response<R: StreamRenderer>(first: TurnEvent, events: Events, renderer: R) -> HttpResponse {
    let state = SseState {
        first: Some(first),
        events: Some(events),
        pending: VecDeque::new(),
        renderer,
    };
    let body = stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.pending.pop_front() {
                return Some((Ok::<_, actix_web::Error>(chunk), st));
            }
            let events = st.events.as_mut()?;
            let next = match st.first.take() {
                Some(first) => Some(first),
                None => events.recv().await,
            };
            let rendered = match next {
                Some(TurnEvent::Done(outcome)) => {
                    st.events = None;
                    st.renderer.done(&outcome)
                }
                Some(TurnEvent::Failed(error)) => {
                    st.events = None;
                    st.renderer.error(error)
                }
                None => {
                    st.events = None;
                    st.renderer.error(lost())
                }
                Some(event) => st.renderer.event(&event),
            };
            st.pending.extend(rendered);
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}
