//! The Codex CLI's command line, environment and private home: `codex app-server` with a
//! generated `config.toml` that points it at the configured upstream and takes every tool away.

use std::path::{Path, PathBuf};

use super::SpawnSpec;
use crate::config::CodexSettings;

/// The variable the generated provider reads its key from; set from the server's own
/// `OPENAI_API_KEY` (or `CODEX_API_KEY`), so the key never lands in a file.
const KEY_VAR: &str = "CLINVOKER_CODEX_API_KEY";

impl SpawnSpec {
    /// Process `id` of the Codex pool: a private `CODEX_HOME` under `state_dir` (wiped at each
    /// start: its log database grows with every turn), an empty scratch working directory.
    /// `program` is the CLI as resolved at startup (see [`native_codex`]).
    pub fn codex(settings: &CodexSettings, program: &Path, state_dir: &Path, id: u64) -> Self {
        let home = state_dir.join("codex").join(format!("home-{id}"));
        // The backend's own env first, then the server's.
        let key = ["OPENAI_API_KEY", "CODEX_API_KEY"]
            .iter()
            .find_map(|k| {
                let own = settings.env.get(*k).cloned();
                own.or_else(|| std::env::var(k).ok())
                    .filter(|v| !v.is_empty())
            })
            .unwrap_or_default();
        let mut env = vec![
            ("HOME".to_string(), home.display().to_string()),
            ("CODEX_HOME".to_string(), home.display().to_string()),
            (KEY_VAR.to_string(), key),
        ];
        env.extend(settings.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self {
            program: program.to_path_buf(),
            args: vec!["app-server".into()],
            env,
            env_remove: Vec::new(),
            cwd: state_dir.join("codex").join("work"),
            files: vec![(home.join("config.toml"), config_toml(settings))],
            dirs: Vec::new(),
            fresh_dir: Some(home),
        }
    }
}

/// The native binary behind the npm package's `codex` wrapper, when `command` is that wrapper.
/// On Node.js without `process.execve` the wrapper runs the binary as its child, so a killed
/// wrapper would leave the binary behind (until its stdin closes); the binary itself is
/// signalled and reaped like any child.
pub fn native_codex(command: &Path) -> Option<PathBuf> {
    let script = std::fs::canonicalize(command).ok()?;
    let bin = script.parent()?;
    let package = bin.parent()?;
    let is_wrapper = script.file_name()? == "codex.js"
        && bin.file_name()? == "bin"
        && package.file_name()? == "codex"
        && package.parent()?.file_name()? == "@openai";
    if !is_wrapper {
        return None;
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let vendor = package
        .parent()?
        .join(format!("codex-{}-{arch}", std::env::consts::OS))
        .join("vendor");
    std::fs::read_dir(vendor)
        .ok()?
        .filter_map(Result::ok)
        .map(|triple| triple.path().join("bin").join("codex"))
        .find(|binary| binary.is_file())
}

/// A TOML basic string (JSON's string escapes are TOML's).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The provider on `base_url`, bounded retries and stream timeout, no endless reconnects, and
/// every tool feature off: with approvals `never` and a read-only sandbox per thread, no prompt
/// can make the CLI run a command or read a file.
fn config_toml(s: &CodexSettings) -> String {
    // Top-level keys must come before the first table, or they land in it.
    format!(
        r#"model = {model}
model_provider = "clinvoker"
web_search = "disabled"

[model_providers.clinvoker]
name = "clinvoker"
base_url = {base_url}
wire_api = "responses"
env_key = "{KEY_VAR}"
request_max_retries = {retries}
stream_max_retries = 0
stream_idle_timeout_ms = {idle}

[features]
unbounded_connection_retries = false
shell_tool = false
unified_exec = false
view_image = false
goals = false
apps = false
plugins = false
image_generation = false

[agents]
enabled = false
"#,
        model = quoted(&s.default_model),
        base_url = quoted(&s.base_url),
        retries = s.request_max_retries,
        idle = s.stream_idle_timeout_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn the_npm_wrapper_leads_to_its_native_binary() {
        let root = tempfile::tempdir().expect("temp");
        let modules = root.path().join("node_modules");
        let wrapper = modules.join("@openai/codex/bin/codex.js");
        let arch = if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            "x64"
        };
        let native = modules.join(format!(
            "@openai/codex-{}-{arch}/vendor/some-triple/bin/codex",
            std::env::consts::OS
        ));
        for file in [&wrapper, &native] {
            std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
            std::fs::write(file, "").expect("write");
        }
        let link = modules.join(".bin-codex");
        std::os::unix::fs::symlink(&wrapper, &link).expect("symlink");
        assert_eq!(native_codex(&link), Some(native.clone()));
        assert_eq!(
            native_codex(&native),
            None,
            "a native binary is used as it is"
        );
    }

    #[test]
    fn a_private_home_with_the_provider_and_no_tools() {
        let mut settings = Settings::load(None).expect("defaults").backends.codex;
        settings.base_url = "http://127.0.0.1:9/v1".into();
        let spec = SpawnSpec::codex(
            &settings,
            Path::new("/usr/bin/codex"),
            Path::new("/tmp/s"),
            3,
        );
        assert_eq!(spec.args, ["app-server"]);
        let home = Path::new("/tmp/s/codex/home-3");
        assert_eq!(spec.fresh_dir.as_deref(), Some(home));
        let env = |k: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(env("CODEX_HOME").as_deref(), Some("/tmp/s/codex/home-3"));
        assert!(env(KEY_VAR).is_some());
        let (path, toml) = &spec.files[0];
        assert_eq!(path, &home.join("config.toml"));
        let first_table = toml.find('[').expect("tables");
        assert!(toml[..first_table].contains("model_provider = \"clinvoker\""));
        for line in [
            "base_url = \"http://127.0.0.1:9/v1\"",
            "wire_api = \"responses\"",
            "unbounded_connection_retries = false",
            "shell_tool = false",
            "unified_exec = false",
            "stream_max_retries = 0",
        ] {
            assert!(toml.contains(line), "{line} in\n{toml}");
        }
    }
}
