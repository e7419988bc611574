//! OpenAI function tools on the wire: `tools` and `tool_choice`, assistant `tool_calls` and
//! `role: "tool"` messages, as the Anthropic tool blocks the rest of the server speaks.

use serde_json::{json, Value};

use super::{invalid, text_only, Invalid};
use crate::protocol::tools::{self, ClientTool, ToolChoice};
use crate::protocol::{ChatMessage, Role};

/// `tools`: function tools (`{type: "function", function: {name, description, parameters}}`);
/// a function without `parameters` takes no arguments.
pub(super) fn parse_tools(value: Option<&Value>) -> Result<Vec<ClientTool>, Invalid> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("tools", "must be an array")),
    };
    let tools =
        list.iter()
            .enumerate()
            .map(|(i, t)| {
                if t.get("type").and_then(Value::as_str) != Some("function") {
                    return Err(invalid(
                        format!("tools[{i}].type"),
                        "only \"function\" tools are supported",
                    ));
                }
                let f = t.get("function").unwrap_or(&Value::Null);
                let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                    invalid(format!("tools[{i}].function.name"), "field required")
                })?;
                Ok(ClientTool {
                    name: name.to_string(),
                    description: f
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    input_schema: match f.get("parameters") {
                        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                        Some(p) => p.clone(),
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
    tools::check_all(&tools, |i| format!("tools[{i}].function")).map_err(|e| Invalid {
        param: Some("tools".into()),
        message: e,
    })?;
    Ok(tools)
}

/// `tool_choice`: `"auto"` (the default) or `"none"`. The CLI cannot force a call, so
/// `"required"` and a named function are refused rather than ignored.
pub(super) fn parse_tool_choice(value: Option<&Value>) -> Result<ToolChoice, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) if s == "auto" => Ok(ToolChoice::Auto),
        Some(Value::String(s)) if s == "none" => Ok(ToolChoice::None),
        Some(Value::String(s)) if s == "required" => Err(invalid(
            "tool_choice",
            "\"required\" is not supported by this server (the CLI cannot force a tool call); use \"auto\" or \"none\"",
        )),
        Some(Value::Object(_)) => Err(invalid(
            "tool_choice",
            "naming a function is not supported by this server (the CLI cannot force a tool call); use \"auto\" or \"none\"",
        )),
        Some(_) => Err(invalid("tool_choice", "must be \"auto\" or \"none\"")),
    }
}

/// Appends a user message. Tool results (OpenAI's `role: "tool"` messages) and a user message
/// right after them form one user message, tool results first, as the Messages API wants.
pub(super) fn push_user(messages: &mut Vec<ChatMessage>, content: Value) {
    let starts_with_result = |blocks: &[Value]| {
        blocks
            .first()
            .and_then(|b| b.get("type"))
            .and_then(Value::as_str)
            == Some("tool_result")
    };
    match messages.last_mut() {
        Some(ChatMessage {
            role: Role::User,
            content: Value::Array(existing),
        }) if starts_with_result(existing) => match content {
            Value::String(text) => existing.push(json!({"type": "text", "text": text})),
            Value::Array(blocks) => existing.extend(blocks),
            other => existing.push(other),
        },
        _ => messages.push(ChatMessage {
            role: Role::User,
            content,
        }),
    }
}

/// An assistant message: its text, and its `tool_calls` as `tool_use` blocks (the arguments,
/// a JSON string, parsed into the block's input). The error names the field at fault.
pub(super) fn assistant_content(m: &Value) -> Result<Value, (String, String)> {
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return plain_assistant(m.get("content")),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(("tool_calls".into(), "must be an array".into())),
    };
    let text = match m.get("content") {
        None | Some(Value::Null) => String::new(),
        content => text_only(content).map_err(|e| ("content".to_string(), e))?,
    };
    let mut blocks = Vec::with_capacity(calls.len() + 1);
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for (k, call) in calls.iter().enumerate() {
        let at = |f: &str| format!("tool_calls[{k}].{f}");
        let id = call.get("id").and_then(Value::as_str);
        let f = call.get("function").unwrap_or(&Value::Null);
        let name = f.get("name").and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err((
                at("id"),
                "a tool call needs an id and a function.name".into(),
            ));
        };
        let input = match f.get("arguments").and_then(Value::as_str) {
            Some("") => json!({}),
            Some(args) => match serde_json::from_str::<Value>(args) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err((
                        at("function.arguments"),
                        "must be a JSON object as text".into(),
                    ))
                }
            },
            None => return Err((at("function.arguments"), "field required".into())),
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Ok(Value::Array(blocks))
}

fn plain_assistant(content: Option<&Value>) -> Result<Value, (String, String)> {
    text_only(content)
        .map(Value::String)
        .map_err(|e| ("content".to_string(), e))
}

/// A `role: "tool"` message → a `tool_result` block (its content, text, as a string).
pub(super) fn tool_result(m: &Value) -> Result<Value, (String, String)> {
    let id = m
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or(("tool_call_id".to_string(), "field required".to_string()))?;
    let text = text_only(m.get("content")).map_err(|e| ("content".to_string(), e))?;
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": text}))
}
