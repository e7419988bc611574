//! `[limits]`: what each client may do, with per-key overrides, and the rules that refuse a bad
//! table at startup. How the edge turns these into a client's limits is [`crate::limits`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The most a weight may be: past it one client's step in the fair queue rounds to nothing.
pub const MAX_WEIGHT: u32 = 100;

/// Limits every client gets, unless its key has an entry in `keys`. 0 = no limit, for every
/// count.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// The steady rate of a client's token bucket, for the model APIs.
    pub requests_per_minute: u32,
    /// The bucket's size: requests a client may send at once above the steady rate (0: one
    /// minute's worth).
    pub burst: u32,
    /// Turns of one client running at once, across all pools; more wait in the queue.
    pub max_concurrent: usize,
    /// Requests of one client waiting at once, across all pools; one more is refused with 429.
    pub max_queued: usize,
    /// A client's share of a pool while others wait for it too.
    pub weight: u32,
    /// Per-key names and overrides, by the name that labels the client.
    pub keys: BTreeMap<String, KeyLimits>,
}

/// One key's name (the table's name) and overrides; absent fields take the `[limits]` value.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    /// The key, as clients present it: one of `server.api_keys` (or `server.admin_keys` when
    /// those open the model APIs).
    pub key: String,
    pub requests_per_minute: Option<u32>,
    pub burst: Option<u32>,
    pub max_concurrent: Option<usize>,
    pub max_queued: Option<usize>,
    pub weight: Option<u32>,
}

fn invalid(key: &'static str, reason: String) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid { key, reason })
}

/// A name fit for a metric label and a log line, which cannot collide with the derived ids
/// (`key-…`, `addr-…`).
fn fit_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with("key-")
        && !name.starts_with("addr-")
}

impl LimitSettings {
    /// `model_api_keys`: the keys that open the model APIs (a named key must be one of them).
    pub fn validate(&self, model_api_keys: &[String]) -> Result<(), ConfigError> {
        if !(1..=MAX_WEIGHT).contains(&self.weight) {
            return invalid("limits.weight", format!("must be 1 to {MAX_WEIGHT}"));
        }
        if self.burst > 0 && self.requests_per_minute == 0 {
            return invalid(
                "limits.burst",
                "needs limits.requests_per_minute (a bucket with no refill)".into(),
            );
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, k) in &self.keys {
            let entry = |what: &str| format!("[limits.keys.{name}]: {what}");
            if !fit_name(name) {
                return invalid(
                    "limits.keys",
                    entry("the name must be 1-64 letters, digits, '-', '_' or '.', not starting with key- or addr-"),
                );
            }
            if !k.weight.is_none_or(|w| (1..=MAX_WEIGHT).contains(&w)) {
                return invalid(
                    "limits.keys",
                    entry(&format!("weight must be 1 to {MAX_WEIGHT}")),
                );
            }
            let rate = k.requests_per_minute.unwrap_or(self.requests_per_minute);
            if k.burst.unwrap_or(self.burst) > 0 && rate == 0 {
                return invalid("limits.keys", entry("burst needs requests_per_minute"));
            }
            if !model_api_keys.contains(&k.key) {
                return invalid(
                    "limits.keys",
                    entry("key is not one of the keys that open the model APIs (server.api_keys)"),
                );
            }
            if let Some(other) = seen.insert(k.key.as_str(), name.as_str()) {
                return invalid(
                    "limits.keys",
                    entry(&format!("same key as [limits.keys.{other}]")),
                );
            }
        }
        Ok(())
    }
}

/// `[server] cors_allowed_origins`: `*`, or origins as browsers send them
/// (`scheme://host[:port]`, no path).
pub fn validate_origins(origins: &[String]) -> Result<(), ConfigError> {
    let origin = |o: &str| {
        let Ok(uri) = o.parse::<actix_web::http::Uri>() else {
            return false;
        };
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some()
            && uri
                .path_and_query()
                .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/")
            && !o.ends_with('/')
    };
    let bad = origins.iter().find(|o| *o != "*" && !origin(o));
    match bad {
        Some(o) => invalid(
            "server.cors_allowed_origins",
            format!("{o:?} is not an origin: write scheme://host[:port] (no path), or \"*\""),
        ),
        None => Ok(()),
    }
}
