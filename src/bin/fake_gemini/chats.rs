//! The Gemini CLI's session files ("chats"), as far as `fake-gemini` needs them: JSONL, a header
//! line `{sessionId, projectHash, startTime, lastUpdated, kind}` and then one line per message,
//! `{id, timestamp, type:"user", content:[{text}]}` or `{id, timestamp, type:"gemini", content}`,
//! in `<root>/tmp/<cwd basename>/chats/session-<YYYY-MM-DDTHH-MM>-<sessionId[:8]>.jsonl`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Gemini,
}

impl Role {
    /// The history letter of the fake's answers: `u:` or `a:`.
    pub fn initial(self) -> char {
        match self {
            Role::User => 'u',
            Role::Gemini => 'a',
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Chat {
    pub session_id: String,
    pub messages: Vec<(Role, String)>,
}

impl Chat {
    pub fn new(session_id: &str, messages: Vec<(Role, String)>) -> Chat {
        Chat {
            session_id: session_id.to_string(),
            messages,
        }
    }

    /// Writes the chat as a recording named with the minute of `now`; returns its path.
    pub fn write(&self, root: &Path, cwd: &str, now: u64) -> std::io::Result<PathBuf> {
        let dir = chats_dir(root, cwd);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file_name(now, &self.session_id));
        let header = json!({"sessionId": self.session_id, "projectHash": "fake",
            "startTime": iso(now), "lastUpdated": iso(now), "kind": "main"});
        std::fs::write(&path, format!("{header}\n"))?;
        let messages: Vec<(Role, &str)> = self
            .messages
            .iter()
            .map(|(r, t)| (*r, t.as_str()))
            .collect();
        append(&path, &messages)?;
        Ok(path)
    }

    /// Reads a session file; `None` when its header names no session.
    pub fn parse(text: &str) -> Option<Chat> {
        let mut lines = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok());
        let session_id = lines.next()?["sessionId"].as_str()?.to_string();
        let messages = lines
            .filter_map(|m| {
                let role = match m["type"].as_str()? {
                    "user" => Role::User,
                    "gemini" => Role::Gemini,
                    _ => return None, // info lines, metadata updates
                };
                Some((role, content_text(&m["content"])))
            })
            .collect();
        Some(Chat {
            session_id,
            messages,
        })
    }
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Appends message lines to a recording.
pub fn append(path: &Path, messages: &[(Role, &str)]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    let now = iso(now_secs());
    for (role, text) in messages {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let line = match role {
            Role::User => json!({"id": id, "timestamp": now, "type": "user",
                "content": [{"text": text}]}),
            Role::Gemini => json!({"id": id, "timestamp": now, "type": "gemini",
                "content": text}),
        };
        writeln!(file, "{line}")?;
    }
    Ok(())
}

/// Finds and reads the session file of `session_id`, failing like the real CLI: an unknown id,
/// or a file named with the current minute (the real CLI overwrites that one while recording).
pub fn load(root: &Path, cwd: &str, session_id: &str, now: u64) -> Result<Chat, String> {
    let dir = chats_dir(root, cwd);
    let short = session_id.get(..8).unwrap_or(session_id);
    let suffix = format!("-{short}.jsonl");
    let entries = std::fs::read_dir(&dir).map_err(|_| no_sessions())?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("session-") || !name.ends_with(&suffix) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        match Chat::parse(&text) {
            Some(chat) if chat.session_id == session_id => {
                if name == file_name(now, session_id) {
                    return Err(no_sessions());
                }
                return Ok(chat);
            }
            _ => continue,
        }
    }
    Err(format!("Invalid session identifier \"{session_id}\""))
}

fn no_sessions() -> String {
    "No previous sessions found for this project.".into()
}

/// Where the real CLI keeps its state: `$GEMINI_CLI_HOME/.gemini`, else `$HOME/.gemini`.
pub fn reading_root() -> PathBuf {
    let home = std::env::var("GEMINI_CLI_HOME")
        .or_else(|_| std::env::var("HOME"))
        .unwrap_or_default();
    Path::new(&home).join(".gemini")
}

/// Where the fake records sessions: only under an explicit `GEMINI_CLI_HOME`, so tests that do
/// not isolate it leave the developer's own home alone.
pub fn recording_root() -> Option<PathBuf> {
    let home = std::env::var("GEMINI_CLI_HOME").ok()?;
    Some(Path::new(&home).join(".gemini"))
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `<root>/tmp/<cwd basename>/chats`: the CLI's short project name is the cwd's basename.
fn chats_dir(root: &Path, cwd: &str) -> PathBuf {
    let short = Path::new(cwd)
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    root.join("tmp").join(short).join("chats")
}

/// `session-2020-01-01T00-00-<id[:8]>.jsonl`: the minute the recording started.
fn file_name(secs: u64, session_id: &str) -> String {
    let (y, mo, d, h, mi, _) = civil(secs);
    let short = session_id.get(..8).unwrap_or(session_id);
    format!("session-{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{short}.jsonl")
}

fn iso(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000Z")
}

/// UTC calendar fields of a Unix time (Howard Hinnant's days-to-civil algorithm).
fn civil(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, rest / 3_600, rest % 3_600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(iso(1_577_836_800), "2020-01-01T00:00:00.000Z");
        assert_eq!(iso(951_782_400 + 3_661), "2000-02-29T01:01:01.000Z");
        assert_eq!(
            file_name(1_577_836_800, "0123456789ab"),
            "session-2020-01-01T00-00-01234567.jsonl"
        );
    }

    #[test]
    fn a_written_chat_reads_back_and_loads() {
        let root = tempfile::tempdir().unwrap();
        let chat = Chat::new(
            "abcdef12-3456",
            vec![(Role::User, "q0".into()), (Role::Gemini, "a0".into())],
        );
        let old = 1_577_836_800;
        let path = chat.write(root.path(), "/x/work", old).unwrap();
        assert!(path.ends_with("tmp/work/chats/session-2020-01-01T00-00-abcdef12.jsonl"));
        assert_eq!(
            load(root.path(), "/x/work", "abcdef12-3456", old + 3_600),
            Ok(chat)
        );
        assert_eq!(
            load(root.path(), "/x/work", "abcdef12-3456", old + 30),
            Err(no_sessions()),
            "a file named with the current minute"
        );
        assert!(load(root.path(), "/x/work", "abcdef12-9999", old + 3_600).is_err());
    }

    #[test]
    fn parse_skips_other_lines_and_joins_parts() {
        let text = r#"{"sessionId":"s","kind":"main"}
{"type":"user","content":[{"text":"a"},{"text":"b"}]}
{"type":"info","content":"x"}
{"type":"gemini","content":"c"}"#;
        let chat = Chat::parse(text).unwrap();
        assert_eq!(
            chat.messages,
            [(Role::User, "a b".into()), (Role::Gemini, "c".into())]
        );
    }
}
