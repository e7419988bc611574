//! Token buckets without actors or clocks: every call takes the time, so the policy is tested
//! with plain values. [`RateBook`] holds one bucket per client; the [`super::RateLimiter`] owns it.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ClientId;

/// Buckets kept before full ones (clients idle for a while) are forgotten: a full bucket is what
/// a new client gets anyway.
const KEEP_BUCKETS: usize = 4096;

/// A client's request rate: `per_minute` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    /// `None` when `per_minute` is 0 (no limit); a `burst` of 0 is one minute's worth.
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        let burst = if burst == 0 { per_minute } else { burst };
        (per_minute > 0).then_some(Self { per_minute, burst })
    }

    fn per_second(self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// How long an empty-by-`missing`-tokens bucket takes to gain them.
    fn refill_time(self, missing: f64) -> Duration {
        Duration::from_secs_f64(missing.max(0.0) / self.per_second())
    }
}

/// What a client has left after a request, for the `anthropic-ratelimit-requests-*` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset_in: Duration,
}

/// A request beyond the client's rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimited {
    pub quota: Quota,
    /// Until one more request may pass.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained = now.saturating_duration_since(self.updated).as_secs_f64() * rate.per_second();
        self.tokens = (self.tokens + gained).min(f64::from(rate.burst));
        self.updated = now;
    }

    fn quota(&self, rate: Rate) -> Quota {
        Quota {
            limit: rate.per_minute,
            remaining: self.tokens.floor() as u32,
            reset_in: rate.refill_time(f64::from(rate.burst) - self.tokens),
        }
    }
}

/// Every client's bucket.
#[derive(Debug, Default)]
pub struct RateBook {
    buckets: HashMap<ClientId, TokenBucket>,
}

impl RateBook {
    /// Takes one token from `client`'s bucket (a new client's starts full).
    pub fn take(
        &mut self,
        client: &ClientId,
        rate: Rate,
        now: Instant,
    ) -> Result<Quota, RateLimited> {
        if self.buckets.len() >= KEEP_BUCKETS && !self.buckets.contains_key(client) {
            self.forget_full(rate, now);
        }
        let bucket = self.buckets.entry(client.clone()).or_insert(TokenBucket {
            tokens: f64::from(rate.burst),
            updated: now,
        });
        bucket.refill(rate, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(bucket.quota(rate));
        }
        Err(RateLimited {
            quota: bucket.quota(rate),
            retry_after: rate.refill_time(1.0 - bucket.tokens),
        })
    }

    /// Drops the buckets that would be full by now (judged at `rate`, the usual one).
    fn forget_full(&mut self, rate: Rate, now: Instant) {
        self.buckets.retain(|_, b| {
            let mut b = *b;
            b.refill(rate, now);
            b.tokens < f64::from(rate.burst)
        });
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// `at` as RFC 3339 in UTC, whole seconds (`2023-11-14T22:13:20Z`): the format of Anthropic's
/// `anthropic-ratelimit-*-reset` headers.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, for the proleptic
    // Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_a_burst_through_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let rate = Rate::new(60, 3).expect("a rate");
        let (alice, bob) = (ClientId::named("alice"), ClientId::named("bob"));
        let mut book = RateBook::default();
        let remaining: Vec<u32> = (0..3)
            .map(|_| {
                book.take(&alice, rate, t0)
                    .expect("within the burst")
                    .remaining
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = book.take(&alice, rate, at(250)).expect_err("bucket empty");
        assert_eq!(
            refused.retry_after,
            Duration::from_millis(750),
            "one token a second"
        );
        assert_eq!(refused.quota.remaining, 0);
        assert_eq!(refused.quota.limit, 60);
        assert!(
            book.take(&bob, rate, at(250)).is_ok(),
            "buckets are per client"
        );
        let q = book.take(&alice, rate, at(1000)).expect("one token back");
        assert_eq!((q.remaining, q.reset_in), (0, Duration::from_secs(3)));
        // Idle for long: full again, never beyond the burst.
        let q = book.take(&alice, rate, at(60_000)).expect("full");
        assert_eq!(q.remaining, 2);
    }

    #[test]
    fn no_rate_without_requests_per_minute_and_burst_defaults_to_a_minute() {
        assert_eq!(Rate::new(0, 5), None);
        assert_eq!(Rate::new(120, 0).map(|r| r.burst), Some(120));
    }

    #[test]
    fn full_buckets_are_forgotten_when_there_are_many() {
        let t0 = Instant::now();
        let rate = Rate::new(60, 1).expect("a rate");
        let mut book = RateBook::default();
        for i in 0..KEEP_BUCKETS {
            let _ = book.take(&ClientId::named(&format!("c{i}")), rate, t0);
        }
        assert_eq!(book.len(), KEEP_BUCKETS);
        let later = t0 + Duration::from_secs(2);
        let _ = book.take(&ClientId::named("new"), rate, later);
        assert_eq!(book.len(), 1, "every earlier bucket had refilled");
    }

    #[test]
    fn reset_times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
