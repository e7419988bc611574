//! The Gemini CLI's Agent Client Protocol (`gemini --acp`, JSON-RPC 2.0) as a [`Driver`]: many
//! conversations per process, each in an ACP session of its own.
//!
//! A turn creates a session (`session/new`, or with prior history a session file the server
//! writes and `session/load`), pins the session's model, sends the prompt and streams the
//! session's `agent_message_chunk` updates; the prompt's response ends the turn. The session is
//! then dropped and its chat files removed: the CLI has no way to free a session, so a process
//! that opened `max_sessions` reports its slots not reusable and is recycled.
//!
//! The CLI reads the system prompt from the file `GEMINI_SYSTEM_MD` names each time it creates
//! a session, so the driver rewrites that file before every creation and creates one session
//! at a time per process; the other turns wait their turn in `waiting`.
//!
//! A turn asked to keep its conversation that ends cleanly (answered, not interrupted, and not
//! the turn that reached `max_sessions`: that process is recycled) keeps its session and its
//! chat files instead (`Kept`); a kept session counts against the process's conversations. A
//! turn that resumes it prompts that session at once: no system prompt file, no creation, the
//! model already pinned (set again only if it differs). A live ACP session takes no history
//! without a model call, so the resumed turn's new messages — only ever the user messages
//! before its prompt — go first in its prompt, as blocks of the one user message the model
//! answers. That is faithful: the CLI sends consecutive user messages of a loaded history as
//! one user content too (measured: a parked and a replayed follow-up reach the upstream alike).
//! `forget` drops the session and removes its chat files; a resumed turn that fails is dropped
//! as any other.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use serde_json::{json, Value};

use super::gemini_conversation::{Conversation, Stage};
use super::gemini_wire::{self as wire, BACKEND};
use super::jsonrpc::{Incoming, Rpc, RpcError};
use super::{Driver, DriverEvent, FileOp, Outbox, TurnInput};
use crate::error::ServeError;
use crate::process::messages::{ConversationId, TurnId};
use crate::protocol::TurnEvent;

/// What a Gemini driver needs to know about its process.
#[derive(Debug, Clone)]
pub struct GeminiParams {
    /// The process's `GEMINI_CLI_HOME`: chats live in `<home>/.gemini/tmp/<cwd name>/chats`.
    pub home: PathBuf,
    /// The process's working directory, where its sessions are created.
    pub cwd: PathBuf,
    /// The file `GEMINI_SYSTEM_MD` names.
    pub system_md: PathBuf,
    /// The model of a turn that names none (never "auto": that costs a second upstream call).
    pub default_model: String,
    /// Conversations at once.
    pub conversations: usize,
    /// Sessions the process opens before it is recycled.
    pub max_sessions: u32,
}

/// What a request of ours was for.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Initialize,
    /// `session/new` or `session/load` of a turn.
    Create(TurnId),
    SetModel(TurnId),
    Prompt(TurnId),
}

/// The event that tells the actor `initialize` was answered.
#[derive(Debug, Clone, Copy)]
enum Announce {
    Probed,
    Ready,
}

#[derive(Debug)]
enum Startup {
    Fresh,
    Initializing(Announce),
    /// Answered `initialize`: takes turns (the system prompt comes with each turn).
    Up,
}

#[derive(Debug)]
pub struct GeminiDriver {
    process: u64,
    params: GeminiParams,
    /// Where the CLI keeps this process's chat files.
    chats: PathBuf,
    rpc: Rpc<Purpose>,
    startup: Startup,
    conversations: BTreeMap<TurnId, Conversation>,
    /// Session id → its turn: every `session/update` names its session.
    sessions: HashMap<String, TurnId>,
    /// Turns waiting to create their session, first come first served.
    waiting: VecDeque<TurnId>,
    /// The turn whose session is being created (its system prompt is in the file).
    creating: Option<TurnId>,
    sessions_opened: u32,
    /// Sessions kept after a clean turn, by conversation, until a turn resumes or the
    /// supervisor forgets them.
    kept: HashMap<ConversationId, Kept>,
}

/// A session kept in the CLI after its turn.
#[derive(Debug)]
struct Kept {
    session: String,
    /// The model the session is pinned to.
    model: String,
}

impl GeminiDriver {
    pub fn new(process: u64, params: GeminiParams) -> Self {
        let project = params.cwd.file_name().unwrap_or_default();
        let chats = params.home.join(".gemini/tmp").join(project).join("chats");
        Self {
            process,
            params,
            chats,
            rpc: Rpc::new(true),
            startup: Startup::Fresh,
            conversations: BTreeMap::new(),
            sessions: HashMap::new(),
            waiting: VecDeque::new(),
            creating: None,
            sessions_opened: 0,
            kept: HashMap::new(),
        }
    }

    fn initialize(&mut self, announce: Announce, out: &mut Outbox) {
        let params = wire::initialize_params();
        self.rpc
            .request("initialize", params, Purpose::Initialize, out);
        self.startup = Startup::Initializing(announce);
    }

    /// Starts the next waiting turn's session creation, unless one is under way.
    fn create_next(&mut self, out: &mut Outbox) {
        if self.creating.is_some() {
            return;
        }
        let Some(turn) = self.waiting.pop_front() else {
            return;
        };
        let Some(conv) = self.conversations.get_mut(&turn) else {
            return self.create_next(out);
        };
        conv.stage = Stage::Creating;
        self.creating = Some(turn);
        self.sessions_opened += 1;
        out.file(FileOp::Write {
            path: self.params.system_md.clone(),
            contents: conv.system_prompt.clone(),
            turn: Some(turn),
        });
        let cwd = self.params.cwd.display().to_string();
        match std::mem::take(&mut conv.history) {
            history if history.is_empty() => {
                let params = json!({"cwd": cwd, "mcpServers": []});
                self.rpc
                    .request("session/new", params, Purpose::Create(turn), out);
            }
            history => {
                let session = uuid::Uuid::new_v4().to_string();
                out.file(FileOp::Write {
                    path: self.chats.join(wire::session_file_name(&session)),
                    contents: wire::session_file(&session, &history),
                    turn: Some(turn),
                });
                conv.session = Some(session.clone());
                self.sessions.insert(session.clone(), turn);
                let params = json!({"sessionId": session, "cwd": cwd, "mcpServers": []});
                self.rpc
                    .request("session/load", params, Purpose::Create(turn), out);
            }
        }
    }

    fn on_response(&mut self, purpose: Purpose, result: Result<Value, RpcError>, out: &mut Outbox) {
        let turn = match purpose {
            Purpose::Initialize => return self.on_initialized(result, out),
            Purpose::Create(turn) => {
                // Created or not, the next turn may create its session now.
                self.creating = None;
                turn
            }
            Purpose::SetModel(turn) | Purpose::Prompt(turn) => turn,
        };
        self.on_turn_response(turn, purpose, result, out);
        self.create_next(out);
    }

    fn on_turn_response(
        &mut self,
        turn: TurnId,
        purpose: Purpose,
        result: Result<Value, RpcError>,
        out: &mut Outbox,
    ) {
        let Some(conv) = self.conversations.get_mut(&turn) else {
            return log::debug!("process {}: answer for ended turn {turn}", self.process);
        };
        let result = match (purpose, result) {
            (Purpose::Prompt(_), Ok(answer)) => {
                let text = std::mem::take(&mut conv.text);
                return self.end_turn(turn, wire::outcome(&answer, text), out);
            }
            (Purpose::Prompt(_), Err(e)) => Err(wire::failure("session/prompt", &e)),
            (Purpose::Create(_), Ok(created)) => {
                if conv.session.is_none() {
                    match created["sessionId"].as_str() {
                        Some(id) => {
                            conv.session = Some(id.to_string());
                            self.sessions.insert(id.to_string(), turn);
                        }
                        None => {
                            let detail =
                                format!("session/new answered without a session: {created}");
                            return out.event(DriverEvent::Violation(detail));
                        }
                    }
                }
                Ok(())
            }
            (Purpose::Create(_), Err(e)) => Err(wire::failure("session creation", &e)),
            (_, Ok(_)) => Ok(()),
            (_, Err(e)) => Err(wire::failure("session/set_model", &e)),
        };
        match result {
            Err(error) => self.end_turn(turn, TurnEvent::Failed(error), out),
            Ok(()) => self.advance(turn, out),
        }
    }

    fn on_initialized(&mut self, result: Result<Value, RpcError>, out: &mut Outbox) {
        let Startup::Initializing(announce) = self.startup else {
            return;
        };
        match result {
            Ok(_) => {
                self.startup = Startup::Up;
                out.event(match announce {
                    Announce::Probed => DriverEvent::Probed,
                    Announce::Ready => DriverEvent::Ready,
                });
            }
            Err(e) => out.event(DriverEvent::StartFailed(format!("initialize failed: {e}"))),
        }
    }

    /// Takes the step after the one just answered, or ends an interrupted turn.
    fn advance(&mut self, turn: TurnId, out: &mut Outbox) {
        let Some(conv) = self.conversations.get_mut(&turn) else {
            return;
        };
        if conv.interrupted {
            return self.end_turn(turn, TurnEvent::Failed(ServeError::Cancelled), out);
        }
        let session = conv.session.clone().unwrap_or_default();
        match conv.stage {
            Stage::Creating => {
                conv.stage = Stage::SettingModel;
                let params = json!({"sessionId": session, "modelId": conv.model});
                self.rpc
                    .request("session/set_model", params, Purpose::SetModel(turn), out);
            }
            Stage::SettingModel => {
                conv.stage = Stage::Prompting;
                let params = json!({"sessionId": session, "prompt": conv.prompt});
                self.rpc
                    .request("session/prompt", params, Purpose::Prompt(turn), out);
            }
            Stage::Waiting | Stage::Prompting => {}
        }
    }

    /// Gives `turn` its final event, drops its session and frees its slot.
    fn end_turn(&mut self, turn: TurnId, event: TurnEvent, out: &mut Outbox) {
        let Some(conv) = self.conversations.remove(&turn) else {
            return;
        };
        self.waiting.retain(|t| *t != turn);
        if self.creating == Some(turn) {
            self.creating = None;
        }
        let reusable = self.sessions_opened < self.params.max_sessions;
        let clean = conv.keep && !conv.interrupted && reusable;
        let clean = clean && matches!(event, TurnEvent::Done(_));
        if let Some(session) = &conv.session {
            self.sessions.remove(session);
            if clean {
                let model = conv.model.clone();
                let session = session.clone();
                self.kept.insert(conv.conversation, Kept { session, model });
            } else {
                self.remove_chats(session, out);
            }
        }
        conv.finish(turn, event, out);
        out.event(match (clean, &conv.session) {
            (true, Some(_)) => DriverEvent::Kept { turn },
            _ => DriverEvent::Released { turn, reusable },
        });
        self.create_next(out);
    }

    /// Removes the chat files the CLI recorded for `session`.
    fn remove_chats(&self, session: &str, out: &mut Outbox) {
        out.file(FileOp::Remove {
            dir: self.chats.clone(),
            suffix: wire::chat_suffix(session),
        });
    }

    /// Continues the kept session of `input`'s conversation with `conv`'s prompt.
    fn resume(&mut self, turn: TurnId, mut conv: Conversation, out: &mut Outbox) {
        let Some(kept) = self.kept.remove(&conv.conversation) else {
            return out.conversation_lost(turn, BACKEND);
        };
        // `advance` from `Creating` pins the model, from `SettingModel` prompts.
        conv.stage = match kept.model == conv.model {
            true => Stage::SettingModel,
            false => Stage::Creating,
        };
        self.sessions.insert(kept.session.clone(), turn);
        conv.session = Some(kept.session);
        self.conversations.insert(turn, conv);
        self.advance(turn, out);
    }

    fn on_update(&mut self, params: &Value, out: &mut Outbox) {
        let session = params["sessionId"].as_str().unwrap_or_default();
        let Some(&turn) = self.sessions.get(session) else {
            return;
        };
        if let Some(conv) = self.conversations.get_mut(&turn) {
            conv.on_update(turn, &params["update"], out);
        }
    }

    /// The CLI asks something of us: nothing may wait on an answer.
    fn on_request(&mut self, id: &Value, method: &str, params: &Value, out: &mut Outbox) {
        log::warn!("process {}: the CLI asked {method}; refused", self.process);
        match wire::answer_request(method, params) {
            Some(answer) => self.rpc.respond(id, answer, out),
            None => self
                .rpc
                .respond_error(id, -32601, "not supported by this server", out),
        }
    }

    /// Fails a turn that never reached the CLI, and frees its slot.
    fn refuse(&self, turn: TurnId, error: ServeError, out: &mut Outbox) {
        out.turn(turn, TurnEvent::Failed(error));
        out.event(DriverEvent::Released {
            turn,
            reusable: self.sessions_opened < self.params.max_sessions,
        });
    }
}

impl Driver for GeminiDriver {
    fn capacity(&self) -> usize {
        self.params.conversations.max(1)
    }

    fn probe(&mut self, out: &mut Outbox) {
        if let Startup::Fresh = self.startup {
            self.initialize(Announce::Probed, out);
        }
    }

    /// The system prompt comes with each turn: binding only initializes (if a probe did not).
    fn bind(
        &mut self,
        _system_prompt: &str,
        _schema: Option<&Value>,
        _tools: &[crate::protocol::tools::ClientTool],
        out: &mut Outbox,
    ) {
        match self.startup {
            Startup::Fresh => self.initialize(Announce::Ready, out),
            Startup::Initializing(_) => self.startup = Startup::Initializing(Announce::Ready),
            Startup::Up => out.event(DriverEvent::Ready),
        }
    }

    fn begin(&mut self, turn: TurnId, input: TurnInput, out: &mut Outbox) {
        let held = self.conversations.len() + self.kept.len();
        let room = held < self.capacity() || input.resume;
        if !matches!(self.startup, Startup::Up) || !room {
            let reason = "the process given the request had no free slot".into();
            let error = ServeError::BackendUnavailable {
                backend: BACKEND,
                reason,
            };
            return self.refuse(turn, error, out);
        }
        let input_resumes = input.resume;
        let conv = match Conversation::new(input, &self.params.default_model) {
            Ok(conv) => conv,
            Err(error) => return self.refuse(turn, error, out),
        };
        if input_resumes {
            return self.resume(turn, conv, out);
        }
        self.conversations.insert(turn, conv);
        self.waiting.push_back(turn);
        self.create_next(out);
    }

    /// The CLI cannot free a session: dropping it means no turn uses it again.
    fn forget(&mut self, conversation: ConversationId, out: &mut Outbox) {
        if let Some(kept) = self.kept.remove(&conversation) {
            self.remove_chats(&kept.session, out);
        }
    }

    fn interrupt(&mut self, turn: TurnId, out: &mut Outbox) {
        let Some(conv) = self.conversations.get_mut(&turn) else {
            return;
        };
        if conv.interrupted {
            return;
        }
        conv.interrupted = true;
        let session = conv.session.clone();
        match conv.stage {
            Stage::Waiting => self.end_turn(turn, TurnEvent::Failed(ServeError::Cancelled), out),
            // A request is out: its answer ends the turn.
            Stage::Creating | Stage::SettingModel => {}
            Stage::Prompting => {
                let params = json!({"sessionId": session});
                self.rpc.notify("session/cancel", Some(params), out);
            }
        }
    }

    fn on_line(&mut self, line: &str, out: &mut Outbox) {
        if line.trim().is_empty() {
            return;
        }
        match self.rpc.parse(line) {
            Err(detail) => out.event(DriverEvent::Violation(detail)),
            Ok(Incoming::Response { purpose, result }) => self.on_response(purpose, result, out),
            Ok(Incoming::Unexpected { id }) => {
                log::warn!(
                    "process {}: answer to no request of ours: {id}",
                    self.process
                );
            }
            Ok(Incoming::Notification { method, params }) => {
                if method == "session/update" {
                    self.on_update(&params, out);
                }
            }
            Ok(Incoming::Request { id, method, params }) => {
                self.on_request(&id, &method, &params, out)
            }
        }
    }
}

#[cfg(test)]
#[path = "gemini_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "gemini_keep_tests.rs"]
mod keep_tests;
