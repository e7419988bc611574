//! Who a client is and what it may do. The HTTP edge names every request's client — its API key,
//! or its remote address when the server has no keys — and resolves the client's limits from
//! `[limits]` ([`Clients`]); the request carries them to the supervisor, whose book shares each
//! pool fairly among the clients waiting for it and enforces their caps. The request rate is the
//! [`RateLimiter`]'s: one actor owns every client's token bucket ([`bucket`]), and the edge asks
//! it, with a deadline, before a model API request goes on.
//!
//! A key never leaves this module: clients are labelled by a configured name or a hash of the key.

pub mod bucket;
mod limiter;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

pub use bucket::{Quota, Rate, RateLimited};
pub use limiter::{RateLimiter, RateLimiterHandle};

use crate::config::{KeyLimits, LimitSettings};

/// A client's label in logs, metrics and the admin views: a configured name, `key-<hash>` or
/// `addr-<ip>`. Never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(Arc<str>);

impl Serialize for ClientId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl ClientId {
    pub fn named(name: &str) -> Self {
        Self(name.into())
    }

    /// `key-` and 8 hex digits of a stable hash (FNV-1a: the same across runs, unlike std's
    /// hasher, so dashboards and alerts keep their labels over restarts).
    pub fn of_key(key: &str) -> Self {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(format!("key-{:08x}", hash as u32).into())
    }

    /// `addr-<ip>` (IPv4 clients of a dual-stack socket as IPv4), or `addr-unknown`.
    pub fn of_addr(ip: Option<IpAddr>) -> Self {
        match ip {
            Some(ip) => Self(format!("addr-{}", ip.to_canonical()).into()),
            None => Self("addr-unknown".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One client and its limits, resolved once at the edge. `None` = no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: ClientId,
    /// Its share of a pool while other clients wait too (1..=100).
    pub weight: u32,
    /// Turns running at once, across all pools; more wait in the queue.
    pub max_concurrent: Option<usize>,
    /// Requests waiting at once, across all pools; one more is refused.
    pub max_queued: Option<usize>,
    /// Its token bucket for the model APIs.
    pub rate: Option<Rate>,
}

impl Default for Client {
    /// A request the edge did not name (the native API's internal callers, tests): no limits.
    fn default() -> Self {
        Self {
            id: ClientId::named("anonymous"),
            weight: 1,
            max_concurrent: None,
            max_queued: None,
            rate: None,
        }
    }
}

fn cap(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

/// `[limits]` as the edge uses it: every client's limits by the key it presents.
#[derive(Debug)]
pub struct Clients {
    defaults: LimitSettings,
    /// Named keys, by key; built once, shared by every request of that key.
    named: HashMap<String, Arc<Client>>,
}

impl Clients {
    pub fn new(settings: &LimitSettings) -> Self {
        let named = settings
            .keys
            .iter()
            .map(|(name, k)| {
                let client = Self::resolve(settings, ClientId::named(name), Some(k));
                (k.key.clone(), Arc::new(client))
            })
            .collect();
        Self {
            defaults: settings.clone(),
            named,
        }
    }

    fn resolve(d: &LimitSettings, id: ClientId, k: Option<&KeyLimits>) -> Client {
        let per_minute = k.and_then(|k| k.requests_per_minute);
        let per_minute = per_minute.unwrap_or(d.requests_per_minute);
        let burst = k.and_then(|k| k.burst).unwrap_or(d.burst);
        Client {
            id,
            weight: k.and_then(|k| k.weight).unwrap_or(d.weight).max(1),
            max_concurrent: cap(k.and_then(|k| k.max_concurrent).unwrap_or(d.max_concurrent)),
            max_queued: cap(k.and_then(|k| k.max_queued).unwrap_or(d.max_queued)),
            rate: Rate::new(per_minute, burst),
        }
    }

    /// The client of a request that presented `key` (one the server accepted).
    pub fn of_key(&self, key: &str) -> Arc<Client> {
        match self.named.get(key) {
            Some(client) => client.clone(),
            None => Arc::new(Self::resolve(&self.defaults, ClientId::of_key(key), None)),
        }
    }

    /// The client of a request without a key: its socket peer (a keyless server's clients).
    pub fn of_peer(&self, ip: Option<IpAddr>) -> Arc<Client> {
        Arc::new(Self::resolve(&self.defaults, ClientId::of_addr(ip), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn clients_are_named_by_config_or_by_a_hash_never_by_the_key() {
        let mut l = Settings::load(None).expect("defaults").limits;
        l.max_queued = 4;
        l.requests_per_minute = 60;
        l.keys.insert(
            "batch".into(),
            KeyLimits {
                key: "secret-batch".into(),
                requests_per_minute: Some(0),
                burst: None,
                max_concurrent: Some(2),
                max_queued: None,
                weight: Some(3),
            },
        );
        let clients = Clients::new(&l);
        let batch = clients.of_key("secret-batch");
        assert_eq!(batch.id.as_str(), "batch");
        assert_eq!(
            (
                batch.weight,
                batch.max_concurrent,
                batch.max_queued,
                batch.rate
            ),
            (3, Some(2), Some(4), None),
            "overrides, the rest from [limits]; 0 turns the rate off"
        );
        let other = clients.of_key("secret-other");
        assert!(other.id.as_str().starts_with("key-") && other.id.as_str().len() == 12);
        assert!(!other.id.as_str().contains("secret"));
        assert_eq!(other.id, clients.of_key("secret-other").id, "stable");
        assert_ne!(other.id, clients.of_key("secret-third").id);
        assert_eq!(other.rate, Rate::new(60, 0));
        let v4 = "::ffff:10.1.2.3".parse().ok();
        assert_eq!(clients.of_peer(v4).id.as_str(), "addr-10.1.2.3");
        assert_eq!(clients.of_peer(None).id.as_str(), "addr-unknown");
    }
}
