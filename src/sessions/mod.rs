//! The native API's persisted sessions. [`SessionStore`] is the one owner of the transcripts
//! directory and of the in-memory index of their summaries; handlers reach it through
//! [`SessionStoreHandle`], with a deadline. [`store`] is the file format, sans-IO.
//!
//! The store is a `SyncArbiter` actor on a thread of its own: its file IO (reads, appends,
//! fsyncs) blocks that thread only, never the HTTP workers, and its messages are handled one at a
//! time, so two appends to one transcript never interleave. A transcript is appended to, and
//! fsynced, before the answer it records is sent; at startup every transcript is read back (a
//! torn last line is skipped) and the retention rule applied, then again hourly and after each
//! new session.

mod files;
pub mod messages;
pub mod store;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::config::SessionSettings;
pub use files::SessionStore;
use messages::*;
use store::{Filter, Retention, Summary};

/// Longest a handler waits for the store: it may be queued behind other fsyncs on a slow disk.
const ASK_DEADLINE: Duration = Duration::from_secs(10);

/// How often sessions past `[sessions]` retention are deleted while the server runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Not a session id (32 lowercase hex digits): refused before any file is named by it.
    #[error("invalid session id {id:?}: a session id is 32 lowercase hex digits")]
    InvalidId { id: String },
    /// No such session (or not the client's own).
    #[error("no session {id}")]
    NotFound { id: String },
    /// The transcripts directory failed a read or write.
    #[error("session storage failed for {what}: {reason}")]
    Storage { what: String, reason: String },
    /// The store did not answer in time.
    #[error("the session store is unavailable")]
    Unavailable,
}

impl SessionError {
    fn storage(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Storage {
            what: what.into(),
            reason: e.to_string(),
        }
    }
}

/// Milliseconds since the Unix epoch, the transcripts' clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where transcripts live: `sessions.dir`, or `<state_dir>/sessions`.
pub fn dir_of(settings: &SessionSettings, state_dir: &Path) -> PathBuf {
    match settings.dir.as_os_str().is_empty() {
        true => state_dir.join("sessions"),
        false => settings.dir.clone(),
    }
}

impl From<&SessionSettings> for Retention {
    fn from(s: &SessionSettings) -> Self {
        Retention {
            max_age: (s.max_age_days > 0).then(|| Duration::from_secs(s.max_age_days * 86_400)),
            max_count: (s.max_count > 0).then_some(s.max_count),
        }
    }
}

/// The handlers' way to the store.
#[derive(Clone)]
pub struct SessionStoreHandle {
    addr: Addr<SessionStore>,
}

impl SessionStoreHandle {
    /// Starts the store on a thread of its own (it reads the directory there first) and the
    /// hourly retention timer. Must run inside an actix system.
    pub fn start(settings: &SessionSettings, state_dir: &Path) -> Self {
        let dir = dir_of(settings, state_dir);
        let retention = Retention::from(settings);
        let addr = SyncArbiter::start(1, move || SessionStore::open(dir.clone(), retention));
        // A weak address: the timer must not keep a stopped server's store alive.
        let weak = addr.downgrade();
        actix_rt::spawn(async move {
            let mut every = actix_rt::time::interval(RETENTION_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(addr) = weak.upgrade() else { return };
                if let Err(e) = addr.send(ApplyRetention).await {
                    log::warn!("session retention: {e}");
                }
            }
        });
        Self { addr }
    }

    async fn ask<M>(&self, msg: M) -> Result<M::Result, SessionError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        SessionStore: Handler<M>,
    {
        self.addr
            .send(msg)
            .timeout(ASK_DEADLINE)
            .await
            .map_err(|e| {
                log::error!("session store did not answer: {e}");
                SessionError::Unavailable
            })
    }

    pub async fn create(&self, msg: CreateSession) -> Result<Summary, SessionError> {
        self.ask(msg).await?
    }

    pub async fn append(
        &self,
        id: &str,
        owner: Option<String>,
        entry: Appended,
    ) -> Result<Summary, SessionError> {
        let id = checked(id)?;
        self.ask(AppendTurn { id, owner, entry }).await?
    }

    pub async fn get(
        &self,
        id: &str,
        owner: Option<String>,
    ) -> Result<SessionTranscript, SessionError> {
        let id = checked(id)?;
        self.ask(GetSession { id, owner }).await?
    }

    pub async fn list(&self, filter: Filter) -> Result<SessionPage, SessionError> {
        self.ask(ListSessions { filter }).await
    }

    pub async fn delete(&self, id: &str, owner: Option<String>) -> Result<(), SessionError> {
        let id = checked(id)?;
        self.ask(DeleteSession { id, owner }).await?
    }
}

fn checked(id: &str) -> Result<String, SessionError> {
    match store::valid_id(id) {
        true => Ok(id.to_string()),
        false => Err(SessionError::InvalidId { id: id.to_string() }),
    }
}
