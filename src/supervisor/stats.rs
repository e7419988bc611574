//! Per-pool statistics since start: counters, a window of recent latencies, recent errors.

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;
use utoipa::ToSchema;

use crate::process::{TurnEnd, TurnReport};

const LATENCY_WINDOW: usize = 1000;
const ERRORS_KEPT: usize = 20;

#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct Counters {
    pub served: u64,
    /// Refused at once (queue full, draining) or after waiting (queue timeout).
    pub refused: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub crashed: u64,
    pub recycled: u64,
    pub cancelled: u64,
    pub spawns: u64,
    pub resets: u64,
    /// Requests that continued a parked conversation (only the new messages went to the CLI).
    pub conversation_hits: u64,
    /// Requests with earlier turns that no parked conversation matched (the history was
    /// replayed).
    pub conversation_misses: u64,
}

impl Counters {
    /// Each counter with its metric label.
    pub fn labelled(&self) -> [(&'static str, u64); 11] {
        [
            ("served", self.served),
            ("refused", self.refused),
            ("failed", self.failed),
            ("timeout", self.timed_out),
            ("crash", self.crashed),
            ("recycle", self.recycled),
            ("cancelled", self.cancelled),
            ("spawn", self.spawns),
            ("reset", self.resets),
            ("conversation_hit", self.conversation_hits),
            ("conversation_miss", self.conversation_misses),
        ]
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Latency {
    pub count: usize,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecentError {
    pub age_secs: u64,
    pub request_id: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct PoolStats {
    pub counters: Counters,
    latencies_ms: VecDeque<u64>,
    errors: VecDeque<(Instant, String, String)>,
}

impl PoolStats {
    pub fn record(&mut self, report: &TurnReport) {
        match report.end {
            TurnEnd::Ok => self.counters.served += 1,
            TurnEnd::Failed => self.counters.failed += 1,
            TurnEnd::TimedOut => self.counters.timed_out += 1,
            TurnEnd::Cancelled => self.counters.cancelled += 1,
        }
        if report.end == TurnEnd::Ok {
            if self.latencies_ms.len() == LATENCY_WINDOW {
                self.latencies_ms.pop_front();
            }
            self.latencies_ms
                .push_back(report.duration.as_millis() as u64);
        }
        if let Some(message) = &report.error {
            self.error(&report.request_id, message);
        }
    }

    pub fn error(&mut self, request_id: &str, message: &str) {
        if self.errors.len() == ERRORS_KEPT {
            self.errors.pop_front();
        }
        self.errors
            .push_back((Instant::now(), request_id.to_string(), message.to_string()));
    }

    /// Nearest-rank percentiles over the last turns' latencies.
    pub fn latency(&self) -> Latency {
        let mut sorted: Vec<u64> = self.latencies_ms.iter().copied().collect();
        sorted.sort_unstable();
        let rank = |p: f64| -> Option<u64> {
            let n = sorted.len();
            (n > 0).then(|| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        Latency {
            count: sorted.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
        }
    }

    /// Newest first.
    pub fn recent_errors(&self, now: Instant) -> Vec<RecentError> {
        self.errors
            .iter()
            .rev()
            .map(|(at, request_id, message)| RecentError {
                age_secs: now.duration_since(*at).as_secs(),
                request_id: request_id.clone(),
                message: message.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(ms: u64, end: TurnEnd) -> TurnReport {
        TurnReport {
            request_id: format!("r{ms}"),
            end,
            duration: Duration::from_millis(ms),
            time_to_first_token: None,
            model: "sonnet".into(),
            usage: None,
            cost_usd: 0.0,
            error: (end != TurnEnd::Ok).then(|| "boom".to_string()),
            answer: None,
        }
    }

    #[test]
    fn percentiles_use_nearest_rank_over_successful_turns() {
        let mut s = PoolStats::default();
        assert_eq!(s.latency().p50, None);
        for ms in 1..=100 {
            s.record(&report(ms, TurnEnd::Ok));
        }
        s.record(&report(5000, TurnEnd::TimedOut));
        let l = s.latency();
        assert_eq!(
            (l.count, l.p50, l.p95, l.p99),
            (100, Some(50), Some(95), Some(99))
        );
        assert_eq!(s.counters.served, 100);
        assert_eq!(s.counters.timed_out, 1);
        assert_eq!(s.recent_errors(Instant::now())[0].request_id, "r5000");
    }
}
