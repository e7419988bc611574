//! Client-defined tools: the tools a request declares (Anthropic `tools`, OpenAI function
//! tools), checked here once for both dialects, and the tool calls and results its messages carry.
//!
//! A tool set is part of the pool key on Claude Code (a live CLI cannot forget a tool it has
//! advertised), so it is kept in a canonical text form, sorted by name: the same tools in another
//! order share a pool. The CLI serves them as an SDK MCP server the server answers itself
//! (`process::driver::claude_mcp`). Codex takes them per conversation, as its thread's dynamic
//! tools (`process::driver::codex_tools`). Nothing runs on the server's host.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ChatMessage, Role};

/// Most tools one request may declare.
pub const MAX_TOOLS: usize = 128;

/// One tool the client declared: the model may call it, the client runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientTool {
    /// `^[a-zA-Z0-9_-]{1,64}$`: the name the model calls it by, exactly.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The JSON Schema of the tool's input (an object schema).
    pub input_schema: Value,
}

/// What the client lets the model do with its tools. Only what the CLI can honour exists here:
/// it has no way to force a call (`any`, a named tool, OpenAI's `required`), so those are refused
/// by the dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides (the default).
    #[default]
    Auto,
    /// The model sees no tools: the request runs without them.
    None,
}

/// Checks a declared tool; `at` names it in the error (`tools.0`, `tools[0].function`).
pub fn check(tool: &ClientTool, at: &str) -> Result<(), String> {
    let name_ok = (1..=64).contains(&tool.name.len())
        && tool
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(format!(
            "{at}.name: {:?} must match ^[a-zA-Z0-9_-]{{1,64}}$",
            tool.name
        ));
    }
    match &tool.input_schema {
        Value::Object(schema) => match schema.get("type") {
            None => Ok(()),
            Some(Value::String(t)) if t == "object" => Ok(()),
            Some(_) => Err(format!(
                "{at}: the input schema must describe an object (\"type\": \"object\")"
            )),
        },
        _ => Err(format!("{at}: the input schema must be a JSON object")),
    }
}

/// Checks a whole tool list: each tool, no name twice, not too many.
pub fn check_all(tools: &[ClientTool], at: impl Fn(usize) -> String) -> Result<(), String> {
    if tools.len() > MAX_TOOLS {
        return Err(format!("tools: at most {MAX_TOOLS} tools are supported"));
    }
    let mut seen = HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        check(tool, &at(i))?;
        if !seen.insert(tool.name.as_str()) {
            return Err(format!(
                "{}.name: the tool name {:?} is declared twice",
                at(i),
                tool.name
            ));
        }
    }
    Ok(())
}

/// The tools as canonical JSON text (sorted by name, object keys sorted): equal sets, equal text.
/// `None` for no tools, so a request without tools keeps its tool-less pool.
pub fn canonical(tools: &[ClientTool]) -> Option<String> {
    if tools.is_empty() {
        return None;
    }
    let mut sorted: Vec<&ClientTool> = tools.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    // serde_json's map is a BTreeMap here (no `preserve_order`): keys serialize sorted.
    serde_json::to_value(sorted).ok().map(|v| v.to_string())
}

/// The tools of a canonical text (see [`canonical`]); empty for none.
pub fn from_canonical(text: Option<&str>) -> Vec<ClientTool> {
    // Made by `canonical` from `ClientTool`s: it parses back.
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// The MCP `tools/list` entry of a tool. Every tool is marked read-only: the CLI then sends the
/// calls of one answer all at once (parallel tool calls) instead of one after another.
pub fn mcp_entry(tool: &ClientTool) -> Value {
    json!({
        "name": tool.name,
        "description": tool.description,
        "inputSchema": tool.input_schema,
        "annotations": {"readOnlyHint": true},
    })
}

/// The `tool_use` ids of an assistant message's content.
fn tool_use_ids(content: &Value) -> HashSet<&str> {
    blocks_of(content, "tool_use")
        .filter_map(|b| b.get("id").and_then(Value::as_str))
        .collect()
}

fn blocks_of<'a>(content: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    content
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |b| b.get("type").and_then(Value::as_str) == Some(kind))
}

/// Checks the shape of a message's tool block (other blocks pass): a `tool_use` (assistant
/// messages only) has an id, a name and an object input; a `tool_result` (user messages only)
/// has string or block content and a boolean `is_error`.
pub fn check_block(role: Role, block: &Value) -> Result<(), String> {
    let str_field = |k: &str| block.get(k).and_then(Value::as_str).is_some();
    match (block.get("type").and_then(Value::as_str), role) {
        (Some("tool_use"), Role::Assistant) => {
            if !(str_field("id") && str_field("name")) {
                return Err("a tool_use block needs a string id and name".into());
            }
            match block.get("input") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err("a tool_use block needs an object input".into()),
            }
        }
        (Some("tool_result"), Role::User) => {
            match block.get("content") {
                None | Some(Value::String(_) | Value::Array(_)) => {}
                Some(_) => return Err("tool_result content must be a string or blocks".into()),
            }
            match block.get("is_error") {
                None | Some(Value::Null | Value::Bool(_)) => Ok(()),
                Some(_) => Err("tool_result is_error must be a boolean".into()),
            }
        }
        (Some(kind @ ("tool_use" | "tool_result")), _) => Err(format!(
            "a {kind} block does not belong in a message of this role"
        )),
        _ => Ok(()),
    }
}

/// Checks the tool results of a conversation (prior messages, then the prompt): each
/// `tool_result` answers a `tool_use` of the assistant message right before it, as the
/// Messages API requires. The error names the message (`messages.3`).
pub fn check_results(history: &[ChatMessage], prompt: &Value) -> Result<(), String> {
    let prompt = ChatMessage {
        role: Role::User,
        content: prompt.clone(),
    };
    let all: Vec<&ChatMessage> = history.iter().chain(std::iter::once(&prompt)).collect();
    for (i, message) in all.iter().enumerate() {
        if message.role != Role::User {
            continue;
        }
        let asked = match i.checked_sub(1).map(|p| all[p]) {
            Some(prev) if prev.role == Role::Assistant => tool_use_ids(&prev.content),
            _ => HashSet::new(),
        };
        for (j, result) in blocks_of(&message.content, "tool_result").enumerate() {
            match result.get("tool_use_id").and_then(Value::as_str) {
                Some(id) if asked.contains(id) => {}
                Some(id) => {
                    return Err(format!(
                        "messages.{i}: tool_result {j} answers {id:?}, which is not a tool_use \
                         of the previous assistant message"
                    ))
                }
                None => return Err(format!("messages.{i}: tool_result {j} needs a tool_use_id")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, schema: Value) -> ClientTool {
        ClientTool {
            name: name.into(),
            description: format!("{name} it"),
            input_schema: schema,
        }
    }

    #[test]
    fn names_schemas_and_duplicates_are_checked() {
        let ok = tool("get_weather-2", json!({"type": "object"}));
        assert!(check(&ok, "tools.0").is_ok());
        for bad in ["", "has space", "dot.name", &"x".repeat(65)] {
            assert!(check(&tool(bad, json!({})), "t").is_err(), "{bad:?}");
        }
        assert!(check(&tool("a", json!({"type": "string"})), "t").is_err());
        assert!(check(&tool("a", json!([])), "t").is_err());
        let twice = [ok.clone(), ok];
        let err = check_all(&twice, |i| format!("tools.{i}")).unwrap_err();
        assert!(err.contains("tools.1.name"), "{err}");
    }

    #[test]
    fn the_canonical_form_ignores_order_and_parses_back() {
        let a = tool("a", json!({"type": "object", "properties": {}}));
        let b = tool("b", json!({"type": "object"}));
        let ab = canonical(&[a.clone(), b.clone()]);
        assert_eq!(ab, canonical(&[b.clone(), a.clone()]));
        assert_eq!(from_canonical(ab.as_deref()), [a, b]);
        assert_eq!(canonical(&[]), None);
        assert!(from_canonical(None).is_empty());
    }

    #[test]
    fn tool_results_must_answer_the_previous_assistant_message() {
        let asked = ChatMessage {
            role: Role::Assistant,
            content: json!([{"type": "text", "text": "x"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]),
        };
        let user = |id: &str| json!([{"type": "tool_result", "tool_use_id": id, "content": "r"}]);
        assert!(check_results(std::slice::from_ref(&asked), &user("t1")).is_ok());
        assert!(check_results(&[asked], &user("t2"))
            .unwrap_err()
            .contains("\"t2\""));
        assert!(check_results(&[], &user("t1")).is_err());
        assert!(check_results(&[], &json!("plain")).is_ok());
    }
}
