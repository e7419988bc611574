//! Typed settings: the compiled-in `config/default.toml`, then an optional file, then
//! `CLINVOKER__SECTION__KEY` environment overrides, then [`Settings::validate`], which refuses to
//! start with a message naming the bad key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::{Deserialize, Serialize};

mod limits;
pub use limits::{KeyLimits, LimitSettings, MAX_WEIGHT};

/// The commented defaults, compiled in so the binary runs without any file.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A setting that failed to load or validate; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub pool: PoolSettings,
    pub routing: RoutingSettings,
    pub backends: BackendSettings,
    pub profiles: ProfileSettings,
    pub limits: LimitSettings,
    pub sessions: SessionSettings,
}

/// The native API's persisted sessions (`[sessions]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// Off: every prompt is ephemeral and the session routes answer 404.
    pub enabled: bool,
    /// Where transcripts live; empty = `<server.state_dir>/sessions`.
    pub dir: PathBuf,
    /// Sessions unused for longer are deleted; 0 = no age limit.
    pub max_age_days: u64,
    /// Most sessions kept (the least recently used go first); 0 = no limit.
    pub max_count: usize,
}

/// The CLIs clinvoker knows, as settings and routes name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Claude,
    Codex,
    Gemini,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Claude, Backend::Codex, Backend::Gemini];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Claude => "claude",
            Backend::Codex => "codex",
            Backend::Gemini => "gemini",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSettings {
    pub default_backend: Backend,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    pub agentic: AgenticSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgenticSettings {
    pub enabled: bool,
    pub tools: String,
    pub permission_mode: String,
}

/// The OpenAI Codex CLI, driven as `codex app-server` (JSON-RPC over stdio).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CodexSettings {
    pub command: String,
    /// The Responses API base URL (OpenAI's, or a compatible gateway's).
    pub base_url: String,
    /// Model for a request whose name the table does not map and is not a Codex model name.
    pub default_model: String,
    /// Concurrent conversations (threads) one process hosts.
    pub conversations_per_process: usize,
    /// Processes kept warm in the default pool when the CLI is installed.
    pub min_idle: usize,
    /// The base prompt of a conversation without a system prompt (replaces Codex's own).
    pub base_instructions: String,
    pub request_max_retries: u32,
    pub stream_idle_timeout_ms: u64,
    /// Extra environment for the children only (on top of the server's own).
    pub env: BTreeMap<String, String>,
    pub models: BTreeMap<String, String>,
}

/// The Google Gemini CLI, driven as `gemini --acp` (Agent Client Protocol).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GeminiSettings {
    pub command: String,
    /// `GOOGLE_GEMINI_BASE_URL` for the children; empty = Google's.
    pub base_url: String,
    /// Model for a request whose name the table does not map (never "auto").
    pub default_model: String,
    /// Concurrent conversations (sessions) one process hosts.
    pub conversations_per_process: usize,
    /// Processes kept warm in the default pool when the CLI is installed.
    pub min_idle: usize,
    /// Sessions a process opens before it is recycled (they are never freed).
    pub max_sessions_per_process: u32,
    /// Extra environment for the children only (on top of the server's own).
    pub env: BTreeMap<String, String>,
    pub models: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Sent as `x-clinvoker-instance` on every response; empty = `host:port` as bound.
    pub instance_name: String,
    pub request_timeout_secs: u64,
    pub first_byte_timeout_secs: u64,
    pub stream_idle_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub max_body_bytes: usize,
    /// Keys from the file; `CLINVOKER_API_KEYS` is merged in by [`Settings::load`].
    pub api_keys: Vec<String>,
    /// Keys for `/admin` and `/metrics`; `CLINVOKER_ADMIN_KEYS` is merged in by [`Settings::load`].
    pub admin_keys: Vec<String>,
    pub state_dir: PathBuf,
    pub allowed_workdir_prefixes: Vec<PathBuf>,
    pub blocked_workdir_prefixes: Vec<PathBuf>,
    /// Origins whose browser pages may call the APIs (CORS); empty = no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    pub max_processes: usize,
    pub min_idle: usize,
    pub spare_processes: usize,
    pub max_total_processes: usize,
    pub max_queue: usize,
    pub queue_timeout_secs: u64,
    pub reuse_wait_ms: u64,
    /// Keep a conversation in its process after a clean turn, so a follow-up that resends it
    /// continues there without a replay.
    pub park_conversations: bool,
    /// How long a turn parked on client tool calls waits for the client's results.
    pub tool_result_timeout_secs: u64,
    pub max_turns_per_process: u32,
    pub max_process_age_secs: u64,
    pub idle_timeout_secs: u64,
    pub ready_timeout_secs: u64,
    pub interrupt_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSettings {
    pub claude: ClaudeSettings,
    pub codex: CodexSettings,
    pub gemini: GeminiSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BareMode {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaudeSettings {
    pub command: String,
    pub extra_args: Vec<String>,
    pub default_model: String,
    pub max_retries: u32,
    pub api_timeout_ms: u64,
    pub bare: BareMode,
    pub isolate_home: bool,
    /// Extra environment for the children only (on top of the server's own).
    pub env: BTreeMap<String, String>,
    /// Client model name -> model the CLI runs.
    pub models: BTreeMap<String, String>,
}

impl Settings {
    /// Defaults, then `file`, then the environment (`CLINVOKER__…`, `CLINVOKER_API_KEYS`), validated.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        builder = builder.add_source(
            Environment::with_prefix("CLINVOKER")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("server.api_keys")
                .with_list_parse_key("server.admin_keys")
                .with_list_parse_key("backends.claude.extra_args")
                .with_list_parse_key("server.allowed_workdir_prefixes")
                .with_list_parse_key("server.blocked_workdir_prefixes")
                .with_list_parse_key("server.cors_allowed_origins")
                .try_parsing(true),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        let from_env = |var: &str| -> Vec<String> {
            std::env::var(var)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect()
        };
        settings
            .server
            .api_keys
            .extend(from_env("CLINVOKER_API_KEYS"));
        settings
            .server
            .admin_keys
            .extend(from_env("CLINVOKER_ADMIN_KEYS"));
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: ranges and relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        let (s, p, c) = (&self.server, &self.pool, &self.backends.claude);
        if s.host.trim().is_empty() {
            return invalid("server.host", "must not be empty");
        }
        if s.request_timeout_secs == 0 {
            return invalid("server.request_timeout_secs", "must be at least 1");
        }
        if s.first_byte_timeout_secs == 0 || s.stream_idle_timeout_secs == 0 {
            return invalid(
                "server.first_byte_timeout_secs",
                "it and server.stream_idle_timeout_secs must be at least 1",
            );
        }
        if s.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024");
        }
        if p.max_processes == 0 {
            return invalid("pool.max_processes", "must be at least 1");
        }
        if p.min_idle > p.max_processes {
            return invalid("pool.min_idle", "must not exceed pool.max_processes");
        }
        if p.max_total_processes < p.max_processes {
            return invalid(
                "pool.max_total_processes",
                "must be at least pool.max_processes",
            );
        }
        if p.min_idle + p.spare_processes > p.max_total_processes {
            return invalid(
                "pool.spare_processes",
                "pool.min_idle + pool.spare_processes must not exceed pool.max_total_processes",
            );
        }
        if p.queue_timeout_secs == 0 {
            return invalid("pool.queue_timeout_secs", "must be at least 1");
        }
        if p.max_turns_per_process == 0 {
            return invalid("pool.max_turns_per_process", "must be at least 1");
        }
        let (codex, gemini) = (&self.backends.codex, &self.backends.gemini);
        if codex.conversations_per_process == 0 {
            return invalid(
                "backends.codex.conversations_per_process",
                "must be at least 1",
            );
        }
        if gemini.conversations_per_process == 0 {
            return invalid(
                "backends.gemini.conversations_per_process",
                "must be at least 1",
            );
        }
        if gemini.max_sessions_per_process == 0 {
            return invalid(
                "backends.gemini.max_sessions_per_process",
                "must be at least 1",
            );
        }
        if gemini.default_model == "auto" {
            return invalid(
                "backends.gemini.default_model",
                "must name a model: \"auto\" doubles the upstream calls",
            );
        }
        if codex.min_idle > p.max_processes || gemini.min_idle > p.max_processes {
            return invalid("backends.*.min_idle", "must not exceed pool.max_processes");
        }
        if p.ready_timeout_secs == 0 {
            return invalid("pool.ready_timeout_secs", "must be at least 1");
        }
        if c.command.trim().is_empty() {
            return invalid("backends.claude.command", "must not be empty");
        }
        if c.default_model.trim().is_empty() {
            return invalid("backends.claude.default_model", "must not be empty");
        }
        if c.models.values().any(|m| m.trim().is_empty()) {
            return invalid("backends.claude.models", "every model must map to a name");
        }
        if let Some(p) = s.allowed_workdir_prefixes.iter().find(|p| !p.is_absolute()) {
            return invalid(
                "server.allowed_workdir_prefixes",
                &format!("{} is not an absolute path", p.display()),
            );
        }
        let modes = [
            "default",
            "acceptEdits",
            "plan",
            "dontAsk",
            "auto",
            "bypassPermissions",
        ];
        if !modes.contains(&self.profiles.agentic.permission_mode.as_str()) {
            return invalid(
                "profiles.agentic.permission_mode",
                &format!("must be one of {modes:?}"),
            );
        }
        let dir = &self.sessions.dir;
        if !dir.as_os_str().is_empty() && !dir.is_absolute() {
            return invalid(
                "sessions.dir",
                &format!("{} is not an absolute path", dir.display()),
            );
        }
        limits::validate_origins(&s.cors_allowed_origins)?;
        self.limits.validate(self.model_api_keys())
    }

    /// The keys that open the model APIs: the user keys, or the admins' when there are none
    /// (see `api::access`).
    pub fn model_api_keys(&self) -> &[String] {
        match self.server.api_keys.is_empty() {
            true => &self.server.admin_keys,
            false => &self.server.api_keys,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::load(None).expect("compiled-in defaults are valid");
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.backends.claude.command, "claude");
        assert_eq!(s.backends.claude.models["claude"], "sonnet");
        assert_eq!(
            s.backends.claude.models["claude-sonnet-4"],
            "claude-sonnet-4-20250514"
        );
    }

    #[test]
    fn file_overrides_defaults_and_bad_values_name_the_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[pool]\nmax_processes = 2\nmin_idle = 2\n").expect("write");
        let s = Settings::load(Some(&path)).expect("valid override");
        assert_eq!(s.pool.max_processes, 2);
        assert_eq!(s.pool.max_queue, 32, "untouched keys keep their default");

        std::fs::write(&path, "[pool]\nmax_processes = 1\nmin_idle = 3\n").expect("write");
        let err = Settings::load(Some(&path)).expect_err("min_idle > max_processes");
        assert!(err.to_string().contains("pool.min_idle"), "{err}");

        std::fs::write(&path, "[server]\nport = \"eighty\"\n").expect("write");
        let err = Settings::load(Some(&path)).expect_err("port is not a number");
        assert!(err.to_string().contains("port"), "{err}");

        std::fs::write(&path, "[pool]\nmax_procs = 1\n").expect("write");
        let err = Settings::load(Some(&path)).expect_err("unknown key");
        assert!(err.to_string().contains("max_procs"), "{err}");
    }

    #[test]
    fn limits_default_to_none_and_take_per_key_overrides() {
        let s = Settings::load(None).expect("defaults");
        let l = &s.limits;
        assert_eq!(
            (
                l.requests_per_minute,
                l.burst,
                l.max_concurrent,
                l.max_queued,
                l.weight
            ),
            (0, 0, 0, 0, 1),
            "no limits by default"
        );
        assert!(l.keys.is_empty() && s.server.cors_allowed_origins.is_empty());

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        let file = concat!(
            "[server]\napi_keys = [\"k1\", \"k2\"]\n",
            "cors_allowed_origins = [\"https://app.example\", \"http://localhost:5173\"]\n",
            "[limits]\nrequests_per_minute = 60\n",
            "[limits.keys.batch]\nkey = \"k2\"\nweight = 3\nmax_queued = 2\n",
        );
        std::fs::write(&path, file).expect("write");
        let s = Settings::load(Some(&path)).expect("valid limits");
        assert_eq!(s.limits.requests_per_minute, 60);
        let batch = &s.limits.keys["batch"];
        assert_eq!(
            (batch.key.as_str(), batch.weight, batch.max_queued),
            ("k2", Some(3), Some(2))
        );
        assert_eq!(
            batch.requests_per_minute, None,
            "absent: the [limits] value"
        );
    }

    #[test]
    fn sessions_default_under_the_state_dir_and_a_relative_dir_is_refused() {
        let s = Settings::load(None).expect("defaults");
        assert!(s.sessions.enabled);
        assert_eq!(
            s.sessions.dir,
            PathBuf::new(),
            "empty: <state_dir>/sessions"
        );
        assert_eq!((s.sessions.max_age_days, s.sessions.max_count), (30, 1000));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[sessions]\nmax_count = 5\n").expect("write");
        let s = Settings::load(Some(&path)).expect("valid override");
        assert_eq!((s.sessions.max_count, s.sessions.max_age_days), (5, 30));
        std::fs::write(&path, "[sessions]\ndir = \"relative/dir\"\n").expect("write");
        let err = Settings::load(Some(&path)).expect_err("relative dir");
        assert!(err.to_string().contains("sessions.dir"), "{err}");
    }

    #[test]
    fn bad_limits_and_origins_name_the_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.toml");
        for (file, key) in [
            ("[limits]\nweight = 0\n", "limits.weight"),
            ("[limits]\nburst = 5\n", "limits.burst"),
            (
                "[server]\napi_keys = [\"k1\"]\n[limits.keys.x]\nkey = \"unknown\"\n",
                "limits.keys",
            ),
            (
                "[server]\napi_keys = [\"k1\"]\n[limits.keys.key-a]\nkey = \"k1\"\n",
                "limits.keys",
            ),
            (
                "[server]\ncors_allowed_origins = [\"https://a.example/path\"]\n",
                "server.cors_allowed_origins",
            ),
        ] {
            std::fs::write(&path, file).expect("write");
            let err = Settings::load(Some(&path)).expect_err(file);
            assert!(err.to_string().contains(key), "{file}: {err}");
        }
    }
}
