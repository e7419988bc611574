//! Claude Code's command line and environment.

use std::path::{Path, PathBuf};

use super::SpawnSpec;
use crate::config::{BareMode, ClaudeSettings};

impl SpawnSpec {
    /// The chat profile: no tools, no settings/CLAUDE.md/MCP of the user running the server, no
    /// transcripts, no permission prompts; system prompt bound later by `initialize`.
    /// Client tools, when a pool has them, are bound later too (an SDK MCP server named
    /// `client`, registered with `mcp_set_servers`): every process is started allowed to call
    /// that server's tools, under their own names, so a spare can join any pool. A process that
    /// registers no server has nothing the rule or the names apply to.
    pub fn claude_chat(settings: &ClaudeSettings, state_dir: &Path) -> Self {
        let bare = match settings.bare {
            BareMode::On => true,
            BareMode::Off => false,
            BareMode::Auto => ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]
                .iter()
                .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty())),
        };
        let mut args: Vec<String> = [
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
            "--setting-sources",
            "",
            "--strict-mcp-config",
            "--tools",
            "",
            "--no-session-persistence",
            "--permission-prompts",
            "none",
            // Without it the CLI denies every call of an SDK server's tool ("no approval surface").
            "--allowedTools",
            "mcp__client",
            "--system-prompt",
            "",
            "--model",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(settings.default_model.clone());
        if bare {
            args.push("--bare".into());
        }
        args.extend(settings.extra_args.iter().cloned());

        let mut env = vec![
            // Without these the CLI retries a failing upstream for ~3 minutes behind our back.
            (
                "CLAUDE_CODE_MAX_RETRIES".into(),
                settings.max_retries.to_string(),
            ),
            ("API_TIMEOUT_MS".into(), settings.api_timeout_ms.to_string()),
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
                "1".into(),
            ),
            ("DISABLE_AUTOUPDATER".into(), "1".into()),
            // Belt and braces with `client_composed`: forwarded text never reads server files.
            ("CLAUDE_CODE_DISABLE_FILE_MENTIONS".into(), "1".into()),
            ("CLAUDE_CODE_ATTRIBUTION_HEADER".into(), "0".into()),
            // Each structured-output retry is a full upstream call: bound their number.
            ("MAX_STRUCTURED_OUTPUT_RETRIES".into(), "3".into()),
            // Client tools keep their names upstream (not `mcp__client__<name>`).
            ("CLAUDE_AGENT_SDK_MCP_NO_PREFIX".into(), "1".into()),
        ];
        env.extend(settings.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut dirs = Vec::new();
        if settings.isolate_home {
            let home = state_dir.join("claude-home");
            let config = home.join(".claude");
            env.push(("HOME".into(), home.display().to_string()));
            env.push(("CLAUDE_CONFIG_DIR".into(), config.display().to_string()));
            dirs.push(config);
        }
        Self {
            program: PathBuf::from(&settings.command),
            args,
            env,
            // Set when the server itself runs inside Claude Code; the child must not think so.
            env_remove: vec!["CLAUDECODE".into(), "CLAUDE_CODE_ENTRYPOINT".into()],
            cwd: state_dir.join("work"),
            // Shared by every Claude process: wiping it would pull it from under the others.
            fresh_dir: None,
            dirs,
            files: Vec::new(),
        }
    }
}
