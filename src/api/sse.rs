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
/// A turn whose event channel closed before its final event.
pub(super) fn lost() -> ServeError {
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

/// What a stream has forwarded of the answer, to tell a complete answer from a mix of attempts:
/// the streamed text must be the final answer's text, or the stream ends with an error.
#[derive(Debug, Default)]
pub struct StreamGuard {
    forwarded: String,
}

impl StreamGuard {
    /// Notes `event`; `Err` when the stream can no longer be the model's answer (the CLI
    /// started over after text was forwarded). A restart before any text is invisible.
    pub fn check(&mut self, event: &TurnEvent) -> Result<(), ServeError> {
        match event {
            TurnEvent::TextDelta(text) => {
                self.forwarded.push_str(text);
                Ok(())
            }
            TurnEvent::Restarted if !self.forwarded.is_empty() => Err(ServeError::StreamRestarted),
            TurnEvent::Done(outcome)
                if !self.forwarded.is_empty() && self.forwarded != outcome.text() =>
            {
                Err(ServeError::StreamRestarted)
            }
            _ => Ok(()),
        }
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
    guard: StreamGuard,
    /// Counts streams ended by the guard (the dialect's label set).
    restarts: prometheus::IntCounter,
    /// None once the final event was rendered: the stream ends when `pending` is empty.
    events: Option<Events>,
    pending: VecDeque<Bytes>,
    renderer: R,
}

/// A `200 text/event-stream` response that renders `first` and every later event. `restarts`
/// counts the streams its [`StreamGuard`] has to end with an error.
pub fn response<R: StreamRenderer>(
    first: TurnEvent,
    events: Events,
    renderer: R,
    restarts: prometheus::IntCounter,
) -> HttpResponse {
    let state = SseState {
        first: Some(first),
        guard: StreamGuard::default(),
        restarts,
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
            if let Some(Err(error)) = next.as_ref().map(|e| st.guard.check(e)) {
                // Dropping the receiver tells the process to stop the turn.
                st.events = None;
                st.restarts.inc();
                st.pending.extend(st.renderer.error(error));
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Block;

    fn done(text: &str) -> TurnEvent {
        TurnEvent::Done(TurnOutcome {
            content: vec![Block::Text(text.into())],
            ..Default::default()
        })
    }

    #[test]
    fn a_restart_before_any_text_is_invisible_after_text_it_ends_the_stream() {
        let mut clean = StreamGuard::default();
        assert!(clean.check(&TurnEvent::Restarted).is_ok());
        assert!(clean.check(&TurnEvent::TextDelta("whole".into())).is_ok());
        assert!(clean.check(&done("whole")).is_ok());

        let mut broken = StreamGuard::default();
        assert!(broken.check(&TurnEvent::TextDelta("par".into())).is_ok());
        assert!(matches!(
            broken.check(&TurnEvent::Restarted),
            Err(ServeError::StreamRestarted)
        ));
    }

    #[test]
    fn a_final_answer_unlike_the_streamed_text_is_an_error() {
        // The CLI fell back to a non-streaming call after partial deltas: the answer came whole.
        let mut g = StreamGuard::default();
        assert!(g.check(&TurnEvent::TextDelta("par".into())).is_ok());
        assert!(g.check(&done("partial then whole")).is_err());
        // Nothing streamed: the whole answer is rendered from the outcome.
        assert!(StreamGuard::default().check(&done("whole")).is_ok());
    }
}
