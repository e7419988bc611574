//! Messages the session supervisor accepts, and the snapshots it answers with.

use std::time::Duration;

use actix::Message;
use serde::Serialize;
use utoipa::ToSchema;

use super::pool::StateName;
use super::stats::{Counters, Latency, RecentError};
use crate::protocol::TurnRequest;

/// Handle → supervisor: serve this turn. Every outcome, refusal included, arrives on the
/// request's event channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit(pub TurnRequest);

/// Admin → supervisor: a snapshot of every pool and process.
#[derive(Message)]
#[rtype(result = "Vec<PoolStatus>")]
pub struct GetPoolStatus;

/// Health check → supervisor: CLI presence and process counts.
#[derive(Message)]
#[rtype(result = "HealthStatus")]
pub struct GetHealth;

/// Admin → supervisor: take this instance out of a load balancer's rotation (`drain: true`) or
/// back in. While drained, `/ready` answers 503 and new turns are refused with a 503 that the
/// balancer retries on another instance (nginx has no active health checks, so the refusal is
/// what moves the traffic); turns already running finish. Answers the readiness.
#[derive(Message)]
#[rtype(result = "Readiness")]
pub struct DrainInstance {
    pub drain: bool,
}

/// Readiness probe → supervisor: whether this instance should take traffic.
#[derive(Message)]
#[rtype(result = "Readiness")]
pub struct GetReadiness;

/// `ready` once every pool's `min_idle` processes are warm; not while shutting down.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Why not, when not.
    pub reasons: Vec<String>,
}

/// Server → supervisor on SIGTERM/Ctrl-C: refuse new work, let running turns finish within
/// `grace`, end every process. Answers once no child is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub grace: Duration,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolStatus {
    /// Used in admin URLs: `default`, `sys-…`, `dir-…`, `agentic-…`, or `spare`.
    pub id: String,
    pub name: String,
    pub backend: &'static str,
    /// The start of the pool's system prompt ("" for the default pool and spares).
    pub system_prompt: String,
    /// Drained by an operator: finishing in-flight turns, starting nothing new.
    pub draining: bool,
    pub limits: PoolLimitsView,
    pub queued: usize,
    /// The clients with requests waiting for or running in this pool, most waiting first.
    pub clients: Vec<ClientQueue>,
    pub counters: Counters,
    pub latency_ms: Latency,
    pub recent_errors: Vec<RecentError>,
    pub processes: Vec<ProcessStatus>,
}

/// One client's share of a pool right now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientQueue {
    /// The client's name or key hash (`key-1a2b3c4d`), or `addr-<ip>` on a server without keys.
    pub client: String,
    pub queued: usize,
    pub running: usize,
    /// How long its oldest waiting request has waited.
    pub oldest_wait_ms: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolLimitsView {
    pub max_processes: usize,
    pub min_idle: usize,
    pub max_queue: usize,
    pub queue_timeout_secs: u64,
    pub max_turns_per_process: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProcessStatus {
    pub id: u64,
    pub pid: u32,
    pub state: StateName,
    /// Conversation slots in use (running or resetting a turn), of `slots`.
    pub slots_in_use: usize,
    pub slots: usize,
    pub turns: u32,
    pub resets: u32,
    pub age_secs: u64,
    pub idle_secs: u64,
    pub request_id: Option<String>,
    pub retiring: bool,
    /// Resident memory and CPU time used so far, from /proc (None when unavailable).
    pub rss_bytes: Option<u64>,
    pub cpu_secs: Option<f64>,
    pub last_error: Option<String>,
    /// Conversations it holds between turns, least recently used first.
    pub parked: Vec<super::parking::ParkedView>,
}

/// A request the supervisor holds: waiting in a queue or running in a process.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestStatus {
    pub id: String,
    /// Who sent it: a name or key hash, or `addr-<ip>` on a server without keys.
    pub client: String,
    pub dialect: String,
    pub model: String,
    pub pool: String,
    pub process: Option<u64>,
    pub pid: Option<u32>,
    /// `queued` or `running`.
    pub state: &'static str,
    pub age_ms: u64,
    pub bytes_streamed: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthStatus {
    /// "ok", or "degraded" when Claude Code's CLI is missing or processes keep failing to start.
    pub status: &'static str,
    /// Consecutive processes (of any backend) that exited before becoming ready.
    pub start_failures: u32,
    pub last_start_error: Option<String>,
    pub backends: BackendHealth,
    pub pools: usize,
    pub processes: usize,
    pub idle: usize,
    pub busy: usize,
    pub starting: usize,
    pub queued: usize,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackendHealth {
    pub claude: CliHealth,
    pub codex: CliHealth,
    pub gemini: CliHealth,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CliHealth {
    pub command: String,
    pub found: bool,
    /// Whether requests for it are served (Claude Code always is; the others when found).
    pub served: bool,
    pub path: Option<String>,
    pub version: Option<String>,
}

/// Admin → supervisor: the in-flight requests (queued and running).
#[derive(Message)]
#[rtype(result = "Vec<RequestStatus>")]
pub struct GetRequests;

/// Admin → supervisor: one pool's status.
#[derive(Message)]
#[rtype(result = "Result<PoolStatus, AdminError>")]
pub struct GetPool(pub String);

/// Admin → supervisor: fail the pool's queue, let running turns finish, end its processes, take
/// no new requests until resumed. Answers the pool's new status.
#[derive(Message)]
#[rtype(result = "Result<PoolStatus, AdminError>")]
pub struct DrainPool(pub String);

/// Admin → supervisor: take requests again after a drain.
#[derive(Message)]
#[rtype(result = "Result<PoolStatus, AdminError>")]
pub struct ResumePool(pub String);

/// Admin → supervisor: change the pool's limits at runtime.
#[derive(Message)]
#[rtype(result = "Result<PoolStatus, AdminError>")]
pub struct ResizePool {
    pub pool: String,
    pub max_processes: Option<usize>,
    pub min_idle: Option<usize>,
}

/// Admin → supervisor: replace one process once its current turn (if any) is over.
#[derive(Message)]
#[rtype(result = "Result<ProcessStatus, AdminError>")]
pub struct RecycleProcess(pub u64);

/// Admin → supervisor: kill one process now (its turn fails).
#[derive(Message)]
#[rtype(result = "Result<ProcessStatus, AdminError>")]
pub struct KillProcess(pub u64);

/// Admin → supervisor: cancel a queued or running request.
#[derive(Message)]
#[rtype(result = "Result<Cancelled, AdminError>")]
pub struct CancelRequest(pub String);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cancelled {
    pub cancelled: String,
    /// `queued` or `running`.
    pub was: &'static str,
}

/// Why an admin command was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    #[error("no pool {0}")]
    UnknownPool(String),
    #[error("no process {0}")]
    UnknownProcess(u64),
    #[error("no in-flight request {0}")]
    UnknownRequest(String),
    #[error("{0}")]
    Invalid(String),
}
