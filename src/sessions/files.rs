//! [`SessionStore`]: the sync actor that owns the transcripts directory and the index of their
//! summaries. Its handlers do blocking file IO on the store's own thread (see the module doc of
//! [`super`]); what a file means is [`super::store`]'s.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use actix::prelude::*;

use super::messages::*;
use super::store::{self, Header, Record, Retention, Summary};
use super::{now_ms, SessionError};

/// One indexed session: its summary and where its file's next line goes.
struct Indexed {
    summary: Summary,
    /// Bytes of the file up to its last terminated line (see [`store::Transcript`]).
    committed_len: u64,
}

pub struct SessionStore {
    dir: PathBuf,
    retention: Retention,
    /// Every readable transcript's summary, by id. Written only by this actor.
    index: HashMap<String, Indexed>,
}

impl Actor for SessionStore {
    type Context = SyncContext<Self>;
}

impl SessionStore {
    /// Reads every transcript in `dir` (created if missing), then applies `retention`. A file
    /// that cannot be read is logged and left alone: it never stops the server.
    pub fn open(dir: PathBuf, retention: Retention) -> Self {
        let mut store = Self {
            dir,
            retention,
            index: HashMap::new(),
        };
        if let Err(e) = fs::create_dir_all(&store.dir) {
            log::error!(
                "sessions: cannot create {}: {e}; sessions will fail",
                store.dir.display()
            );
        }
        let entries = match fs::read_dir(&store.dir) {
            Ok(entries) => entries,
            Err(e) => {
                log::error!("sessions: cannot read {}: {e}", store.dir.display());
                return store;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
                continue;
            };
            if store::valid_id(id) {
                store.load(id);
            }
        }
        let removed = store.apply_retention();
        log::info!(
            "sessions: {} in {} ({removed} removed by retention)",
            store.index.len(),
            store.dir.display()
        );
        store
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(store::file_name(id))
    }

    fn load(&mut self, id: &str) {
        let path = self.path(id);
        let transcript = match fs::read(&path).map(|b| store::decode(&b)) {
            Ok(Ok(t)) if t.header.id == id => t,
            Ok(Ok(t)) => {
                return log::warn!("sessions: {} names session {}", path.display(), t.header.id)
            }
            Ok(Err(e)) => return log::warn!("sessions: {} skipped: {e}", path.display()),
            Err(e) => return log::warn!("sessions: cannot read {}: {e}", path.display()),
        };
        if transcript.skipped > 0 {
            log::warn!(
                "sessions: {}: {} unreadable line(s) skipped (a torn last line is cut before the next append)",
                path.display(),
                transcript.skipped
            );
        }
        let indexed = Indexed {
            summary: store::summarize(&transcript),
            committed_len: transcript.committed_len,
        };
        self.index.insert(id.to_string(), indexed);
    }

    /// The indexed session `id`, if `owner` may see it.
    fn owned(&mut self, id: &str, owner: &Option<String>) -> Result<&mut Indexed, SessionError> {
        match self.index.get_mut(id) {
            Some(s) if owner.is_none() || s.summary.owner == *owner => Ok(s),
            _ => Err(SessionError::NotFound { id: id.to_string() }),
        }
    }

    fn apply_retention(&mut self) -> usize {
        let ids = self
            .index
            .values()
            .map(|s| (s.summary.id.as_str(), s.summary.last_used_ms));
        let gone = store::expired(ids, now_ms(), self.retention);
        for id in &gone {
            if let Err(e) = self.remove(id) {
                log::warn!("sessions: retention: {e}");
            }
        }
        gone.len()
    }

    fn remove(&mut self, id: &str) -> Result<(), SessionError> {
        match fs::remove_file(self.path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SessionError::storage(format!("session {id}"), e)),
        }
        self.index.remove(id);
        Ok(())
    }
}

/// Writes a new transcript: created exclusively, fsynced, and its directory entry too.
fn write_new(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    File::open(dir)?.sync_all()
}

/// Appends `line` after the first `committed_len` bytes (cutting off a torn tail), fsynced.
fn append(path: &Path, committed_len: u64, line: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().append(true).open(path)?;
    let len = file.metadata()?.len();
    if len != committed_len {
        log::warn!(
            "sessions: {} is {len} bytes, {committed_len} of them whole lines: cutting the rest",
            path.display()
        );
        file.set_len(committed_len)?;
    }
    file.write_all(line)?;
    file.sync_data()
}

impl Handler<CreateSession> for SessionStore {
    type Result = Result<Summary, SessionError>;

    fn handle(&mut self, msg: CreateSession, _: &mut Self::Context) -> Self::Result {
        let id = store::new_id();
        let header = Header {
            v: store::FORMAT_VERSION,
            id: id.clone(),
            created_at_ms: msg.turn.at_ms,
            backend: msg.backend,
            model: msg.model,
            system_prompt: msg.system_prompt,
            workdir: msg.workdir,
            owner: msg.owner,
        };
        let mut summary = Summary::new(&header);
        let (head, turn) = (Record::Session(header), Record::Turn(msg.turn));
        let mut bytes = store::encode(&head);
        bytes.extend(store::encode(&turn));
        let path = self.path(&id);
        write_new(&self.dir, &path, &bytes)
            .map_err(|e| SessionError::storage(path.display().to_string(), e))?;
        summary.apply(&turn);
        let committed_len = bytes.len() as u64;
        self.index.insert(
            id,
            Indexed {
                summary: summary.clone(),
                committed_len,
            },
        );
        self.apply_retention();
        Ok(summary)
    }
}

impl Handler<AppendTurn> for SessionStore {
    type Result = Result<Summary, SessionError>;

    fn handle(&mut self, msg: AppendTurn, _: &mut Self::Context) -> Self::Result {
        let path = self.path(&msg.id);
        let indexed = self.owned(&msg.id, &msg.owner)?;
        let record = Record::from(msg.entry);
        let line = store::encode(&record);
        append(&path, indexed.committed_len, &line)
            .map_err(|e| SessionError::storage(path.display().to_string(), e))?;
        indexed.committed_len += line.len() as u64;
        indexed.summary.apply(&record);
        Ok(indexed.summary.clone())
    }
}

impl Handler<GetSession> for SessionStore {
    type Result = Result<SessionTranscript, SessionError>;

    fn handle(&mut self, msg: GetSession, _: &mut Self::Context) -> Self::Result {
        let path = self.path(&msg.id);
        let summary = self.owned(&msg.id, &msg.owner)?.summary.clone();
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SessionError::NotFound { id: msg.id.clone() },
            _ => SessionError::storage(path.display().to_string(), e),
        })?;
        let transcript = store::decode(&bytes)
            .map_err(|e| SessionError::storage(path.display().to_string(), e))?;
        Ok(SessionTranscript {
            summary,
            records: transcript.records,
        })
    }
}

impl Handler<ListSessions> for SessionStore {
    type Result = MessageResult<ListSessions>;

    fn handle(&mut self, msg: ListSessions, _: &mut Self::Context) -> Self::Result {
        let (sessions, total) = store::page(self.index.values().map(|s| &s.summary), &msg.filter);
        MessageResult(SessionPage { sessions, total })
    }
}

impl Handler<DeleteSession> for SessionStore {
    type Result = Result<(), SessionError>;

    fn handle(&mut self, msg: DeleteSession, _: &mut Self::Context) -> Self::Result {
        self.owned(&msg.id, &msg.owner)?;
        self.remove(&msg.id)
    }
}

impl Handler<ApplyRetention> for SessionStore {
    type Result = usize;

    fn handle(&mut self, _: ApplyRetention, _: &mut Self::Context) -> usize {
        self.apply_retention()
    }
}
