//! Starting processes: the book each backend's pools begin with, the spawn spec and driver of
//! each backend's processes, and carrying out a start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use actix::prelude::*;

use super::pool::Book;
use super::SessionSupervisor;
use crate::config::{Backend, Settings};
use crate::process::driver::claude::ClaudeDriver;
use crate::process::driver::codex::CodexDriver;
use crate::process::driver::gemini::GeminiDriver;
use crate::process::driver::Driver;
use crate::process::spawn::{GeminiPaths, SpawnSpec};
use crate::process::{Bind, CliProcess, Probe};
use crate::protocol::PoolKey;

impl SessionSupervisor {
    /// The book, serving every installed backend besides Claude Code.
    pub(super) fn book(
        settings: &Settings,
        installed: &BTreeMap<Backend, Option<PathBuf>>,
    ) -> Book {
        let mut book = Book::new(settings.pool.clone());
        let found = |b: Backend| installed.get(&b).is_some_and(Option::is_some);
        let (codex, gemini) = (&settings.backends.codex, &settings.backends.gemini);
        if found(Backend::Codex) {
            book.serve(
                Backend::Codex,
                codex.conversations_per_process,
                codex.min_idle,
            );
        }
        if found(Backend::Gemini) {
            book.serve(
                Backend::Gemini,
                gemini.conversations_per_process,
                gemini.min_idle,
            );
        }
        book
    }

    /// How process `id` of `backend` is started, and the driver that speaks its protocol.
    fn launch(
        &self,
        id: u64,
        backend: Backend,
        pool: Option<&PoolKey>,
    ) -> (SpawnSpec, Box<dyn Driver>) {
        let b = &self.settings.backends;
        let state_dir = &self.settings.server.state_dir;
        match backend {
            Backend::Claude => {
                let spec = match pool {
                    Some(key) => self.spec.for_pool(key, &self.settings.profiles.agentic),
                    None => self.spec.clone(),
                };
                let driver = ClaudeDriver::new(id, b.claude.default_model.clone());
                (spec, Box::new(driver))
            }
            Backend::Codex => {
                let program = self.installed.get(&backend).cloned().flatten();
                let program = program.unwrap_or_else(|| PathBuf::from(&b.codex.command));
                let spec = SpawnSpec::codex(&b.codex, &program, state_dir, id);
                let driver = CodexDriver::new(
                    b.codex.conversations_per_process,
                    b.codex.base_instructions.clone(),
                );
                (spec, Box::new(driver))
            }
            Backend::Gemini => {
                let mut spec = SpawnSpec::gemini(&b.gemini, state_dir, id);
                if let Some(Some(program)) = self.installed.get(&backend) {
                    spec.program.clone_from(program);
                }
                let params = GeminiPaths::new(state_dir, id).driver_params(&b.gemini, &spec);
                (spec, Box::new(GeminiDriver::new(id, params)))
            }
        }
    }

    pub(super) fn start_process(
        &mut self,
        id: u64,
        backend: Backend,
        pool: Option<PoolKey>,
        ctx: &mut Context<Self>,
    ) {
        let (spec, driver) = self.launch(id, backend, pool.as_ref());
        if let Some(home) = &spec.fresh_dir {
            self.homes.insert(id, home.clone());
        }
        match spec.spawn() {
            Ok((io, pid)) => {
                self.book.started(id, pid);
                let addr = CliProcess::start(
                    id,
                    io,
                    backend.name(),
                    driver,
                    self.limits,
                    ctx.address().recipient(),
                );
                let pool_name = pool
                    .as_ref()
                    .map_or_else(|| "spare".to_string(), PoolKey::name);
                log::info!("process {id}: started pid {pid} for pool {pool_name}");
                match pool {
                    Some(key) => addr.do_send(Bind {
                        output_schema: key.schema(),
                        tools: key.tools(),
                        system_prompt: key.system_prompt,
                    }),
                    None => addr.do_send(Probe),
                }
                self.addrs.insert(id, addr);
            }
            Err(e) => {
                let reason = format!(
                    "cannot start `{}` in {}: {e}",
                    spec.program.display(),
                    spec.cwd.display()
                );
                log::error!("process {id}: {reason}");
                if let Some(home) = self.homes.remove(&id) {
                    let _ = std::fs::remove_dir_all(home);
                }
                let actions = self.book.exited(id, false, &reason, Instant::now());
                self.run(actions, ctx);
            }
        }
    }
}
