//! The Gemini CLI's command line, environment and private files.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::SpawnSpec;
use crate::config::GeminiSettings;
use crate::process::driver::gemini::GeminiParams;

/// Where one Gemini process keeps its state: `<state_dir>/gemini/<process id>/`, wiped before
/// the process starts. Its driver works with the same paths ([`GeminiPaths::driver_params`]).
#[derive(Debug, Clone)]
pub struct GeminiPaths {
    /// Everything below.
    pub root: PathBuf,
    /// `HOME` and `GEMINI_CLI_HOME`: settings in `.gemini/settings.json`, chats in `.gemini/tmp`.
    pub home: PathBuf,
    /// The file `GEMINI_SYSTEM_MD` names, rewritten by the driver before each session.
    pub system_md: PathBuf,
    /// `TMPDIR`: the CLI leaves an error report there for each failed upstream call.
    pub tmp: PathBuf,
    /// The working directory, empty: its path and listing go upstream with every session.
    pub work: PathBuf,
}

impl GeminiPaths {
    pub fn new(state_dir: &Path, process_id: u64) -> Self {
        let root = state_dir.join("gemini").join(process_id.to_string());
        let home = root.join("home");
        Self {
            system_md: home.join("system.md"),
            home,
            tmp: root.join("tmp"),
            work: root.join("work"),
            root,
        }
    }

    /// What the driver of the process started from `spec` needs (`spec` after `for_pool`,
    /// whose working directory may differ).
    pub fn driver_params(&self, settings: &GeminiSettings, spec: &SpawnSpec) -> GeminiParams {
        GeminiParams {
            home: self.home.clone(),
            cwd: spec.cwd.clone(),
            system_md: self.system_md.clone(),
            default_model: settings.default_model.clone(),
            conversations: settings.conversations_per_process,
            max_sessions: settings.max_sessions_per_process,
        }
    }
}

/// The CLI's settings for a chat proxy: API-key auth (required with a custom base URL), no
/// tools at all (nothing on the host can be read, written or run), one attempt per upstream
/// call (its default retries a 429 or 500 for ≈ 3.6 minutes behind our back), no telemetry,
/// update checks or IDE connection, and no folder-trust prompt.
fn settings_json() -> String {
    let settings = json!({
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false,
            "maxAttempts": 1},
        "ide": {"enabled": false},
        "tools": {"core": []},
    });
    format!("{settings:#}\n")
}

impl SpawnSpec {
    /// `gemini --acp` in a private home. `GEMINI_API_KEY` is inherited from the server's
    /// environment like the rest of it (not copied here, so it never shows in a logged spec).
    pub fn gemini(settings: &GeminiSettings, state_dir: &Path, process_id: u64) -> SpawnSpec {
        let paths = GeminiPaths::new(state_dir, process_id);
        let path = |p: &Path| p.display().to_string();
        let mut env = vec![
            ("GEMINI_CLI_HOME".to_string(), path(&paths.home)),
            ("HOME".to_string(), path(&paths.home)),
            ("TMPDIR".to_string(), path(&paths.tmp)),
            // Else the CLI re-spawns itself as a child that ignores SIGTERM and outlives a
            // SIGKILL of the process we started.
            ("GEMINI_CLI_NO_RELAUNCH".to_string(), "true".to_string()),
            ("GEMINI_SYSTEM_MD".to_string(), path(&paths.system_md)),
        ];
        if !settings.base_url.is_empty() {
            env.push(("GOOGLE_GEMINI_BASE_URL".into(), settings.base_url.clone()));
        }
        env.extend(settings.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        SpawnSpec {
            program: PathBuf::from(&settings.command),
            // A pinned model: the default, "auto", routes every turn through a second call.
            args: vec![
                "--acp".into(),
                "--model".into(),
                settings.default_model.clone(),
            ],
            env,
            env_remove: Vec::new(),
            cwd: paths.work.clone(),
            fresh_dir: Some(paths.root.clone()),
            dirs: vec![paths.tmp.clone()],
            files: vec![
                (paths.home.join(".gemini/settings.json"), settings_json()),
                // The CLI reads it at startup too, and refuses to start if it is missing.
                (paths.system_md.clone(), String::new()),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::config::Settings;

    fn env<'a>(spec: &'a SpawnSpec, key: &str) -> Option<&'a str> {
        // The last one wins, as with `Command::envs`.
        spec.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_private_home_with_generated_settings_and_the_acp_command_line() {
        let mut gemini = Settings::load(None).expect("defaults").backends.gemini;
        let spec = SpawnSpec::gemini(&gemini, Path::new("/s"), 7);
        assert_eq!(spec.args, ["--acp", "--model", "gemini-2.5-flash"]);
        assert_eq!(spec.cwd, Path::new("/s/gemini/7/work"));
        assert_eq!(spec.fresh_dir.as_deref(), Some(Path::new("/s/gemini/7")));
        assert_eq!(env(&spec, "GEMINI_CLI_HOME"), Some("/s/gemini/7/home"));
        assert_eq!(env(&spec, "HOME"), Some("/s/gemini/7/home"));
        assert_eq!(env(&spec, "TMPDIR"), Some("/s/gemini/7/tmp"));
        assert_eq!(env(&spec, "GEMINI_CLI_NO_RELAUNCH"), Some("true"));
        assert_eq!(
            env(&spec, "GEMINI_SYSTEM_MD"),
            Some("/s/gemini/7/home/system.md")
        );
        assert_eq!(env(&spec, "GOOGLE_GEMINI_BASE_URL"), None, "Google's own");
        assert_eq!(
            env(&spec, "GEMINI_API_KEY"),
            None,
            "inherited, never copied"
        );
        assert_eq!(spec.dirs, [PathBuf::from("/s/gemini/7/tmp")]);

        let (path, text) = &spec.files[0];
        assert_eq!(path, Path::new("/s/gemini/7/home/.gemini/settings.json"));
        let settings: Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(
            settings["security"]["auth"]["selectedType"],
            "gemini-api-key"
        );
        assert_eq!(settings["security"]["folderTrust"]["enabled"], false);
        assert_eq!(settings["tools"]["core"], json!([]));
        assert_eq!(settings["general"]["maxAttempts"], 1);
        assert_eq!(settings["general"]["enableAutoUpdate"], false);
        assert_eq!(settings["telemetry"]["enabled"], false);
        assert_eq!(settings["privacy"]["usageStatisticsEnabled"], false);
        assert_eq!(settings["ide"]["enabled"], false);
        assert_eq!(
            spec.files[1],
            (PathBuf::from("/s/gemini/7/home/system.md"), String::new())
        );

        gemini.base_url = "http://127.0.0.1:9".into();
        gemini.env.insert("TMPDIR".into(), "/elsewhere".into());
        let spec = SpawnSpec::gemini(&gemini, Path::new("/s"), 7);
        assert_eq!(
            env(&spec, "GOOGLE_GEMINI_BASE_URL"),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(
            env(&spec, "TMPDIR"),
            Some("/elsewhere"),
            "settings.env on top"
        );
    }

    #[test]
    fn the_driver_works_in_the_spawned_process_paths() {
        let gemini = Settings::load(None).expect("defaults").backends.gemini;
        let paths = GeminiPaths::new(Path::new("/s"), 3);
        let mut spec = SpawnSpec::gemini(&gemini, Path::new("/s"), 3);
        spec.cwd = "/a/pool/dir".into();
        let params = paths.driver_params(&gemini, &spec);
        assert_eq!(params.home, Path::new("/s/gemini/3/home"));
        assert_eq!(params.system_md, Path::new("/s/gemini/3/home/system.md"));
        assert_eq!(params.cwd, Path::new("/a/pool/dir"));
        assert_eq!(params.max_sessions, gemini.max_sessions_per_process);
        assert_eq!(params.conversations, gemini.conversations_per_process);
    }
}
