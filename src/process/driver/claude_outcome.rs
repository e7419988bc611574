//! What the client hears of a finished Claude Code turn: its `result` line as a typed outcome.

use serde_json::Value;

use super::wire::{self, TurnResult};
use crate::error::{ServeError, UpstreamKind};
use crate::protocol::{Block, StopReason, TurnEvent, TurnOutcome, Usage};

/// The client's view of a structured turn's `result`: the validated object as JSON text, the
/// model's text as a refusal when it never produced one, or the exhausted retries as an error.
pub(super) fn structured_event(r: TurnResult, cost_usd: f64) -> TurnEvent {
    let usage = usage_of(&r);
    match (r.is_error, r.subtype.as_str(), r.structured_output.clone()) {
        (true, "error_max_structured_output_retries", _) => {
            TurnEvent::Failed(ServeError::StructuredOutputInvalid {
                message: r.error_message(),
            })
        }
        (true, _, _) => outcome_event(r, Vec::new(), cost_usd),
        (false, _, Some(object)) => TurnEvent::Done(TurnOutcome {
            content: vec![Block::Text(object.to_string())],
            stop_reason: StopReason::EndTurn,
            stop_sequence: None,
            usage,
            cost_usd,
            duration_ms: r.duration_ms,
        }),
        (false, _, None) => TurnEvent::Done(TurnOutcome {
            content: vec![Block::Text(r.result.clone().unwrap_or_default())],
            stop_reason: StopReason::Refusal,
            stop_sequence: None,
            usage,
            cost_usd,
            duration_ms: r.duration_ms,
        }),
    }
}

fn usage_of(r: &TurnResult) -> Usage {
    Usage {
        input_tokens: r.usage.input_tokens,
        output_tokens: r.usage.output_tokens,
        cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
        cache_read_input_tokens: r.usage.cache_read_input_tokens,
    }
}

/// The client's view of a finished `result`.
pub(super) fn outcome_event(r: TurnResult, content: Vec<Value>, cost_usd: f64) -> TurnEvent {
    if r.is_error {
        return TurnEvent::Failed(ServeError::Upstream {
            kind: UpstreamKind::from_status(r.api_error_status),
            status: r.api_error_status,
            message: r.error_message(),
        });
    }
    let content = if content.is_empty() {
        // No assistant line was seen (should not happen); fall back to the result text.
        vec![Block::Text(r.result.clone().unwrap_or_default())]
    } else {
        wire::blocks(content)
    };
    TurnEvent::Done(TurnOutcome {
        content,
        stop_reason: StopReason::from_messages_api(r.stop_reason.as_deref()),
        stop_sequence: None,
        usage: Usage {
            input_tokens: r.usage.input_tokens,
            output_tokens: r.usage.output_tokens,
            cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
            cache_read_input_tokens: r.usage.cache_read_input_tokens,
        },
        cost_usd,
        duration_ms: r.duration_ms,
    })
}
