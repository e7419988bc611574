//! The file operations a driver asks for ([`FileOp`]), carried out by the process actor before
//! the lines of the same outbox are written, so the CLI finds each file when it reads the line
//! that names it.
//!
//! They run synchronously on the actor: they are a few kilobytes on a local disk (a system
//! prompt, a session transcript), and running them inline is what orders them before the lines.

use std::path::Path;

use super::driver::FileOp;
use super::messages::TurnId;

/// Carries out `ops` in order; returns the turns whose files could not be written (the reason
/// is logged here: the client hears a generic one, not the server's paths).
pub fn carry_out(process: u64, ops: Vec<FileOp>) -> Vec<TurnId> {
    let mut failed = Vec::new();
    for op in ops {
        match op {
            FileOp::Write {
                path,
                contents,
                turn,
            } => {
                if let Err(e) = write(&path, &contents) {
                    log::warn!("process {process}: cannot write {}: {e}", path.display());
                    failed.extend(turn);
                }
            }
            FileOp::Remove { dir, suffix } => remove_matching(process, &dir, &suffix),
        }
    }
    failed
}

fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)
}

fn remove_matching(process: u64, dir: &Path, suffix: &str) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Nothing was ever written there: nothing to remove.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return log::warn!("process {process}: cannot list {}: {e}", dir.display()),
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().ends_with(suffix) {
            continue;
        }
        if let Err(e) = std::fs::remove_file(entry.path()) {
            log::warn!(
                "process {process}: cannot remove {}: {e}",
                entry.path().display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_create_directories_and_removals_match_the_suffix() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let chats = dir.path().join("a/b");
        let ops = vec![
            FileOp::Write {
                path: chats.join("session-old-1234abcd.jsonl"),
                contents: "x".into(),
                turn: Some(1),
            },
            FileOp::Write {
                path: chats.join("session-now-1234abcd.jsonl"),
                contents: "y".into(),
                turn: Some(1),
            },
            FileOp::Write {
                path: chats.join("session-now-99999999.jsonl"),
                contents: "z".into(),
                turn: None,
            },
        ];
        assert!(carry_out(1, ops).is_empty());
        assert_eq!(
            std::fs::read_to_string(chats.join("session-old-1234abcd.jsonl")).ok(),
            Some("x".into())
        );
        let remove = FileOp::Remove {
            dir: chats.clone(),
            suffix: "-1234abcd.jsonl".into(),
        };
        let missing = FileOp::Remove {
            dir: dir.path().join("never"),
            suffix: ".jsonl".into(),
        };
        assert!(carry_out(1, vec![remove, missing]).is_empty());
        let left: Vec<String> = std::fs::read_dir(&chats)
            .expect("still there")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["session-now-99999999.jsonl"]);
    }

    #[test]
    fn a_failed_write_names_its_turn() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("plain");
        std::fs::write(&file, "").expect("writable");
        let ops = vec![
            FileOp::Write {
                path: file.join("under-a-file"),
                contents: String::new(),
                turn: Some(4),
            },
            FileOp::Write {
                path: file.join("no-turn"),
                contents: String::new(),
                turn: None,
            },
        ];
        assert_eq!(carry_out(1, ops), [4]);
    }
}
