//! Which model the CLI runs for a model name a client sends.

use std::collections::BTreeMap;

use crate::config::ClaudeSettings;

/// Names Claude Code resolves itself.
const CLI_ALIASES: [&str; 6] = ["default", "opus", "sonnet", "haiku", "fable", "opusplan"];

#[derive(Debug, Clone)]
pub struct ModelRouter {
    /// Client name → CLI model, from `[backends.claude.models]`.
    table: BTreeMap<String, String>,
    default_model: String,
}

impl ModelRouter {
    pub fn new(claude: &ClaudeSettings) -> Self {
        Self {
            table: claude.models.clone(),
            default_model: claude.default_model.clone(),
        }
    }

    /// The configured mapping first; then Claude model ids and CLI aliases as they are; anything
    /// else runs on the default model (the CLI would send an unknown name upstream verbatim,
    /// which a real API rejects).
    pub fn claude_model(&self, requested: &str) -> String {
        if let Some(model) = self.table.get(requested) {
            return model.clone();
        }
        if requested.starts_with("claude-") || CLI_ALIASES.contains(&requested) {
            return requested.to_string();
        }
        log::debug!(
            "model {requested:?} is not mapped; using {}",
            self.default_model
        );
        self.default_model.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn seed_names_map_and_real_ids_pass_through() {
        let r = ModelRouter::new(&Settings::load(None).expect("defaults").backends.claude);
        assert_eq!(r.claude_model("claude"), "sonnet");
        assert_eq!(
            r.claude_model("claude-sonnet-4"),
            "claude-sonnet-4-20250514"
        );
        assert_eq!(
            r.claude_model("claude-opus-4-1-20250805"),
            "claude-opus-4-1-20250805"
        );
        assert_eq!(r.claude_model("haiku"), "haiku");
        assert_eq!(r.claude_model("gpt-4o"), "sonnet");
    }
}
