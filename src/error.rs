//! The failures a request can meet below the HTTP layer. Each dialect turns them into its own
//! error body and status in one exhaustive `match` (`api::error`), so a new variant does not
//! compile until someone picks its status.

use std::time::Duration;

/// Why the upstream API (behind the CLI) refused or failed a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    InvalidRequest,
    Authentication,
    PermissionDenied,
    NotFound,
    RateLimited,
    Overloaded,
    Other,
}

impl UpstreamKind {
    /// Classifies the CLI's `api_error_status` (absent for network failures and the like).
    pub fn from_status(status: Option<u16>) -> Self {
        match status {
            Some(400) | Some(413) => Self::InvalidRequest,
            Some(401) => Self::Authentication,
            Some(403) => Self::PermissionDenied,
            Some(404) => Self::NotFound,
            Some(429) => Self::RateLimited,
            Some(529) => Self::Overloaded,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("pool {pool} is saturated: all {processes} processes are busy and {queued} requests are queued; retry later")]
    PoolSaturated {
        pool: String,
        processes: usize,
        queued: usize,
        retry_after: Duration,
    },
    /// The client already has as many turns running and waiting as its `[limits]` allow.
    #[error("client {client} has {running} requests running and {queued} waiting, as many as its limits allow; retry later")]
    ClientOverLimit {
        client: String,
        running: usize,
        queued: usize,
        retry_after: Duration,
    },
    #[error("no process of pool {pool} became free within {}s; retry later", waited.as_secs())]
    QueueTimedOut {
        pool: String,
        waited: Duration,
        retry_after: Duration,
    },
    #[error("the model turn did not finish within the request timeout of {}s", after.as_secs())]
    TurnTimedOut { after: Duration },
    /// The server's own stall timers: the CLIs notice a silent upstream only after minutes.
    #[error("no {waiting_for} from the model for {}s: the upstream seems stalled", after.as_secs())]
    UpstreamStalled {
        after: Duration,
        waiting_for: &'static str,
    },
    #[error("the {backend} process exited during the request ({status})")]
    ProcessExited {
        backend: &'static str,
        status: String,
    },
    #[error("the {backend} process broke protocol: {detail}")]
    BackendProtocol {
        backend: &'static str,
        detail: String,
    },
    #[error("backend {backend} is unavailable: {reason}")]
    BackendUnavailable {
        backend: &'static str,
        reason: String,
    },
    /// The request names a model or backend this server does not serve (a client error).
    #[error("{reason}")]
    NotServed {
        backend: &'static str,
        reason: String,
    },
    #[error("upstream API error: {message}")]
    Upstream {
        kind: UpstreamKind,
        status: Option<u16>,
        message: String,
    },
    /// The CLI started its answer over after part of it was streamed: what the client has is
    /// not the model's answer.
    #[error("the upstream call failed after part of the answer was streamed and was retried; the partial answer is void, retry the request")]
    StreamRestarted,
    /// A structured answer that never satisfied its schema (the CLI's retries ran out, or the
    /// backend's answer failed the server's own check).
    #[error("the model gave no answer matching the schema: {message}")]
    StructuredOutputInvalid { message: String },
    #[error("the request was cancelled")]
    Cancelled,
    #[error("the request was cancelled by an administrator")]
    CancelledByAdmin,
    #[error("pool {pool} is draining and takes no new requests; retry later")]
    PoolDraining { pool: String, retry_after: Duration },
    /// An operator took this instance out of rotation (`POST /admin/instance/drain`).
    #[error("this instance is drained by an operator and takes no new turns; retry (through the load balancer, another instance answers)")]
    InstanceDrained { retry_after: Duration },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the session supervisor did not answer in time")]
    SupervisorUnavailable,
}
