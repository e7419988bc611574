//! What operators see and do: status snapshots (with each process's RSS and CPU time from
//! /proc), the in-flight request list, and the actions — drain, resume, resize, recycle, kill,
//! cancel — each a message to the supervisor, answered with the new state.

use std::collections::BTreeMap;
use std::time::Instant;

use actix::prelude::*;

use super::messages::*;
use super::pool::{Action, Book, StateName};
use super::SessionSupervisor;
use crate::error::ServeError;
use crate::protocol::PoolKey;

/// The pseudo-pool of spares (processes not bound to a system prompt yet).
pub const SPARE: &str = "spare";

impl Book {
    pub fn key_of(&self, id: &str) -> Option<PoolKey> {
        self.pools.keys().find(|k| k.id() == id).cloned()
    }

    /// Fails the queue, retires every process of the pool once its turn is over, and refuses
    /// new requests until [`Book::resume`].
    pub fn drain(&mut self, key: &PoolKey, now: Instant) -> Vec<Action> {
        let retry_after = std::time::Duration::from_secs(5);
        let mut actions = Vec::new();
        if let Some(pool) = self.pools.get_mut(key) {
            pool.draining = true;
            for waiting in pool.queue.drain(..) {
                pool.stats.counters.refused += 1;
                let error = ServeError::PoolDraining {
                    pool: key.name(),
                    retry_after,
                };
                actions.push(Action::Fail {
                    request: waiting.request,
                    error,
                });
            }
        }
        for (id, slot) in self.processes.iter_mut() {
            if slot.pool.as_ref() == Some(key) && !slot.retiring {
                slot.retiring = true;
                actions.push(Action::Retire { process: *id });
            }
        }
        actions.extend(self.rebalance(now));
        actions
    }

    pub fn resume(&mut self, key: &PoolKey, now: Instant) -> Vec<Action> {
        if let Some(pool) = self.pools.get_mut(key) {
            pool.draining = false;
        }
        self.rebalance(now)
    }

    /// New limits for one pool; idle processes beyond the new maximum retire.
    pub fn resize(
        &mut self,
        key: &PoolKey,
        max_processes: Option<usize>,
        min_idle: Option<usize>,
        now: Instant,
    ) -> Result<Vec<Action>, AdminError> {
        let max = max_processes.unwrap_or_else(|| self.max_for(key));
        let min = min_idle.unwrap_or_else(|| self.min_idle_for(key));
        if max == 0 || min > max || max > self.limits.max_total_processes {
            return Err(AdminError::Invalid(format!(
                "need 1 <= max_processes <= pool.max_total_processes ({}) and min_idle <= max_processes; got max_processes {max}, min_idle {min}",
                self.limits.max_total_processes
            )));
        }
        let pool = self.pools.entry(key.clone()).or_default();
        pool.max_processes = Some(max);
        pool.min_idle = Some(min);
        let mut actions = Vec::new();
        let mut excess = self.live_in(key).saturating_sub(max);
        for (id, slot) in self.processes.iter_mut() {
            if excess > 0 && slot.pool.as_ref() == Some(key) && !slot.retiring && slot.idle() {
                slot.retiring = true;
                excess -= 1;
                actions.push(Action::Retire { process: *id });
            }
        }
        actions.extend(self.rebalance(now));
        Ok(actions)
    }

    pub fn recycle(&mut self, id: u64) -> Result<Vec<Action>, AdminError> {
        let slot = self
            .processes
            .get_mut(&id)
            .ok_or(AdminError::UnknownProcess(id))?;
        if slot.retiring {
            return Ok(Vec::new());
        }
        slot.retiring = true;
        self.count_recycled(id);
        Ok(vec![Action::Retire { process: id }])
    }

    /// A queued request is refused at once; a running one is interrupted.
    pub fn cancel(&mut self, request_id: &str) -> Result<(Action, &'static str), AdminError> {
        for pool in self.pools.values_mut() {
            if let Some(pos) = pool
                .queue
                .iter()
                .position(|w| w.request.request_id == request_id)
            {
                if let Some(waiting) = pool.queue.remove(pos) {
                    pool.stats.counters.cancelled += 1;
                    let error = ServeError::CancelledByAdmin;
                    return Ok((
                        Action::Fail {
                            request: waiting.request,
                            error,
                        },
                        "queued",
                    ));
                }
            }
        }
        self.processes
            .iter()
            .find_map(|(id, s)| {
                let (turn, _) = s.running().find(|(_, o)| o.request_id == request_id)?;
                Some((*id, *turn))
            })
            .map(|(process, turn)| {
                (
                    Action::Interrupt {
                        process,
                        turn,
                        reason: ServeError::CancelledByAdmin,
                    },
                    "running",
                )
            })
            .ok_or_else(|| AdminError::UnknownRequest(request_id.to_string()))
    }
}

/// RSS (from `VmRSS`) and CPU time (utime + stime, in the kernel's fixed 100 Hz USER_HZ ticks).
fn proc_usage(pid: u32) -> (Option<u64>, Option<f64>) {
    if pid == 0 {
        return (None, None);
    }
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the parenthesised command name start at field 3 (`state`).
            let rest: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
            let ticks: u64 =
                rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        });
    (rss, cpu)
}

impl SessionSupervisor {
    pub(super) fn process_status(&self, id: u64, now: Instant) -> Option<ProcessStatus> {
        let s = self.book.processes.get(&id)?;
        let (rss_bytes, cpu_secs) = proc_usage(s.pid);
        Some(ProcessStatus {
            id,
            pid: s.pid,
            state: s.state(),
            slots_in_use: s.occupants.len(),
            slots: s.capacity,
            turns: s.turns,
            resets: s.resets,
            age_secs: now.duration_since(s.started).as_secs(),
            idle_secs: match s.state() {
                StateName::Idle => now.duration_since(s.last_used).as_secs(),
                _ => 0,
            },
            request_id: s.running().next().map(|(_, o)| o.request_id.clone()),
            retiring: s.retiring,
            rss_bytes,
            cpu_secs,
            last_error: s.last_error.clone(),
            parked: s.parked.iter().map(|p| p.view(now)).collect(),
        })
    }

    /// `key` None: the spares.
    pub(super) fn pool_status(&self, key: Option<&PoolKey>, now: Instant) -> PoolStatus {
        let p = &self.settings.pool;
        let queue = key.and_then(|k| self.book.pools.get(k));
        let stats = queue.map(|q| &q.stats);
        PoolStatus {
            id: key.map_or_else(|| SPARE.to_string(), PoolKey::id),
            name: key.map_or_else(|| format!("claude/{SPARE}"), PoolKey::name),
            backend: key.map_or("claude", |k| k.backend.name()),
            system_prompt: key.map(PoolKey::summary).unwrap_or_default(),
            draining: queue.is_some_and(|q| q.draining),
            limits: PoolLimitsView {
                max_processes: key.map_or(p.spare_processes, |k| self.book.max_for(k)),
                min_idle: key.map_or(p.spare_processes, |k| self.book.min_idle_for(k)),
                max_queue: p.max_queue,
                queue_timeout_secs: p.queue_timeout_secs,
                max_turns_per_process: p.max_turns_per_process,
            },
            queued: queue.map_or(0, |q| q.queue.len()),
            clients: key.map(|k| self.client_queues(k, now)).unwrap_or_default(),
            counters: stats.map_or(
                super::stats::Counters {
                    spawns: self.book.spare_spawns,
                    ..Default::default()
                },
                |s| s.counters,
            ),
            latency_ms: stats.map(|s| s.latency()).unwrap_or(super::stats::Latency {
                count: 0,
                p50: None,
                p95: None,
                p99: None,
            }),
            recent_errors: stats.map(|s| s.recent_errors(now)).unwrap_or_default(),
            processes: self
                .book
                .processes
                .iter()
                .filter(|(_, s)| s.pool.as_ref() == key)
                .filter_map(|(id, _)| self.process_status(*id, now))
                .collect(),
        }
    }

    /// Each client's waiting and running requests in pool `key`, most waiting first.
    fn client_queues(&self, key: &PoolKey, now: Instant) -> Vec<ClientQueue> {
        let blank = |id: &str| ClientQueue {
            client: id.to_string(),
            queued: 0,
            running: 0,
            oldest_wait_ms: 0,
        };
        let mut clients: BTreeMap<&str, ClientQueue> = BTreeMap::new();
        for w in self.book.pools.get(key).into_iter().flat_map(|p| &p.queue) {
            let id = w.request.meta.client.id.as_str();
            let c = clients.entry(id).or_insert_with(|| blank(id));
            c.queued += 1;
            let waited = now.saturating_duration_since(w.enqueued).as_millis() as u64;
            c.oldest_wait_ms = c.oldest_wait_ms.max(waited);
        }
        let slots = self.book.processes.values();
        for slot in slots.filter(|s| s.pool.as_ref() == Some(key)) {
            for (_, o) in slot.running() {
                let id = o.meta.client.id.as_str();
                clients.entry(id).or_insert_with(|| blank(id)).running += 1;
            }
        }
        let mut out: Vec<ClientQueue> = clients.into_values().collect();
        out.sort_by_key(|c| std::cmp::Reverse((c.queued, c.running)));
        out
    }

    fn pool_by_id(&self, id: &str) -> Result<Option<PoolKey>, AdminError> {
        if id == SPARE {
            return Ok(None);
        }
        self.book
            .key_of(id)
            .map(Some)
            .ok_or_else(|| AdminError::UnknownPool(id.to_string()))
    }

    fn pool_answer(&self, id: &str) -> Result<PoolStatus, AdminError> {
        let key = self.pool_by_id(id)?;
        Ok(self.pool_status(key.as_ref(), Instant::now()))
    }

    /// A real pool (not the spares) for a command.
    fn command_pool(&self, id: &str) -> Result<PoolKey, AdminError> {
        self.pool_by_id(id)?.ok_or_else(|| {
            AdminError::Invalid(
                "the spares are not a pool; resize pool.spare_processes in the configuration"
                    .into(),
            )
        })
    }
}

impl Handler<GetPoolStatus> for SessionSupervisor {
    type Result = MessageResult<GetPoolStatus>;

    fn handle(&mut self, _: GetPoolStatus, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let mut pools: Vec<PoolStatus> = self
            .book
            .pools
            .keys()
            .map(|k| self.pool_status(Some(k), now))
            .collect();
        pools.push(self.pool_status(None, now));
        MessageResult(pools)
    }
}

impl Handler<GetPool> for SessionSupervisor {
    type Result = Result<PoolStatus, AdminError>;

    fn handle(&mut self, GetPool(id): GetPool, _: &mut Self::Context) -> Self::Result {
        self.pool_answer(&id)
    }
}

impl Handler<GetRequests> for SessionSupervisor {
    type Result = MessageResult<GetRequests>;

    fn handle(&mut self, _: GetRequests, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();

        let queued = self.book.pools.iter().flat_map(|(key, pool)| {
            pool.queue.iter().map(move |w| RequestStatus {
                id: w.request.request_id.clone(),
                client: w.request.meta.client.id.to_string(),
                dialect: w.request.meta.dialect().to_string(),
                model: w.request.meta.model().to_string(),
                pool: key.name(),
                process: None,
                pid: None,
                state: "queued",
                age_ms: now.duration_since(w.request.submitted).as_millis() as u64,
                bytes_streamed: 0,
            })
        });
        let running = self.book.processes.iter().flat_map(|(id, s)| {
            s.running().map(move |(_, o)| RequestStatus {
                id: o.request_id.clone(),
                client: o.meta.client.id.to_string(),
                dialect: o.meta.dialect().to_string(),
                model: o.meta.model().to_string(),
                pool: s.pool.as_ref().map_or_else(String::new, PoolKey::name),
                process: Some(*id),
                pid: Some(s.pid),
                state: "running",
                age_ms: now.duration_since(o.since).as_millis() as u64,
                bytes_streamed: o
                    .meta
                    .bytes_streamed
                    .load(std::sync::atomic::Ordering::Relaxed),
            })
        });
        MessageResult(queued.chain(running).collect())
    }
}

impl Handler<DrainPool> for SessionSupervisor {
    type Result = Result<PoolStatus, AdminError>;

    fn handle(&mut self, DrainPool(id): DrainPool, ctx: &mut Self::Context) -> Self::Result {
        let key = self.command_pool(&id)?;
        log::info!("pool {}: draining (admin)", key.name());
        let actions = self.book.drain(&key, Instant::now());
        self.run(actions, ctx);
        self.pool_answer(&id)
    }
}

impl Handler<ResumePool> for SessionSupervisor {
    type Result = Result<PoolStatus, AdminError>;

    fn handle(&mut self, ResumePool(id): ResumePool, ctx: &mut Self::Context) -> Self::Result {
        let key = self.command_pool(&id)?;
        log::info!("pool {}: resumed (admin)", key.name());
        let actions = self.book.resume(&key, Instant::now());
        self.run(actions, ctx);
        self.pool_answer(&id)
    }
}

impl Handler<ResizePool> for SessionSupervisor {
    type Result = Result<PoolStatus, AdminError>;

    fn handle(&mut self, msg: ResizePool, ctx: &mut Self::Context) -> Self::Result {
        let key = self.command_pool(&msg.pool)?;
        let actions = self
            .book
            .resize(&key, msg.max_processes, msg.min_idle, Instant::now())?;
        log::info!(
            "pool {}: resized (admin) to max {:?} min_idle {:?}",
            key.name(),
            msg.max_processes,
            msg.min_idle
        );
        self.run(actions, ctx);
        self.pool_answer(&msg.pool)
    }
}

impl Handler<RecycleProcess> for SessionSupervisor {
    type Result = Result<ProcessStatus, AdminError>;

    fn handle(
        &mut self,
        RecycleProcess(id): RecycleProcess,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        let actions = self.book.recycle(id)?;
        self.run(actions, ctx);
        self.process_status(id, Instant::now())
            .ok_or(AdminError::UnknownProcess(id))
    }
}

impl Handler<KillProcess> for SessionSupervisor {
    type Result = Result<ProcessStatus, AdminError>;

    fn handle(&mut self, KillProcess(id): KillProcess, ctx: &mut Self::Context) -> Self::Result {
        let status = self
            .process_status(id, Instant::now())
            .ok_or(AdminError::UnknownProcess(id))?;
        log::info!("process {id}: killed (admin)");
        self.run(vec![Action::Kill { process: id }], ctx);
        Ok(status)
    }
}

impl Handler<CancelRequest> for SessionSupervisor {
    type Result = Result<Cancelled, AdminError>;

    fn handle(
        &mut self,
        CancelRequest(id): CancelRequest,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        let (action, was) = self.book.cancel(&id)?;
        log::info!("request {id}: cancelled (admin) while {was}");
        self.run(vec![action], ctx);
        Ok(Cancelled { cancelled: id, was })
    }
}
