//! What the supervisor tells probes and operators about the instance as a whole: liveness and
//! the CLIs found (`GetHealth`), readiness for a load balancer (`GetReadiness`), and the
//! operator's drain of the instance (`DrainInstance`).

use actix::prelude::*;

use super::messages::*;
use super::{Phase, SessionSupervisor, StateName};
use crate::config::Backend;

impl Handler<GetHealth> for SessionSupervisor {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        let procs = &self.book.processes;
        let count = |s: StateName| procs.values().filter(|p| p.state() == s).count();
        let cli = |backend: Backend| {
            let path = self.installed.get(&backend).cloned().flatten();
            CliHealth {
                command: crate::routing::command_of(&self.settings, backend).to_string(),
                found: path.is_some(),
                served: path.is_some() || backend == Backend::Claude,
                path: path.map(|p| p.display().to_string()),
                version: self.versions.get(&backend).cloned(),
            }
        };
        let claude = cli(Backend::Claude);
        let degraded = !claude.found || self.book.start_failures > 0;
        MessageResult(HealthStatus {
            status: if degraded { "degraded" } else { "ok" },
            start_failures: self.book.start_failures,
            last_start_error: self.book.last_start_error.clone(),
            backends: BackendHealth {
                claude,
                codex: cli(Backend::Codex),
                gemini: cli(Backend::Gemini),
            },
            pools: self.book.pools.len(),
            processes: procs.len(),
            idle: count(StateName::Idle),
            busy: count(StateName::Busy) + count(StateName::Resetting),
            starting: count(StateName::Starting),
            queued: self.book.pools.values().map(|p| p.queue.len()).sum(),
        })
    }
}

impl Handler<GetReadiness> for SessionSupervisor {
    type Result = MessageResult<GetReadiness>;

    fn handle(&mut self, _: GetReadiness, _: &mut Self::Context) -> Self::Result {
        let reasons = match self.phase {
            Phase::ShuttingDown { .. } => vec!["shutting down".to_string()],
            Phase::Drained => vec!["drained by an operator".to_string()],
            Phase::Running => self.book.unready_pools(),
        };
        MessageResult(Readiness {
            ready: reasons.is_empty(),
            reasons,
        })
    }
}

impl Handler<DrainInstance> for SessionSupervisor {
    type Result = MessageResult<DrainInstance>;

    fn handle(&mut self, msg: DrainInstance, ctx: &mut Self::Context) -> Self::Result {
        match (&self.phase, msg.drain) {
            (Phase::Running, true) => {
                log::info!("instance drained (admin): refusing new turns, /ready answers 503");
                self.phase = Phase::Drained;
            }
            (Phase::Drained, false) => {
                log::info!("instance resumed (admin)");
                self.phase = Phase::Running;
            }
            // Already so, or shutting down: nothing to change.
            (Phase::Running, false) | (Phase::Drained, true) | (Phase::ShuttingDown { .. }, _) => {}
        }
        MessageResult(<Self as Handler<GetReadiness>>::handle(self, GetReadiness, ctx).0)
    }
}
