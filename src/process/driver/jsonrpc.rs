//! JSON-RPC over stdio, as the Codex app-server (without the `"jsonrpc"` member) and the Gemini
//! CLI's ACP (with `"jsonrpc":"2.0"`) speak it: one object per line. [`Rpc`] writes requests,
//! notifications and answers, and correlates each response with what its request was for — the
//! one place that matches ids, for every driver.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::Outbox;

/// An error object from the other side.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// One line read from the other side.
#[derive(Debug)]
pub enum Incoming<P> {
    /// The answer to a request of ours, with what that request was for.
    Response {
        purpose: P,
        result: Result<Value, RpcError>,
    },
    /// An answer whose id we never sent or already had answered.
    Unexpected {
        id: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// A request from the other side: it waits for an answer.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
}

/// Our side of one JSON-RPC connection. `P` says what a request was for.
#[derive(Debug)]
pub struct Rpc<P> {
    /// Whether lines carry `"jsonrpc":"2.0"` (ACP does; the Codex app-server does not).
    versioned: bool,
    next_id: u64,
    pending: HashMap<u64, P>,
}

impl<P> Rpc<P> {
    pub fn new(versioned: bool) -> Self {
        Self {
            versioned,
            next_id: 0,
            pending: HashMap::new(),
        }
    }

    fn line(&self, mut body: Map<String, Value>) -> Value {
        if self.versioned {
            body.insert("jsonrpc".into(), json!("2.0"));
        }
        Value::Object(body)
    }

    /// Sends a request; its response comes back as [`Incoming::Response`] with `purpose`.
    pub fn request(&mut self, method: &str, params: Value, purpose: P, out: &mut Outbox) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.pending.insert(id, purpose);
        let mut body = Map::new();
        body.insert("id".into(), json!(id));
        body.insert("method".into(), json!(method));
        body.insert("params".into(), params);
        out.write(&self.line(body));
        id
    }

    /// Sends a notification (no answer comes).
    pub fn notify(&self, method: &str, params: Option<Value>, out: &mut Outbox) {
        let mut body = Map::new();
        body.insert("method".into(), json!(method));
        if let Some(params) = params {
            body.insert("params".into(), params);
        }
        out.write(&self.line(body));
    }

    /// Answers a request of the other side.
    pub fn respond(&self, id: &Value, result: Value, out: &mut Outbox) {
        let mut body = Map::new();
        body.insert("id".into(), id.clone());
        body.insert("result".into(), result);
        out.write(&self.line(body));
    }

    /// Refuses a request of the other side.
    pub fn respond_error(&self, id: &Value, code: i64, message: &str, out: &mut Outbox) {
        let mut body = Map::new();
        body.insert("id".into(), id.clone());
        body.insert("error".into(), json!({"code": code, "message": message}));
        out.write(&self.line(body));
    }

    /// Requests still waiting for their answer.
    pub fn pending(&self) -> impl Iterator<Item = (&u64, &P)> {
        self.pending.iter()
    }

    /// Reads one line. `Err` means it is not a JSON-RPC object at all (a protocol violation).
    pub fn parse(&mut self, line: &str) -> Result<Incoming<P>, String> {
        let value: Value = serde_json::from_str(line).map_err(|_| {
            let shown: String = line.chars().take(120).collect();
            format!("non-JSON line on stdout: {shown:?}")
        })?;
        let Value::Object(mut obj) = value else {
            return Err(format!("a JSON line that is not an object: {line:.120}"));
        };
        let id = obj.remove("id");
        let method = obj
            .remove("method")
            .and_then(|m| m.as_str().map(String::from));
        let params = obj.remove("params").unwrap_or(Value::Null);
        match (id, method) {
            (Some(id), Some(method)) => Ok(Incoming::Request { id, method, params }),
            (None, Some(method)) => Ok(Incoming::Notification { method, params }),
            (Some(id), None) => {
                let Some(purpose) = id.as_u64().and_then(|n| self.pending.remove(&n)) else {
                    return Ok(Incoming::Unexpected { id });
                };
                let result = match obj.remove("error") {
                    Some(e) => Err(RpcError {
                        code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                        message: e
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        data: e.get("data").cloned(),
                    }),
                    None => Ok(obj.remove("result").unwrap_or(Value::Null)),
                };
                Ok(Incoming::Response { purpose, result })
            }
            (None, None) => Err(format!(
                "a JSON-RPC line with neither id nor method: {line:.120}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_find_their_request_and_others_are_sorted() {
        let mut rpc: Rpc<&str> = Rpc::new(true);
        let mut out = Outbox::default();
        let a = rpc.request("initialize", json!({}), "init", &mut out);
        let b = rpc.request("session/new", json!({}), "new", &mut out);
        rpc.notify("session/cancel", Some(json!({"sessionId": "s"})), &mut out);
        let sent: Vec<Value> = out
            .lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(sent[0]["jsonrpc"], "2.0");
        assert_eq!(sent[1]["id"], b);
        assert!(sent[2].get("id").is_none());

        let line =
            format!(r#"{{"jsonrpc":"2.0","id":{b},"error":{{"code":-32602,"message":"no"}}}}"#);
        match rpc.parse(&line) {
            Ok(Incoming::Response {
                purpose: "new",
                result: Err(e),
            }) => assert_eq!(e.code, -32602),
            other => panic!("{other:?}"),
        }
        match rpc.parse(&format!(r#"{{"id":{a},"result":{{"ok":1}}}}"#)) {
            Ok(Incoming::Response {
                purpose: "init",
                result: Ok(v),
            }) => assert_eq!(v["ok"], 1),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            rpc.parse(&format!(r#"{{"id":{a},"result":{{}}}}"#)),
            Ok(Incoming::Unexpected { .. })
        ));
        assert!(matches!(
            rpc.parse(r#"{"method":"turn/started","params":{"threadId":"t"}}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert!(matches!(
            rpc.parse(r#"{"id":0,"method":"item/commandExecution/requestApproval","params":{}}"#),
            Ok(Incoming::Request { .. })
        ));
        assert!(rpc.parse("Loading...").is_err());
    }

    #[test]
    fn unversioned_lines_have_no_jsonrpc_member() {
        let mut rpc: Rpc<()> = Rpc::new(false);
        let mut out = Outbox::default();
        rpc.request("thread/start", json!({}), (), &mut out);
        rpc.respond_error(&json!(0), -32601, "not supported", &mut out);
        assert!(out.lines.iter().all(|l| !l.contains("jsonrpc")));
    }
}
