//! What every driver test needs: feed a driver a line, read the lines it wrote as JSON, and name
//! the events it reported in a form a test compares as strings.

use serde_json::Value;

use super::{Driver, DriverEvent, Outbox};
use crate::protocol::TurnEvent;

/// The lines `out` holds, as JSON.
pub fn lines(out: &Outbox) -> Vec<Value> {
    out.lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect()
}

/// The events `out` holds, turn events as `turn:name` with `name` naming the event.
pub fn names_with(out: &Outbox, name: impl Fn(&TurnEvent) -> String) -> Vec<String> {
    out.events
        .iter()
        .map(|e| match e {
            DriverEvent::Turn { turn, event } => format!("{turn}:{}", name(event)),
            other => format!("{other:?}"),
        })
        .collect()
}

/// [`names_with`] with [`event_name`].
pub fn names(out: &Outbox) -> Vec<String> {
    names_with(out, event_name)
}

pub fn event_name(event: &TurnEvent) -> String {
    match event {
        TurnEvent::TextDelta(t) => format!("text {t}"),
        TurnEvent::Done(o) => format!("done {}", o.text()),
        TurnEvent::Failed(e) => format!("failed {e}"),
        other => format!("{other:?}"),
    }
}

/// Feeds `line` and returns what came out.
pub fn feed(d: &mut impl Driver, line: Value) -> Outbox {
    let mut out = Outbox::default();
    d.on_line(&line.to_string(), &mut out);
    out
}
