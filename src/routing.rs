//! Which backend and which CLI model serve a model name a client sends: the configured tables
//! first (`[backends.*.models]`), then the name's prefix (`claude*` → Claude Code,
//! `gpt*`/`codex*`/`o<digit>*` → Codex, `gemini*` → Gemini), then `[routing] default_backend`.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::config::Backend;
use crate::config::Settings;
use crate::error::ServeError;

/// Names Claude Code resolves itself.
const CLI_ALIASES: [&str; 6] = ["default", "opus", "sonnet", "haiku", "fable", "opusplan"];

/// The backend a model name belongs to by its prefix, if any.
fn by_prefix(model: &str) -> Option<Backend> {
    let m = model.to_ascii_lowercase();
    let o_series = m.starts_with('o') && m[1..].starts_with(|c: char| c.is_ascii_digit());
    if m.starts_with("claude") || CLI_ALIASES.contains(&m.as_str()) {
        Some(Backend::Claude)
    } else if m.starts_with("gpt") || m.starts_with("codex") || o_series {
        Some(Backend::Codex)
    } else if m.starts_with("gemini") {
        Some(Backend::Gemini)
    } else {
        None
    }
}

/// A model name resolved: the backend and the model its CLI runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub backend: Backend,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct ModelRouter {
    /// Client name → CLI model, per backend, from `[backends.<name>.models]`.
    tables: BTreeMap<Backend, BTreeMap<String, String>>,
    default_backend: Backend,
    /// Claude's model for names routed to it that are neither mapped nor Claude ids.
    claude_default: String,
    /// Where each backend's CLI was found at startup (None: not installed).
    installed: BTreeMap<Backend, Option<PathBuf>>,
}

impl ModelRouter {
    /// `installed`: where each backend's CLI was found, resolved once at startup.
    pub fn new(settings: &Settings, installed: BTreeMap<Backend, Option<PathBuf>>) -> Self {
        let b = &settings.backends;
        let tables = BTreeMap::from([
            (Backend::Claude, b.claude.models.clone()),
            (Backend::Codex, b.codex.models.clone()),
            (Backend::Gemini, b.gemini.models.clone()),
        ]);
        Self {
            tables,
            default_backend: settings.routing.default_backend,
            claude_default: b.claude.default_model.clone(),
            installed,
        }
    }

    /// Table, then prefix, then the default backend.
    pub fn route(&self, requested: &str) -> Route {
        if let Some((backend, model)) = self
            .tables
            .iter()
            .find_map(|(b, t)| t.get(requested).map(|m| (*b, m)))
        {
            return Route {
                backend,
                model: model.clone(),
            };
        }
        let backend = by_prefix(requested).unwrap_or(self.default_backend);
        let model = match backend {
            Backend::Claude if by_prefix(requested) != Some(Backend::Claude) => {
                self.claude_default.clone()
            }
            _ => requested.to_string(),
        };
        Route { backend, model }
    }

    /// The backend and CLI model for `requested`, or the error a request gets when that
    /// backend's CLI is not installed. Claude Code, the server's main backend, is always routed:
    /// a missing CLI there is the server's fault (its pool reports why it cannot start), not
    /// the client's choice of model.
    pub fn resolve(&self, requested: &str) -> Result<Route, ServeError> {
        let route = self.route(requested);
        match (route.backend, self.installed_at(route.backend)) {
            (Backend::Claude, _) | (_, Some(_)) => Ok(route),
            (other, None) => Err(self.unserved(other)),
        }
    }

    /// The Claude model for `requested`, whatever backend its name suggests.
    pub fn claude_model(&self, requested: &str) -> String {
        match self.route(requested) {
            Route {
                backend: Backend::Claude,
                model,
            } => model,
            _ => self.claude_default.clone(),
        }
    }

    /// Why `backend` cannot serve a request.
    pub fn unserved(&self, backend: Backend) -> ServeError {
        let name = backend.name();
        let reason = match self.installed.get(&backend).cloned().flatten() {
            None => format!("backend {name} is not installed (its CLI was not found)"),
            Some(path) => format!("backend {name} (CLI at {}) is not served", path.display()),
        };
        ServeError::NotServed {
            backend: name,
            reason,
        }
    }

    /// Every configured model name with its backend.
    pub fn models(&self) -> Vec<(String, Backend)> {
        self.tables
            .iter()
            .flat_map(|(b, t)| t.keys().map(move |name| (name.clone(), *b)))
            .collect()
    }

    pub fn models_of(&self, backend: Backend) -> Vec<String> {
        self.tables
            .get(&backend)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn installed_at(&self, backend: Backend) -> Option<PathBuf> {
        self.installed.get(&backend).cloned().flatten()
    }
}

pub fn command_of(settings: &Settings, backend: Backend) -> &str {
    match backend {
        Backend::Claude => &settings.backends.claude.command,
        Backend::Codex => &settings.backends.codex.command,
        Backend::Gemini => &settings.backends.gemini.command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> ModelRouter {
        let s = Settings::load(None).expect("defaults");
        let installed = BTreeMap::from([
            (Backend::Claude, Some(PathBuf::from("/usr/bin/claude"))),
            (Backend::Codex, None),
        ]);
        ModelRouter::new(&s, installed)
    }

    #[test]
    fn seed_names_map_and_real_ids_pass_through() {
        let r = router();
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
    }

    #[test]
    fn prefixes_and_default_decide_the_backend() {
        let r = router();
        let backend = |m: &str| r.route(m).backend;
        assert_eq!(backend("gpt-4o"), Backend::Codex);
        assert_eq!(backend("o3-mini"), Backend::Codex);
        assert_eq!(backend("codex"), Backend::Codex);
        assert_eq!(r.route("codex").model, "gpt-5-codex", "the table first");
        assert_eq!(backend("gemini-2.5-flash"), Backend::Gemini);
        assert_eq!(backend("opus"), Backend::Claude);
        assert_eq!(
            backend("olmo"),
            Backend::Claude,
            "o without a digit is not an OpenAI o-series name"
        );
        assert_eq!(
            r.route("my-model"),
            Route {
                backend: Backend::Claude,
                model: "sonnet".into()
            }
        );
    }

    #[test]
    fn an_uninstalled_backend_is_named_in_the_error() {
        let err = router().resolve("gpt-4o").expect_err("codex is not served");
        assert!(
            err.to_string().contains("backend codex is not installed"),
            "{err}"
        );
    }
}
