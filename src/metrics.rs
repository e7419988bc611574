//! Prometheus metrics (`GET /metrics`). The collectors are the `prometheus` crate's atomic types,
//! written by their one owner each — the HTTP edge (requests), the supervisor (pools, processes,
//! turns) — and only read by the scrape.

use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use crate::process::TurnReport;

/// Buckets for model latencies: tens of milliseconds (mock upstreams) to minutes (long answers).
const SECONDS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub time_to_first_token: HistogramVec,
    pub pool_processes: GaugeVec,
    pub pool_queued: GaugeVec,
    /// Process lifecycle events by pool: spawns, resets, recycles, crashes, timeouts, refusals.
    pub pool_events: IntCounterVec,
    pub upstream_tokens: IntCounterVec,
    pub upstream_cost: CounterVec,
    /// Streams ended with an error because the CLI started over after partial output.
    pub streams_restarted: IntCounterVec,
    /// Requests waiting, by client (a name or a key's hash, never the key), across all pools.
    pub client_queued: GaugeVec,
    /// How long each client's requests waited for a process (0 when one was free).
    pub client_queue_wait: HistogramVec,
    /// Requests refused by a client's limits: `rate` (requests per minute) or `cap` (turns
    /// running and waiting).
    pub client_limited_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_labels = ["route", "dialect", "model", "status"];
        let http_requests = IntCounterVec::new(
            Opts::new("clinvoker_http_requests_total", "HTTP requests answered"),
            &http_labels,
        )
        .expect("valid metric definition");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "clinvoker_http_request_duration_seconds",
                "Time to the response head (streams: to the first event)",
            )
            .buckets(SECONDS.to_vec()),
            &http_labels,
        )
        .expect("valid metric definition");
        let time_to_first_token = HistogramVec::new(
            HistogramOpts::new(
                "clinvoker_time_to_first_token_seconds",
                "From submission to the first streamed text",
            )
            .buckets(SECONDS.to_vec()),
            &["pool", "model"],
        )
        .expect("valid metric definition");
        let pool_processes = GaugeVec::new(
            Opts::new(
                "clinvoker_pool_processes",
                "Live processes by pool and state (starting, idle, busy, resetting, draining)",
            ),
            &["pool", "state"],
        )
        .expect("valid metric definition");
        let pool_queued = GaugeVec::new(
            Opts::new("clinvoker_pool_queued", "Requests waiting for a process"),
            &["pool"],
        )
        .expect("valid metric definition");
        let pool_events = IntCounterVec::new(
            Opts::new(
                "clinvoker_pool_events_total",
                "spawn, reset, recycle, crash, timeout, refusal, served, failed; conversation_hit and \
                 conversation_miss: follow-ups that continued a parked conversation or were replayed",
            ),
            &["pool", "event"],
        )
        .expect("valid metric definition");
        let upstream_tokens = IntCounterVec::new(
            Opts::new(
                "clinvoker_upstream_tokens_total",
                "Tokens the CLI reported for its upstream calls",
            ),
            &["model", "kind"],
        )
        .expect("valid metric definition");
        let upstream_cost = CounterVec::new(
            Opts::new(
                "clinvoker_upstream_cost_usd_total",
                "Cost the CLI reported for its upstream calls",
            ),
            &["model"],
        )
        .expect("valid metric definition");
        let streams_restarted = IntCounterVec::new(
            Opts::new(
                "clinvoker_streams_restarted_total",
                "Streams ended with an error: the CLI retried after part of the answer was sent",
            ),
            &["dialect"],
        )
        .expect("valid metric definition");
        let client_queued = GaugeVec::new(
            Opts::new(
                "clinvoker_client_queued",
                "Requests waiting for a process, by client",
            ),
            &["client"],
        )
        .expect("valid metric definition");
        let client_queue_wait = HistogramVec::new(
            HistogramOpts::new(
                "clinvoker_client_queue_wait_seconds",
                "From submission to a process taking the request, by client",
            )
            .buckets(SECONDS.to_vec()),
            &["client"],
        )
        .expect("valid metric definition");
        let client_limited_total = IntCounterVec::new(
            Opts::new(
                "clinvoker_client_limited_total",
                "Requests refused by a client's limits (rate: requests per minute; cap: turns running and waiting)",
            ),
            &["client", "limit"],
        )
        .expect("valid metric definition");
        for c in [
            Box::new(streams_restarted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(client_queued.clone()),
            Box::new(client_queue_wait.clone()),
            Box::new(client_limited_total.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(time_to_first_token.clone()),
            Box::new(pool_processes.clone()),
            Box::new(pool_queued.clone()),
            Box::new(pool_events.clone()),
            Box::new(upstream_tokens.clone()),
            Box::new(upstream_cost.clone()),
        ] {
            // Names are unique within this fresh registry, so registration cannot collide.
            registry.register(c).expect("unique metric names");
        }
        Self {
            registry,
            http_requests,
            http_duration,
            time_to_first_token,
            pool_processes,
            pool_queued,
            pool_events,
            upstream_tokens,
            upstream_cost,
            streams_restarted,
            client_queued,
            client_queue_wait,
            client_limited_total,
        }
    }

    /// A request of `client` refused by its `limit` (`rate` or `cap`).
    pub fn client_limited(&self, client: &str, limit: &str) {
        self.client_limited_total
            .with_label_values(&[client, limit])
            .inc();
    }

    pub fn http(&self, route: &str, dialect: &str, model: &str, status: u16, took: Duration) {
        let status = status.to_string();
        let labels = [route, dialect, model, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn event(&self, pool: &str, event: &str) {
        self.pool_events.with_label_values(&[pool, event]).inc();
    }

    pub fn turn(&self, pool: &str, report: &TurnReport) {
        if let Some(ttft) = report.time_to_first_token {
            self.time_to_first_token
                .with_label_values(&[pool, &report.model])
                .observe(ttft.as_secs_f64());
        }
        if let Some(u) = &report.usage {
            let tokens = |kind: &str, n: u64| {
                self.upstream_tokens
                    .with_label_values(&[&report.model, kind])
                    .inc_by(n)
            };
            tokens("input", u.input_tokens);
            tokens("output", u.output_tokens);
            tokens("cache_read", u.cache_read_input_tokens);
            tokens("cache_creation", u.cache_creation_input_tokens);
        }
        self.upstream_cost
            .with_label_values(&[&report.model])
            .inc_by(report.cost_usd.max(0.0));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("encoding metrics: {e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
