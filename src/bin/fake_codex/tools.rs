//! Client tools in `fake-codex`, mirroring codex 0.171.0's lines: a thread's `dynamicTools`
//! (which need the `experimentalApi` capability); a prompt holding `FAKE_TOOL:<name>:<json>`
//! (several for parallel calls) makes the model call those of the thread's tools: an
//! `item/started` (`dynamicToolCall`) and an `item/tool/call` request per call, all at once, then
//! nothing until every call is answered. Answered: an `item/completed` per call, then the answer
//! quotes the results (`tool results: <name>=<text>`, ` (failed)` after a failure). Interrupted
//! meanwhile: the calls' items fail and the turn ends `interrupted`; a late answer is ignored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_support::{emit, Halt};

/// Where the answer to each of our requests goes: the dispatcher hands a response to the turn
/// worker that asked.
fn waiting() -> &'static Mutex<HashMap<u64, Sender<Value>>> {
    static WAITING: OnceLock<Mutex<HashMap<u64, Sender<Value>>>> = OnceLock::new();
    WAITING.get_or_init(Default::default)
}

/// A response from the server (a message with an id and no method): to the worker waiting on
/// it; one nobody waits for (late, after an interrupt) is dropped.
pub fn answered(msg: Value) {
    let Some(id) = msg.get("id").and_then(Value::as_u64) else {
        return;
    };
    let sender = waiting().lock().ok().and_then(|mut w| w.remove(&id));
    if let Some(sender) = sender {
        let _ = sender.send(msg);
    }
}

/// Sends the `item/tool/call` requests for `calls` and waits for every answer (or the stop
/// line). `item` makes a thread/turn-scoped notification.
pub fn call(
    calls: &[(String, Value)],
    stop: &Receiver<()>,
    notify: &dyn Fn(&str, Value),
    ids: (&str, &str),
) -> Result<String, Halt> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (thread_id, turn_id) = ids;
    let (tx, answers) = mpsc::channel();
    let mut pending = Vec::new();
    for (name, arguments) in calls {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let call_id = format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        if let Ok(mut w) = waiting().lock() {
            w.insert(id, tx.clone());
        }
        let item = json!({"type": "dynamicToolCall", "id": call_id, "namespace": null,
            "tool": name, "arguments": arguments, "status": "inProgress", "contentItems": null,
            "success": null});
        notify("item/started", json!({"item": item}));
        emit(
            &json!({"method": "item/tool/call", "id": id, "params": {"threadId": thread_id,
            "turnId": turn_id, "callId": call_id, "namespace": null, "tool": name,
            "arguments": arguments}}),
        );
        pending.push((id, item));
    }
    let mut results: HashMap<u64, Value> = HashMap::new();
    while results.len() < pending.len() {
        match stop.try_recv() {
            Ok(()) => {
                for (_, item) in &pending {
                    let mut item = item.clone();
                    item["status"] = json!("failed");
                    notify("item/completed", json!({"item": item}));
                }
                return Err(Halt::Stopped);
            }
            Err(TryRecvError::Disconnected) => return Err(Halt::Silent),
            Err(TryRecvError::Empty) => {}
        }
        if let Ok(msg) = answers.recv_timeout(Duration::from_millis(10)) {
            if let Some(id) = msg.get("id").and_then(Value::as_u64) {
                results.insert(id, msg.get("result").cloned().unwrap_or(Value::Null));
            }
        }
    }
    let mut quoted = Vec::new();
    for (id, item) in &pending {
        let result = &results[id];
        let success = result["success"].as_bool() == Some(true);
        let text: String = result["contentItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["text"].as_str())
            .collect();
        let mut done = item.clone();
        done["status"] = json!("completed");
        done["contentItems"] = result["contentItems"].clone();
        done["success"] = json!(success);
        notify("item/completed", json!({"item": done}));
        let failed = if success { "" } else { " (failed)" };
        quoted.push(format!(
            "{}={text}{failed}",
            item["tool"].as_str().unwrap_or("")
        ));
    }
    Ok(format!("tool results: {}", quoted.join(", ")))
}
