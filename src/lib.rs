//! clinvoker serves the Anthropic Messages API, the OpenAI Chat Completions API and a native REST
//! API from pools of long-lived AI coding CLI processes — Claude Code, the Codex CLI and the
//! Gemini CLI — so programs written against the official SDKs can use a CLI as their model
//! without paying a cold start per request.
//!
//! # Layout
//! - [`config`]: typed settings (compiled-in `config/default.toml`, a file, `CLINVOKER__…` env).
//! - [`app`]: starts the supervisor and the HTTP server; graceful shutdown.
//! - [`api`]: the HTTP edge. One module per dialect — [`api::anthropic`], [`api::openai`],
//!   [`api::native`] (with [`api::batch`] and [`api::sessions`]) — plus operators' routes ([`api::admin`], [`api::ops`]),
//!   SSE rendering ([`api::sse`]), the OpenAPI document ([`api::openapi`]) and [`api::error`],
//!   where every failure gets its status in one exhaustive match per dialect. The `edge`
//!   middleware assigns request ids, checks keys against [`api::access`] (who may use which
//!   route), logs one line per request.
//! - [`protocol`]: the dialect-neutral turn types between the layers, and each dialect's wire
//!   format; [`protocol::stop`] watches streamed text for stop sequences, [`protocol::schema`]
//!   checks structured-output schemas and answers.
//! - [`routing`]: model names → backend and CLI model.
//! - [`limits`]: who a request's client is (a key's name or hash, or its address) and what it may
//!   do; the token buckets of the [`limits::RateLimiter`] actor.
//! - [`supervisor`]: the session-supervisor actor. [`supervisor::pool`] is its pure bookkeeping
//!   (`balance` its start/bind/retire policy, `dispatch` which process takes a request, `finish`
//!   what a turn's end frees or parks, `fair`
//!   which waiting client is served next and the per-client caps, [`supervisor::parking`]
//!   which parked conversation a request continues,
//!   [`supervisor::stats`] its counters),
//!   [`supervisor::admin`] the operators' commands and snapshots.
//! - [`process`]: the process actor ([`process::CliProcess`]) wrapping one CLI child: pipes,
//!   watchdogs, stall timers, lifecycle, the turns it runs. [`process::driver`] holds one sans-IO
//!   driver per CLI protocol — Claude Code's stream-json, Codex's app-server JSON-RPC, Gemini's
//!   ACP — with shared JSON-RPC correlation (lines and turn events in and out, no IO);
//!   [`process::spawn`] is the only code that starts processes (and writes their private homes).
//! - [`sessions`]: the native API's persisted sessions: the [`sessions::SessionStore`] actor (on
//!   a thread of its own) owns the transcripts directory, one append-only JSON-lines file per
//!   session; [`sessions::store`] is that file format, sans-IO (torn last lines, retention).
//!   [`api::sessions`] serves them; a prompt with a `session_id` gets that session's turns as its
//!   [`protocol::TurnSpec`] history (replay), recorded after the answer (`api/resume.rs`).
//! - [`metrics`]: Prometheus collectors; [`error`]: the failures below the HTTP layer.
//!
//! # Theory of operation
//! A handler validates the request and builds a [`protocol::TurnSpec`]: the pool key (what a live
//! process cannot change: its backend, and for Claude Code its system prompt, structured-output
//! schema and client tools), the CLI model, the prior turns, the prompt, stop sequences and schema. It
//! submits it through [`supervisor::SupervisorHandle`] and gets back the receiving end of the
//! turn's event channel.
//!
//! The [`supervisor::SessionSupervisor`] owns every pool. It gives the turn to a free
//! conversation slot of a process of the pool, or queues it (bounded, with a timeout) while a process is started or a spare is bound
//! to the pool's system prompt, or refuses it at once when the queue is full. Nothing else holds
//! pool state: limits, queueing and recovery are messages to and from this actor. Before that, the
//! edge has named the request's client (carried in [`protocol::RequestMeta`]) and taken a token
//! from its bucket; whenever a process frees up, the waiting clients of its pool are served in
//! turn (weighted fair queueing), so one client's flood cannot starve another.
//!
//! A [`process::CliProcess`] hands the turn to its driver, which turns it into the CLI's lines
//! (Claude Code: switch model if needed, replay the prior turns as `shouldQuery:false` user lines
//! and assistant lines so the model sees real history, send the prompt) and the CLI's output into
//! typed, dialect-neutral [`protocol::TurnEvent`]s for the turn's channel. Client tools are an
//! SDK MCP server the driver itself serves Claude Code, and a Codex thread's dynamic tools whose
//! calls the driver takes: when the model stops to call them, the turn's final event is the
//! `tool_use` answer. The final event goes to
//! the client at once; the driver then either keeps the conversation (when the supervisor asked
//! and the turn ended cleanly: it is *parked*) or resets the conversation slot
//! (`rewind_conversation`), and only then does the supervisor count the slot as free. A later
//! request whose history equals a parked conversation's goes to the process that holds it with
//! only its new messages; a new conversation that needs the slot has the parked one forgotten
//! (reset) first. A turn that stopped for client tools is parked with its calls unanswered: the
//! follow-up whose new message holds exactly their results answers them, and the model goes on.
//! A request timeout or a dropped receiver (client gone) interrupts the turn (the client gets its
//! error at once, the slot is freed when the CLI stops); a child that does not stop, writes
//! garbage or never becomes ready is killed; its exit is reported to the supervisor, which
//! replaces it.
//!
//! Who owns what: a process reports its lifecycle (starting, ready, draining, exited) and the end
//! of each turn; the supervisor owns occupancy (which turn runs in which conversation slot of
//! which process, by turn id). Interrupts, cancels and reports name the turn.
//!
//! The handler renders the events: collected into one response, or streamed as SSE. A failure
//! before the first event is an HTTP error status; after it, a final `error` event.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod process;
pub mod protocol;
pub mod routing;
pub mod sessions;
pub mod supervisor;
