//! The turns of a process: taking one (`RunTurn`), its timers (request timeout, client gone),
//! interrupting it, forwarding its events, reporting its end, and releasing its slot.

use std::sync::atomic::Ordering;
use std::time::Instant;

use actix::prelude::*;

use super::driver::TurnInput;
use super::messages::{Interrupt, ProcessEvent, RunTurn, TurnEnd, TurnId, TurnReport};
use super::state::{ActiveTurn, ProcessState, TurnPhase};
use super::CliProcess;
use crate::error::ServeError;
use crate::protocol::stop::{self, StopWatcher};
use crate::protocol::{Block, StopReason, TurnEvent, TurnOutcome};

impl CliProcess {
    /// Stops `turn` (if it still runs) with `reason` as its client's error; the process is
    /// killed if the turn has not ended after `interrupt_grace`.
    pub(super) fn interrupt_turn(
        &mut self,
        turn: TurnId,
        reason: ServeError,
        ctx: &mut Context<Self>,
    ) {
        let Some(active) = self.turns.get_mut(&turn) else {
            return;
        };
        if active.phase != TurnPhase::Running {
            return;
        }
        log::info!(
            "process {}: interrupting request {}: {reason}",
            self.id,
            active.request_id
        );
        // The client hears why at once, not when the CLI gets round to stopping (up to
        // `interrupt_grace` later, or never for a hung upstream): a timeout answers at the
        // timeout. The turn itself ends, and its slot is freed, only when the CLI stops.
        if let Some(events) = active.events.take() {
            let _ = events.send(TurnEvent::Failed(reason.clone()));
        }
        active.interrupted = Some(reason);
        self.stop_turn(turn, ctx);
    }

    /// Asks the CLI to stop `turn` (still running); the process is killed if the turn has not
    /// ended after `interrupt_grace`. Its final event follows as the CLI ends it.
    fn stop_turn(&mut self, turn: TurnId, ctx: &mut Context<Self>) {
        let Some(active) = self.turns.get_mut(&turn) else {
            return;
        };
        if active.phase != TurnPhase::Running {
            return;
        }
        active.phase = TurnPhase::Interrupting;
        let grace = self.limits.interrupt_grace;
        ctx.run_later(grace, move |act, ctx| {
            if act
                .turns
                .get(&turn)
                .is_some_and(|t| t.phase == TurnPhase::Interrupting)
            {
                let why = format!("turn did not stop {}s after interrupt", grace.as_secs());
                log::warn!("process {}: {why}; killing it", act.id);
                act.kill(why, ctx);
            }
        });
        self.drive(ctx, |d, out| d.interrupt(turn, out));
    }

    /// Interrupts running turns whose upstream went silent: no first event within
    /// `first_byte_timeout`, or no event for `idle_timeout` since the last one.
    pub(super) fn interrupt_stalled(&mut self, ctx: &mut Context<Self>) {
        let now = tokio::time::Instant::now();
        let limits = self.limits;
        let stalled: Vec<(TurnId, ServeError)> = self
            .turns
            .iter()
            .filter(|(_, t)| t.phase == TurnPhase::Running)
            .filter_map(|(id, t)| {
                let (since, after, waiting_for) = match t.last_event {
                    None => (t.began, limits.first_byte_timeout, "first output"),
                    Some(last) => (last, limits.idle_timeout, "further output"),
                };
                (now.saturating_duration_since(since) >= after)
                    .then_some((*id, ServeError::UpstreamStalled { after, waiting_for }))
            })
            .collect();
        for (turn, reason) in stalled {
            self.interrupt_turn(turn, reason, ctx);
        }
    }

    /// An event of `turn` from the driver: forwarded to its client; the final one also ends
    /// the turn for the client and starts the wait for its slot's release.
    pub(super) fn on_turn_event(
        &mut self,
        turn: TurnId,
        event: TurnEvent,
        ctx: &mut Context<Self>,
    ) {
        let Some(active) = self.turns.get_mut(&turn) else {
            return;
        };
        if active.phase == TurnPhase::Answered {
            return;
        }
        active.last_event = Some(tokio::time::Instant::now());
        // `events` is gone once the client has its answer (an interrupt answers at once); the
        // turn's end is still awaited.
        let event = match event {
            TurnEvent::Done(_) | TurnEvent::Failed(_) => event,
            _ if active.events.is_none() => return,
            TurnEvent::TextDelta(text) => {
                let Some(events) = &active.events else {
                    return;
                };
                let (text, stopped_now) = match active.stop.is_active() {
                    false => (text, false),
                    true => {
                        let before = active.stop.matched().is_some();
                        let out = active.stop.push(&text);
                        (out, !before && active.stop.matched().is_some())
                    }
                };
                if !text.is_empty() {
                    active.first_token.get_or_insert_with(Instant::now);
                    let bytes = text.len() as u64;
                    active
                        .meta
                        .bytes_streamed
                        .fetch_add(bytes, Ordering::Relaxed);
                    // A send error means the client is gone; the watcher interrupts the turn.
                    let _ = events.send(TurnEvent::TextDelta(text));
                }
                if stopped_now {
                    // The answer ends here: the rest of the model's text is not wanted.
                    self.stop_turn(turn, ctx);
                }
                return;
            }
            // After a stop sequence nothing more of the answer is shown (the dialects close an
            // open block themselves).
            _ if active.stop.matched().is_some() => return,
            TurnEvent::BlockStopped => {
                let held = active.stop.flush();
                if let Some(events) = &active.events {
                    if !held.is_empty() {
                        let _ = events.send(TurnEvent::TextDelta(held));
                    }
                    let _ = events.send(TurnEvent::BlockStopped);
                }
                return;
            }
            other => {
                if let Some(events) = &active.events {
                    let _ = events.send(other);
                }
                return;
            }
        };
        let event = final_event(active, event);
        let report = report_of(active, &event);
        log::debug!(
            "process {}: request {} ended ({:?}) after {} ms",
            self.id,
            active.request_id,
            report.end,
            active.started.elapsed().as_millis()
        );
        if let Some(events) = active.events.take() {
            let _ = events.send(event);
        }
        for timer in std::mem::take(&mut active.timers) {
            ctx.cancel_future(timer);
        }
        active.phase = TurnPhase::Answered;
        active.report = Some(Box::new(report));
        self.notify(ProcessEvent::TurnAnswered { turn });
        let grace = self.limits.interrupt_grace;
        ctx.run_later(grace, move |act, ctx| {
            if act
                .turns
                .get(&turn)
                .is_some_and(|t| t.phase == TurnPhase::Answered)
            {
                log::warn!("process {}: reset did not answer; killing it", act.id);
                act.kill("reset did not answer".into(), ctx);
            }
        });
    }

    /// `turn`'s slot is free again (or, `reusable: false`, could not be reset).
    /// `kept`: the driver holds the turn's conversation for a later turn.
    pub(super) fn on_released(
        &mut self,
        turn: TurnId,
        reusable: bool,
        kept: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(active) = self.turns.remove(&turn) else {
            return;
        };
        let report = match active.report {
            Some(report) => report,
            // Released without a final event (the driver's bug): the client hears of it.
            None => {
                let error = ServeError::BackendProtocol {
                    backend: self.backend,
                    detail: "the turn ended without a result".into(),
                };
                let mut active = active;
                let report = report_of(&active, &TurnEvent::Failed(error.clone()));
                if let Some(events) = active.events.take() {
                    let _ = events.send(TurnEvent::Failed(error));
                }
                for timer in active.timers {
                    ctx.cancel_future(timer);
                }
                Box::new(report)
            }
        };
        self.notify(ProcessEvent::TurnFinished {
            turn,
            reusable,
            kept,
            report,
        });
        if !reusable {
            log::warn!("process {}: a slot cannot be reused; retiring", self.id);
            let grace = self
                .retire_after_turns
                .unwrap_or(self.limits.interrupt_grace);
            if self.turns.is_empty() {
                self.drain(grace, ctx);
            } else {
                // The other conversations are unaffected: they finish first (closing stdin now
                // would strand those still setting up), and no new turn is taken meanwhile. The
                // supervisor's `Retire` bounds how long that may take.
                self.retire_after_turns = Some(grace);
            }
        } else if let (Some(grace), true) = (self.retire_after_turns, self.turns.is_empty()) {
            self.drain(grace, ctx);
        }
    }
}

/// The final event the client gets: the answer up to its stop sequence once one appeared (the
/// CLI was interrupted there), else the interrupt's reason whatever the CLI made of it, else the
/// driver's event with any held-back text released and stop sequences cut from a whole answer.
fn final_event(active: &mut ActiveTurn, event: TurnEvent) -> TurnEvent {
    if let Some(sequence) = active.stop.matched().map(String::from) {
        let usage = match &event {
            TurnEvent::Done(outcome) => outcome.usage.clone(),
            _ => Default::default(),
        };
        return TurnEvent::Done(TurnOutcome {
            content: vec![Block::Text(active.stop.forwarded().to_string())],
            stop_reason: StopReason::StopSequence,
            stop_sequence: Some(sequence),
            usage,
            ..Default::default()
        });
    }
    if let Some(reason) = active.interrupted.take() {
        return TurnEvent::Failed(reason);
    }
    let TurnEvent::Done(mut outcome) = event else {
        return event;
    };
    if active.stop.is_active() {
        let held = active.stop.flush();
        if let (false, Some(events)) = (held.is_empty(), &active.events) {
            let _ = events.send(TurnEvent::TextDelta(held));
        }
        // Nothing was streamed (a non-streaming fallback): the whole answer is cut here.
        let text = outcome.text();
        if let Some((at, sequence)) = stop::find(&text, active.stop.sequences()) {
            outcome.content = vec![Block::Text(text[..at].to_string())];
            outcome.stop_reason = StopReason::StopSequence;
            outcome.stop_sequence = Some(sequence.to_string());
        }
    }
    TurnEvent::Done(outcome)
}

/// What the supervisor hears of a turn that ended with `event`.
fn report_of(active: &ActiveTurn, event: &TurnEvent) -> TurnReport {
    let (end, error) = match event {
        TurnEvent::Failed(ServeError::TurnTimedOut { .. }) => {
            (TurnEnd::TimedOut, Some("request timed out".to_string()))
        }
        TurnEvent::Failed(e @ ServeError::UpstreamStalled { .. }) => {
            (TurnEnd::TimedOut, Some(e.to_string()))
        }
        TurnEvent::Failed(ServeError::Cancelled) => (TurnEnd::Cancelled, None),
        TurnEvent::Failed(e) => (TurnEnd::Failed, Some(e.to_string())),
        _ => (TurnEnd::Ok, None),
    };
    let (usage, cost_usd) = match event {
        TurnEvent::Done(outcome) => (Some(outcome.usage.clone()), outcome.cost_usd),
        _ => (None, 0.0),
    };
    // Cut at a stop sequence, the client's answer is not what the CLI's conversation holds.
    let answer = match event {
        TurnEvent::Done(outcome) if outcome.stop_sequence.is_none() => {
            Some(outcome.content.clone())
        }
        _ => None,
    };
    TurnReport {
        request_id: active.request_id.clone(),
        end,
        duration: active.submitted.elapsed(),
        time_to_first_token: active
            .first_token
            .map(|t| t.duration_since(active.submitted)),
        model: active.model.clone(),
        usage,
        cost_usd,
        error,
        answer,
    }
}

impl Handler<RunTurn> for CliProcess {
    type Result = ();

    fn handle(
        &mut self,
        RunTurn {
            turn,
            request,
            seat,
        }: RunTurn,
        ctx: &mut Self::Context,
    ) {
        let full = self.turns.len() >= self.driver.capacity();
        if self.state != ProcessState::Ready || self.retire_after_turns.is_some() || full {
            log::info!("process {}: turn {turn} refused, handed back", self.id);
            let request = Box::new(request);
            self.notify(ProcessEvent::TurnRefused { turn, request });
            return;
        }
        let timeout = self.limits.request_timeout;
        let deadline = ctx.run_later(timeout, move |act, ctx| {
            act.interrupt_turn(turn, ServeError::TurnTimedOut { after: timeout }, ctx)
        });
        let events = request.events.clone();
        let client_gone = ctx.spawn(
            async move { events.closed().await }
                .into_actor(self)
                .map(move |(), act, ctx| act.interrupt_turn(turn, ServeError::Cancelled, ctx)),
        );
        let input = TurnInput {
            system_prompt: request.system_prompt,
            output_schema: request.output_schema,
            model: request.cli_model.clone(),
            history: request.history,
            prompt: request.prompt,
            conversation: seat.conversation,
            resume: seat.resume,
            keep: seat.keep,
            tools: request.tools,
        };
        self.turns.insert(
            turn,
            ActiveTurn {
                request_id: request.request_id,
                phase: TurnPhase::Running,
                events: Some(request.events),
                meta: request.meta,
                model: request.cli_model,
                interrupted: None,
                started: Instant::now(),
                submitted: request.submitted,
                first_token: None,
                stop: StopWatcher::new(&request.stop_sequences),
                began: tokio::time::Instant::now(),
                last_event: None,
                timers: vec![deadline, client_gone],
                report: None,
            },
        );
        self.drive(ctx, |d, out| {
            for conversation in seat.forget {
                d.forget(conversation, out);
            }
            d.begin(turn, input, out)
        });
    }
}

impl Handler<Interrupt> for CliProcess {
    type Result = ();

    fn handle(&mut self, msg: Interrupt, ctx: &mut Self::Context) {
        self.interrupt_turn(msg.turn, msg.reason, ctx);
    }
}
