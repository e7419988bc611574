//! The Messages API's `tools` and `tool_choice`, checked into the client tools the server serves.

use serde_json::Value;

use crate::protocol::tools::{self, ClientTool, ToolChoice};

/// `tools`: client (custom) tools only; the server tools the Messages API runs itself
/// (`web_search_…`, `bash_…`, …) are not available through a CLI.
pub(super) fn parse_tools(value: Option<&Value>) -> Result<Vec<ClientTool>, String> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("tools: must be an array".into()),
    };
    let tools = list
        .iter()
        .enumerate()
        .map(|(i, t)| {
            match t.get("type").and_then(Value::as_str) {
                None | Some("custom") => {}
                Some(other) => {
                    return Err(format!(
                        "tools.{i}.type: {other:?} is a server tool, not available here; only client tools (with input_schema) are"
                    ))
                }
            }
            let name = t.get("name").and_then(Value::as_str);
            let schema = t.get("input_schema");
            match (name, schema) {
                (Some(name), Some(schema)) => Ok(ClientTool {
                    name: name.to_string(),
                    description: t
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    input_schema: schema.clone(),
                }),
                (None, _) => Err(format!("tools.{i}.name: Field required")),
                (_, None) => Err(format!("tools.{i}.input_schema: Field required")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    tools::check_all(&tools, |i| format!("tools.{i}"))?;
    Ok(tools)
}

/// `tool_choice`: `auto` (the default) or `none`. The CLI cannot force a tool call, so `any`
/// and `tool` are refused rather than ignored, and so is `disable_parallel_tool_use`.
pub(super) fn parse_tool_choice(value: Option<&Value>) -> Result<ToolChoice, String> {
    let Some(choice) = value.filter(|v| !v.is_null()) else {
        return Ok(ToolChoice::Auto);
    };
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err("tool_choice.disable_parallel_tool_use: not supported by this server (the model may always call several tools at once)".into());
    }
    match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(ToolChoice::Auto),
        Some("none") => Ok(ToolChoice::None),
        Some(kind @ ("any" | "tool")) => Err(format!(
            "tool_choice.type: {kind:?} is not supported by this server (the CLI cannot force a tool call); use \"auto\" or \"none\""
        )),
        _ => Err("tool_choice.type: must be one of auto, none".into()),
    }
}
