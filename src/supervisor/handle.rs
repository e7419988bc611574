//! [`SupervisorHandle`]: what HTTP handlers hold to reach the supervisor. Every call has a
//! deadline, so a wedged supervisor turns into an error rather than a hung request.

use std::time::Duration;

use actix::{Addr, MailboxError};
use tokio::sync::mpsc;

use super::messages::*;
use super::SessionSupervisor;
use crate::error::ServeError;
use std::sync::Arc;

use crate::protocol::{RequestMeta, TurnEvent, TurnSpec};

const SEND_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct SupervisorHandle {
    addr: Addr<SessionSupervisor>,
}

fn mailbox_error(e: MailboxError) -> ServeError {
    match e {
        MailboxError::Closed => ServeError::ShuttingDown,
        MailboxError::Timeout => ServeError::SupervisorUnavailable,
    }
}

impl SupervisorHandle {
    pub fn new(addr: Addr<SessionSupervisor>) -> Self {
        Self { addr }
    }

    /// Submits a turn. The receiver yields the turn's events; dropping it cancels the turn
    /// (queued: it is skipped; running: the process interrupts it).
    pub async fn submit(
        &self,
        spec: TurnSpec,
    ) -> Result<mpsc::UnboundedReceiver<TurnEvent>, ServeError> {
        self.submit_with(spec, Arc::default()).await
    }

    /// [`Self::submit`], with the request's metadata for the operators' views.
    pub async fn submit_with(
        &self,
        spec: TurnSpec,
        meta: Arc<RequestMeta>,
    ) -> Result<mpsc::UnboundedReceiver<TurnEvent>, ServeError> {
        let (events, rx) = mpsc::unbounded_channel();
        self.addr
            .send(Submit(spec.with_events(events, meta)))
            .timeout(SEND_DEADLINE)
            .await
            .map_err(mailbox_error)?;
        Ok(rx)
    }

    pub async fn pools(&self) -> Result<Vec<PoolStatus>, ServeError> {
        self.addr
            .send(GetPoolStatus)
            .timeout(SEND_DEADLINE)
            .await
            .map_err(mailbox_error)
    }

    /// Sends an admin message (see `messages`) with the usual deadline.
    pub async fn admin<M>(&self, msg: M) -> Result<M::Result, ServeError>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        SessionSupervisor: actix::Handler<M>,
    {
        self.addr
            .send(msg)
            .timeout(SEND_DEADLINE)
            .await
            .map_err(mailbox_error)
    }

    pub async fn health(&self) -> Result<HealthStatus, ServeError> {
        self.addr
            .send(GetHealth)
            .timeout(SEND_DEADLINE)
            .await
            .map_err(mailbox_error)
    }

    pub async fn readiness(&self) -> Result<Readiness, ServeError> {
        self.addr
            .send(GetReadiness)
            .timeout(SEND_DEADLINE)
            .await
            .map_err(mailbox_error)
    }

    /// Ends every process; returns once none is left (or `grace` plus a margin has passed).
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = grace + Duration::from_secs(10);
        if let Err(e) = self.addr.send(Shutdown { grace }).timeout(deadline).await {
            log::warn!("supervisor shutdown did not complete: {e}");
        }
    }
}
