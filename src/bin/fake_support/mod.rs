//! What the fakes share: their switches, their stdout lines, the per-prompt words that script a
//! turn (client tool calls among them) and, for `fake-codex` and `fake-gemini`, one event queue
//! fed by stdin and by their turn workers and interruptible waits. Each fake includes this file
//! as a module (`#[path]`); it is no binary itself.

use std::io::{BufRead, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use serde_json::Value;

/// The switches of one fake: `--fake-<name>[=value]` arguments or `<env_prefix>_<NAME>`
/// variables, so a test can set them per server (arguments) or per process tree (environment).
pub struct Switches {
    pub env_prefix: &'static str,
}

impl Switches {
    /// The switch's value; `Some("")` when it is set without one.
    pub fn get(&self, name: &str) -> Option<String> {
        let arg = format!("--fake-{name}");
        for a in std::env::args() {
            if a == arg {
                return Some(String::new());
            }
            if let Some(v) = a.strip_prefix(&format!("{arg}=")) {
                return Some(v.to_string());
            }
        }
        let var = format!(
            "{}_{}",
            self.env_prefix,
            name.to_uppercase().replace('-', "_")
        );
        std::env::var(var).ok()
    }

    pub fn ms(&self, name: &str) -> Option<Duration> {
        self.get(name)?.parse().ok().map(Duration::from_millis)
    }
}

/// Writes one line to stdout. Turn workers write concurrently; the lock keeps lines whole.
pub fn emit(v: &Value) {
    emit_raw(&v.to_string());
}

pub fn emit_raw(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the server is gone; exiting is all that is left to do.
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Everything a fake's dispatcher reacts to, in one queue: a turn worker's report is queued
/// before the worker writes the turn's last line, so the dispatcher has updated the history
/// before the server can send the next request.
pub enum Event<T> {
    Message(Value),
    StdinClosed,
    Worker(T),
}

/// Reads stdin on its own thread. A line that is not JSON is reported on stderr and skipped.
pub fn read_stdin<T: Send + 'static>(name: &'static str, tx: Sender<Event<T>>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => {
                    if tx.send(Event::Message(v)).is_err() {
                        return;
                    }
                }
                Err(e) => eprintln!("{name}: ignoring a line that is not JSON: {e}"),
            }
        }
        let _ = tx.send(Event::StdinClosed);
    });
}

/// Why a turn worker stopped before its natural end.
#[derive(Debug, PartialEq, Eq)]
pub enum Halt {
    /// The server interrupted or cancelled the turn.
    Stopped,
    /// Nothing more to write: the dispatcher dropped the turn (its thread or session is gone or
    /// replaced), or the worker has already written the turn's end.
    Silent,
}

/// Waits `d` unless the dispatcher signals on `stop` (interrupt) or drops its end.
pub fn wait(stop: &Receiver<()>, d: Duration) -> Result<(), Halt> {
    match stop.recv_timeout(d) {
        Ok(()) => Err(Halt::Stopped),
        Err(RecvTimeoutError::Timeout) => Ok(()),
        Err(RecvTimeoutError::Disconnected) => Err(Halt::Silent),
    }
}

/// How a turn ends, chosen by words in the prompt.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Outcome {
    Answer,
    /// `FAKE_RETRY_PARTIAL`: a partial attempt, then the whole answer.
    RetryPartial,
    /// `FAKE_CRASH`: one delta, then exit 3.
    Crash,
    /// `FAKE_HANG`: one delta, then nothing for this turn, interrupts included.
    Hang,
    /// `FAKE_GARBAGE`: a line that is not JSON, then nothing.
    Garbage,
    /// `FAKE_API_ERROR_<status>`: the upstream failed with that HTTP status.
    ApiError(u16),
}

/// The per-prompt switches: a wait before answering, then an outcome.
#[derive(Debug, PartialEq, Eq)]
pub struct Script {
    pub sleep: Duration,
    pub outcome: Outcome,
}

impl Script {
    pub fn parse(prompt: &str) -> Script {
        let outcome = if prompt.contains("FAKE_GARBAGE") {
            Outcome::Garbage
        } else if prompt.contains("FAKE_CRASH") {
            Outcome::Crash
        } else if prompt.contains("FAKE_HANG") {
            Outcome::Hang
        } else if let Some(status) = word_number(prompt, "FAKE_API_ERROR_") {
            Outcome::ApiError(u16::try_from(status).unwrap_or(500))
        } else if prompt.contains("FAKE_RETRY_PARTIAL") {
            Outcome::RetryPartial
        } else {
            Outcome::Answer
        };
        let sleep = word_number(prompt, "FAKE_SLEEP_").unwrap_or_default();
        Script {
            sleep: Duration::from_millis(sleep),
            outcome,
        }
    }
}

/// The number right after `prefix` in `text` (`FAKE_SLEEP_250` → 250).
pub fn word_number(text: &str, prefix: &str) -> Option<u64> {
    let start = text.find(prefix)? + prefix.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The answer cut into deltas, one word (with its trailing space) each, so a stream has several.
pub fn deltas(answer: &str) -> Vec<&str> {
    answer.split_inclusive(' ').collect()
}

/// The client tool calls a prompt asks for: (name, input) per `FAKE_TOOL:<name>:<json>` marker.
#[allow(dead_code)] // fake-gemini serves no client tools
pub fn tool_calls(prompt: &str) -> Vec<(String, Value)> {
    let mut calls = Vec::new();
    let mut rest = prompt;
    while let Some(at) = rest.find("FAKE_TOOL:") {
        rest = &rest[at + "FAKE_TOOL:".len()..];
        let Some((name, tail)) = rest.split_once(':') else {
            break;
        };
        let mut stream = serde_json::Deserializer::from_str(tail).into_iter::<Value>();
        let input = stream
            .next()
            .and_then(Result::ok)
            .unwrap_or(Value::Object(Default::default()));
        calls.push((name.to_string(), input));
        rest = &tail[stream.byte_offset()..];
    }
    calls
}

/// A fresh uuid-shaped id, like the ids the real CLIs hand out.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_markers_give_calls_in_order() {
        let calls = tool_calls(r#"go FAKE_TOOL:a:{"x":1} and FAKE_TOOL:b-2:{} end"#);
        assert_eq!(
            calls,
            [
                ("a".to_string(), serde_json::json!({"x": 1})),
                ("b-2".to_string(), serde_json::json!({}))
            ]
        );
    }

    #[test]
    fn a_plain_prompt_is_answered_at_once() {
        assert_eq!(
            Script::parse("hello"),
            Script {
                sleep: Duration::ZERO,
                outcome: Outcome::Answer
            }
        );
    }

    #[test]
    fn words_choose_the_outcome_and_the_wait() {
        let s = Script::parse("x FAKE_SLEEP_250 FAKE_API_ERROR_429 y");
        assert_eq!(s.sleep, Duration::from_millis(250));
        assert_eq!(s.outcome, Outcome::ApiError(429));
        assert_eq!(Script::parse("FAKE_HANG").outcome, Outcome::Hang);
        assert_eq!(Script::parse("FAKE_CRASH").outcome, Outcome::Crash);
        assert_eq!(
            Script::parse("FAKE_RETRY_PARTIAL").outcome,
            Outcome::RetryPartial
        );
        assert_eq!(
            Script::parse("FAKE_GARBAGE FAKE_CRASH").outcome,
            Outcome::Garbage,
            "garbage wins: it is checked first"
        );
    }

    #[test]
    fn word_number_needs_digits() {
        assert_eq!(word_number("FAKE_SLEEP_12ms", "FAKE_SLEEP_"), Some(12));
        assert_eq!(word_number("FAKE_SLEEP_x", "FAKE_SLEEP_"), None);
        assert_eq!(word_number("nothing", "FAKE_SLEEP_"), None);
    }

    #[test]
    fn deltas_rebuild_the_answer() {
        let d = deltas("echo: a b");
        assert_eq!(d, ["echo: ", "a ", "b"]);
        assert_eq!(d.concat(), "echo: a b");
    }

    #[test]
    fn wait_tells_a_stop_from_a_dropped_line() {
        let (tx, rx) = std::sync::mpsc::channel();
        assert_eq!(wait(&rx, Duration::from_millis(1)), Ok(()));
        tx.send(()).unwrap();
        assert_eq!(wait(&rx, Duration::from_secs(5)), Err(Halt::Stopped));
        drop(tx);
        assert_eq!(wait(&rx, Duration::from_secs(5)), Err(Halt::Silent));
    }
}
