//! Starting a CLI child: its command line, environment, working directory and private files. The
//! only place that touches `tokio::process`; the process actor itself works on any reader/writer
//! pair. One file per CLI (`claude`, `codex`, `gemini`) builds its [`SpawnSpec`].

mod claude;
mod codex;
mod gemini;

pub use codex::native_codex;
pub use gemini::GeminiPaths;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::{Child, Command};

use crate::config::AgenticSettings;
use crate::protocol::{PoolKey, Profile};

/// The pipes of a started process, boxed so tests can hand the actor in-memory pipes instead.
pub struct ProcessIo {
    pub stdin: Box<dyn AsyncWrite + Unpin + Send>,
    pub stdout: Box<dyn AsyncRead + Unpin + Send>,
    pub stderr: Option<Box<dyn AsyncRead + Unpin + Send>>,
    /// The OS process, when there is one. `kill_on_drop` is set: dropping it ends the child.
    pub child: Option<Child>,
}

/// Everything a spawn needs that does not change between spawns.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    pub cwd: PathBuf,
    /// Removed with everything in it before each spawn: a process's private state, which a
    /// previous process of the same id may have left behind.
    pub fresh_dir: Option<PathBuf>,
    /// Created before each spawn (after `fresh_dir` is removed).
    pub dirs: Vec<PathBuf>,
    /// Written before each spawn, their directories created: the CLI's settings and the like.
    pub files: Vec<(PathBuf, String)>,
}

impl SpawnSpec {
    /// The spec for a pool: its working directory and, for the agentic profile, the CLI's tools
    /// with the configured permission mode instead of none.
    pub fn for_pool(&self, key: &PoolKey, agentic: &AgenticSettings) -> Self {
        let mut spec = self.clone();
        if let Some(dir) = &key.workdir {
            spec.cwd = dir.clone();
        }
        if let Profile::Agentic { max_turns } = key.profile {
            if let Some(pos) = spec.args.iter().position(|a| a == "--tools") {
                spec.args[pos + 1] = agentic.tools.clone();
            }
            spec.args.extend([
                "--permission-mode".to_string(),
                agentic.permission_mode.clone(),
            ]);
            if let Some(n) = max_turns {
                spec.args.extend(["--max-turns".to_string(), n.to_string()]);
            }
        }
        spec
    }

    /// Prepares the spec's directories and files, then starts the child with piped stdio.
    /// Fails at once if either fails or the program cannot be executed.
    pub fn spawn(&self) -> std::io::Result<(ProcessIo, u32)> {
        self.prepare()?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("child started without piped stdio"));
        };
        let io = ProcessIo {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: stderr.map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>),
            child: Some(child),
        };
        Ok((io, pid))
    }
}

impl SpawnSpec {
    /// Wipes `fresh_dir`, then creates the working directory, `dirs` and `files`.
    fn prepare(&self) -> std::io::Result<()> {
        if let Some(dir) = &self.fresh_dir {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::create_dir_all(&self.cwd)?;
        for dir in &self.dirs {
            std::fs::create_dir_all(dir)?;
        }
        for (path, contents) in &self.files {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, contents)?;
        }
        Ok(())
    }
}

/// Resolves a command name the way the shell would: a path is taken as is, a bare name is looked
/// up in `PATH`. `None` when nothing executable is found.
pub fn resolve_command(command: &str) -> Option<PathBuf> {
    let is_executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if command.contains('/') {
        let p = PathBuf::from(command);
        return is_executable(&p).then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(command))
            .find(|p| is_executable(p))
    })
}

/// Runs `<command> --version` with a timeout; the first line of its output, if any.
pub async fn probe_version(command: PathBuf) -> Option<String> {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Command::new(&command)
            .arg("--version")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn chat_profile_has_no_tools_and_no_user_settings() {
        let s = Settings::load(None).expect("defaults");
        let spec = SpawnSpec::claude_chat(&s.backends.claude, Path::new("/tmp/x"));
        let pos = |flag: &str| spec.args.iter().position(|a| a == flag).expect(flag);
        assert_eq!(spec.args[pos("--tools") + 1], "");
        assert_eq!(spec.args[pos("--setting-sources") + 1], "");
        assert!(spec.args.contains(&"--strict-mcp-config".to_string()));
        assert!(spec.args.contains(&"--no-session-persistence".to_string()));
        assert_eq!(spec.args[pos("--allowedTools") + 1], "mcp__client");
        assert_eq!(spec.cwd, Path::new("/tmp/x/work"));
        assert!(spec
            .env
            .iter()
            .any(|(k, v)| k == "CLAUDE_CODE_MAX_RETRIES" && v == "2"));
    }

    #[test]
    fn preparing_wipes_the_fresh_dir_then_creates_dirs_and_files() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let fresh = root.path().join("p1");
        std::fs::create_dir_all(fresh.join("old")).expect("writable");
        let spec = SpawnSpec {
            program: "true".into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: fresh.join("work"),
            fresh_dir: Some(fresh.clone()),
            dirs: vec![fresh.join("tmp")],
            files: vec![(fresh.join("home/.cli/settings.json"), "{}".into())],
        };
        spec.prepare().expect("prepared");
        assert!(!fresh.join("old").exists());
        assert!(fresh.join("work").is_dir() && fresh.join("tmp").is_dir());
        let settings = std::fs::read_to_string(fresh.join("home/.cli/settings.json"));
        assert_eq!(settings.ok().as_deref(), Some("{}"));
    }

    #[test]
    fn resolves_commands_in_path() {
        assert!(resolve_command("sh").is_some());
        assert!(resolve_command("/bin/sh").is_some());
        assert!(resolve_command("no-such-command-clinvoker").is_none());
    }
}
