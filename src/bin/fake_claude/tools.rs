//! Client tools in `fake-claude`, mirroring the real CLI's lines (measured with Claude Code
//! 2.1.331): `mcp_set_servers` registers the host's SDK server `client`; a prompt holding
//! `FAKE_TOOL:<name>:<json input>` (several for parallel calls) runs the MCP handshake with the
//! host, streams a text block and one `tool_use` block per marker (`stop_reason: tool_use`), then
//! sends a `tools/call` per block and waits: an answer gives a continuation quoting the results,
//! an `interrupt` cancels the calls and ends the turn as the real CLI does (`aborted_tools`).

use std::sync::mpsc::Receiver;

use serde_json::{json, Value};

use super::{emit, Fake};

/// How a tool turn went.
pub enum ToolTurn {
    /// A requested tool was never listed by the host: nothing was streamed.
    Unknown(String),
    /// The calls were answered: the continuation's text.
    Answered(String),
    /// Interrupted while the calls were pending; the error result is written.
    Interrupted,
}

impl Fake {
    /// Sends the host an `mcp_message` and waits for its answer (answering control requests
    /// meanwhile); `None` for a notification's empty answer or when the host refused.
    fn ask_host(&mut self, message: Value, input: &Receiver<Value>) -> Option<Value> {
        self.next_uuid += 1;
        let request_id = format!("fake-mcp-{}", self.next_uuid);
        emit(
            &json!({"type": "control_request", "request_id": request_id, "request": {
            "subtype": "mcp_message", "server_name": "client", "message": message}}),
        );
        self.await_response(&request_id, input)
            .map(|r| r.pointer("/response/response/mcp_response").cloned())
            .ok()
            .flatten()
    }

    /// Waits for the control response `request_id`; `Err(())` when an interrupt came first.
    fn await_response(&mut self, request_id: &str, input: &Receiver<Value>) -> Result<Value, ()> {
        loop {
            let Ok(msg) = input.recv() else {
                std::process::exit(0)
            };
            match msg.get("type").and_then(Value::as_str) {
                Some("control_response")
                    if msg.pointer("/response/request_id").and_then(Value::as_str)
                        == Some(request_id) =>
                {
                    return Ok(msg)
                }
                Some("control_request") => {
                    let id = msg["request_id"].as_str().unwrap_or_default().to_string();
                    let req = msg.get("request").cloned().unwrap_or_default();
                    self.control(&id, &req);
                    if req.get("subtype").and_then(Value::as_str) == Some("interrupt") {
                        return Err(());
                    }
                }
                _ => {}
            }
        }
    }

    /// The model's tool turn for `calls`, within the message already started.
    pub fn tool_turn(
        &mut self,
        calls: &[(String, Value)],
        uuid: &str,
        input: &Receiver<Value>,
    ) -> ToolTurn {
        let listed: Vec<String> = match self.mcp_registered {
            false => Vec::new(),
            true => {
                self.ask_host(
                    json!({"method": "initialize", "jsonrpc": "2.0", "id": 0,
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}),
                    input,
                );
                self.ask_host(
                    json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    input,
                );
                let list = self.ask_host(
                    json!({"method": "tools/list", "jsonrpc": "2.0", "id": 1}),
                    input,
                );
                list.and_then(|l| l.pointer("/result/tools").cloned())
                    .and_then(|t| t.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str).map(String::from))
                    .collect()
            }
        };
        if let Some((missing, _)) = calls.iter().find(|(name, _)| !listed.contains(name)) {
            return ToolTurn::Unknown(format!("No such tool available: {missing}"));
        }
        let event = |e: Value| emit(&json!({"type": "stream_event", "event": e}));
        let text_block = json!({"type": "text", "text": "Calling a tool."});
        event(json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Calling a tool."}}));
        event(json!({"type": "content_block_stop", "index": 0}));
        emit(
            &json!({"type": "assistant", "message": {"id": "msg_fake", "role": "assistant",
            "content": [text_block]}}),
        );
        let mut ids = Vec::new();
        for (i, (name, args)) in calls.iter().enumerate() {
            let index = i + 1;
            let id = format!("toolu_fake_{}_{index}", std::process::id());
            event(
                json!({"type": "content_block_start", "index": index, "content_block":
                {"type": "tool_use", "id": id, "name": name, "input": {}}}),
            );
            event(json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": args.to_string()}}));
            event(json!({"type": "content_block_stop", "index": index}));
            emit(
                &json!({"type": "assistant", "message": {"id": "msg_fake", "role": "assistant",
                "content": [{"type": "tool_use", "id": id, "name": name, "input": args}]}}),
            );
            ids.push(id);
        }
        event(
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 5}}),
        );
        event(json!({"type": "message_stop"}));
        let mut results = Vec::new();
        for (i, ((name, args), id)) in calls.iter().zip(&ids).enumerate() {
            self.next_uuid += 1;
            let request_id = format!("fake-call-{}", self.next_uuid);
            emit(
                &json!({"type": "control_request", "request_id": request_id, "request": {
                "subtype": "mcp_message", "server_name": "client", "message": {
                    "method": "tools/call", "jsonrpc": "2.0", "id": i + 2, "params": {
                        "name": name, "arguments": args,
                        "_meta": {"claudecode/toolUseId": id, "progressToken": i + 2}}}}}),
            );
            results.push(request_id);
        }
        let mut texts = Vec::new();
        for request_id in results {
            match self.await_response(&request_id, input) {
                Ok(answer) => texts.push(
                    answer
                        .pointer("/response/response/mcp_response/result/content/0/text")
                        .and_then(Value::as_str)
                        .unwrap_or("(error)")
                        .to_string(),
                ),
                Err(()) => {
                    self.result(
                        uuid,
                        "error_during_execution",
                        true,
                        None,
                        json!({
                        "stop_reason": "tool_use", "terminal_reason": "aborted_tools",
                        "errors": ["interrupted"]}),
                    );
                    return ToolTurn::Interrupted;
                }
            }
        }
        ToolTurn::Answered(format!("tools said: {}", texts.join("; ")))
    }
}
