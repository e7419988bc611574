//! The native REST API's wire types (`/api/v1`): typed requests and results, also the source of
//! the OpenAPI document's schemas.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{StopReason, TurnOutcome, Usage};

/// One prompt to one backend.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptRequest {
    /// `claude`, `codex` or `gemini`; decided from `model` when absent.
    pub backend: Option<String>,
    /// A model name as in the routing table (default: the backend's default model).
    pub model: Option<String>,
    #[schema(pattern = "\\S")]
    pub prompt: String,
    pub system_prompt: Option<String>,
    /// Working directory, honoured only inside `server.allowed_workdir_prefixes`.
    pub workdir: Option<String>,
    /// Agent steps allowed (agentic profile only; a chat turn is always one step).
    #[schema(minimum = 1)]
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub output_format: OutputFormat,
    #[serde(default)]
    pub profile: ProfileName,
    /// Continue this session: its earlier turns are replayed before `prompt`, and its backend,
    /// model, system prompt and workdir fill in what the request leaves out.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub session_id: Option<String>,
    /// Record no session (the answer's `session_id` is "").
    #[serde(default)]
    pub ephemeral: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
pub enum OutputFormat {
    #[default]
    #[serde(rename = "json")]
    Json,
    /// NDJSON: `text_delta` lines, then one `result` (or `error`) line.
    #[serde(rename = "stream-json")]
    StreamJson,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileName {
    /// No tools: nothing on the host is read or run.
    #[default]
    Chat,
    /// The CLI's tools in `workdir`; refused unless `profiles.agentic.enabled`.
    Agentic,
}

/// A prompt's result. `session_id`, `backend`, `exit_code`, `duration_ms`, `output`, `error` and
/// `token_usage` are Go clinvoker's fields; the others are clinvoker's own.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PromptResult {
    /// The session this prompt was recorded in; "" when ephemeral.
    pub session_id: String,
    /// 0 when answered, 1 when the turn failed (batch results only: a single prompt's failure
    /// is an HTTP error).
    pub exit_code: i32,
    /// The failure's message; "" when answered.
    pub error: String,
    /// The failure's kind (`invalid_request_error`, `overloaded_error`, ...), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    pub backend: String,
    pub model: String,
    pub output: String,
    pub stop_reason: Option<String>,
    pub duration_ms: u64,
    pub token_usage: TokenUsage,
    pub cost_usd: f64,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Go clinvoker's name for the prompt tokens read from cache (= `cache_read_input_tokens`).
    pub cached_tokens: u64,
    pub total_tokens: u64,
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: u.cache_creation_input_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
            cached_tokens: u.cache_read_input_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
        }
    }
}

/// The native API names stop reasons as the Messages API does.
fn stop_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::ToolUse => "tool_use",
        StopReason::StopSequence => "stop_sequence",
        StopReason::Refusal => "refusal",
    }
}

impl PromptResult {
    pub fn new(
        backend: &str,
        model: &str,
        outcome: &TurnOutcome,
        duration_ms: u64,
        request_id: &str,
    ) -> Self {
        let output = outcome.text();
        Self {
            session_id: String::new(),
            exit_code: 0,
            error: String::new(),
            error_type: None,
            backend: backend.to_string(),
            model: model.to_string(),
            output,
            stop_reason: Some(stop_reason_name(outcome.stop_reason).to_string()),
            duration_ms,
            token_usage: TokenUsage::from(&outcome.usage),
            cost_usd: outcome.cost_usd,
            request_id: request_id.to_string(),
        }
    }

    /// The result of a batch task whose turn failed.
    pub fn failed(
        backend: &str,
        model: &str,
        error: ErrorDetail,
        duration_ms: u64,
        request_id: &str,
    ) -> Self {
        Self {
            session_id: String::new(),
            exit_code: 1,
            error: error.message,
            error_type: Some(error.kind),
            backend: backend.to_string(),
            model: model.to_string(),
            output: String::new(),
            stop_reason: None,
            duration_ms,
            token_usage: TokenUsage::from(&Usage::default()),
            cost_usd: 0.0,
            request_id: request_id.to_string(),
        }
    }
}

/// An error inside a batch result (the batch itself succeeded).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

/// Several prompts at once, through the pools (their limits apply).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParallelRequest {
    #[schema(min_items = 1)]
    pub tasks: Vec<PromptRequest>,
    /// Most tasks in flight at once (default: all).
    #[schema(minimum = 1)]
    pub max_parallel: Option<usize>,
    /// After a failure, tasks not started yet are skipped.
    #[serde(default)]
    pub fail_fast: bool,
}

/// One task's prompt result (flat, as Go clinvoker's), with its place in the batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskResult {
    pub index: usize,
    pub ok: bool,
    #[serde(flatten)]
    pub result: PromptResult,
}

/// `total_tasks`, `completed`, `failed`, `total_duration_ms` and `results` are Go clinvoker's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ParallelResponse {
    pub total_tasks: usize,
    /// Tasks answered.
    pub completed: usize,
    pub failed: usize,
    pub total_duration_ms: u64,
    pub results: Vec<TaskResult>,
    /// The same as `completed` (this API's earlier name).
    pub succeeded: usize,
}

/// Prompts in sequence; `{{previous}}` in a prompt is replaced by the previous step's output.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainRequest {
    #[schema(min_items = 1)]
    pub steps: Vec<ChainStep>,
    /// Stop at the first failed step (default true).
    pub stop_on_failure: Option<bool>,
    /// Record each step as a session of its own (default: steps are ephemeral, as in Go
    /// clinvoker, and their `session_id` is "").
    #[serde(default)]
    pub persist_sessions: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainStep {
    pub name: Option<String>,
    pub backend: Option<String>,
    pub model: Option<String>,
    #[schema(pattern = "\\S")]
    pub prompt: String,
    pub system_prompt: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepResult {
    pub index: usize,
    pub name: Option<String>,
    pub ok: bool,
    pub result: Option<PromptResult>,
    pub error: Option<ErrorDetail>,
}

/// One step's result in Go clinvoker's shape (`step`, `name`, `backend`, `exit_code`, `error`,
/// `session_id`, `duration_ms`, `output`), with the rest of the prompt result beside it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainStepResult {
    /// 1 for the first step.
    pub step: usize,
    /// The step's name; "" when it has none.
    pub name: String,
    pub ok: bool,
    #[serde(flatten)]
    pub result: PromptResult,
}

/// `total_steps`, `completed_steps`, `failed_step`, `total_duration_ms` and `results` are Go
/// clinvoker's; `steps` and `completed` are this API's earlier shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChainResponse {
    pub total_steps: usize,
    /// Steps answered.
    pub completed_steps: usize,
    /// The step (1-based) that failed; 0 when none did.
    pub failed_step: usize,
    pub total_duration_ms: u64,
    pub results: Vec<ChainStepResult>,
    pub steps: Vec<StepResult>,
    /// Whether every step ran and succeeded.
    pub completed: bool,
}

/// One prompt to several backends.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    #[schema(pattern = "\\S")]
    pub prompt: String,
    #[schema(min_items = 1)]
    pub backends: Vec<String>,
    pub system_prompt: Option<String>,
    /// One backend after the other instead of all at once.
    #[serde(default)]
    pub sequential: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackendResult {
    pub backend: String,
    pub ok: bool,
    pub result: Option<PromptResult>,
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompareResponse {
    pub results: Vec<BackendResult>,
    pub total_duration_ms: u64,
}

/// The workdir rule: an existing directory, inside an allowed prefix, outside every blocked one
/// (after resolving symlinks and `..`). The error names the rule that refused it.
pub fn check_workdir(
    raw: &str,
    allowed: &[PathBuf],
    blocked: &[PathBuf],
) -> Result<PathBuf, String> {
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(format!("workdir {raw:?} must be an absolute path"));
    }
    let real =
        std::fs::canonicalize(path).map_err(|e| format!("workdir {raw:?} cannot be used: {e}"))?;
    if !real.is_dir() {
        return Err(format!("workdir {raw:?} is not a directory"));
    }
    if allowed.is_empty() {
        return Err("workdir is refused: server.allowed_workdir_prefixes is empty".into());
    }
    let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    if !allowed.iter().any(|p| real.starts_with(canon(p))) {
        return Err(format!(
            "workdir {} is outside server.allowed_workdir_prefixes",
            real.display()
        ));
    }
    if let Some(b) = blocked.iter().find(|b| real.starts_with(canon(b))) {
        return Err(format!(
            "workdir {} is inside {} (server.blocked_workdir_prefixes)",
            real.display(),
            b.display()
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdir_rules_name_the_rule_that_refused() {
        let root = tempfile::tempdir().expect("tmp");
        let allowed = root.path().join("work");
        let blocked = allowed.join("secret");
        std::fs::create_dir_all(&blocked).expect("mkdir");
        let (a, b) = (vec![allowed.clone()], vec![blocked.clone()]);
        assert!(check_workdir(allowed.to_str().expect("utf8"), &a, &b).is_ok());
        let err = check_workdir(blocked.to_str().expect("utf8"), &a, &b).expect_err("blocked");
        assert!(err.contains("blocked_workdir_prefixes"), "{err}");
        let escape = format!("{}/..", allowed.display());
        let err = check_workdir(&escape, &a, &b).expect_err("outside");
        assert!(err.contains("allowed_workdir_prefixes"), "{err}");
        assert!(check_workdir("relative", &a, &b)
            .expect_err("relative")
            .contains("absolute"));
        assert!(check_workdir("/tmp", &[], &b)
            .expect_err("none allowed")
            .contains("is empty"));
    }
}
