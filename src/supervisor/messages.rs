//! Messages the session supervisor accepts, and the snapshots it answers with.

use std::time::Duration;

use actix::Message;
use serde::Serialize;
use utoipa::ToSchema;

use crate::process::StateName;
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

/// Server → supervisor on SIGTERM/Ctrl-C: refuse new work, let running turns finish within
/// `grace`, end every process. Answers once no child is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub grace: Duration,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolStatus {
    pub name: String,
    pub backend: &'static str,
    /// The start of the pool's system prompt ("" for the default pool and spares).
    pub system_prompt: String,
    pub limits: PoolLimitsView,
    pub queued: usize,
    pub served: u64,
    pub refused: u64,
    pub failed: u64,
    pub processes: Vec<ProcessStatus>,
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
    pub turns: u32,
    pub age_secs: u64,
    pub idle_secs: u64,
    pub request_id: Option<String>,
    pub retiring: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthStatus {
    /// "ok", or "degraded" when the CLI is missing or processes keep failing to start.
    pub status: &'static str,
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
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CliHealth {
    pub command: String,
    pub found: bool,
    pub path: Option<String>,
    pub version: Option<String>,
    pub start_failures: u32,
    pub last_start_error: Option<String>,
}
