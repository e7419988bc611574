//! Stop sequences, watched in the text a turn streams: what may be forwarded now, what must be
//! held back because it could be the start of a sequence, and where the answer ends. Pure: text
//! in, text out, so every case (a sequence split across deltas, several sequences, a sequence at
//! the very end) is a unit test.

/// Watches one turn's text for its stop sequences.
#[derive(Debug, Clone, Default)]
pub struct StopWatcher {
    sequences: Vec<String>,
    /// Text received but not forwarded yet: it may be the start of a sequence.
    held: String,
    /// The sequence that ended the answer, once one appeared.
    matched: Option<String>,
    /// Everything forwarded so far: the answer, once a sequence matched.
    forwarded: String,
}

impl StopWatcher {
    /// A watcher for `sequences` (empty ones are ignored).
    pub fn new(sequences: &[String]) -> Self {
        Self {
            sequences: sequences
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            ..Self::default()
        }
    }

    pub fn sequences(&self) -> &[String] {
        &self.sequences
    }

    pub fn is_active(&self) -> bool {
        !self.sequences.is_empty()
    }

    /// The sequence that ended the answer, if one did.
    pub fn matched(&self) -> Option<&str> {
        self.matched.as_deref()
    }

    /// The text forwarded so far.
    pub fn forwarded(&self) -> &str {
        &self.forwarded
    }

    /// Takes `text`; returns what may be forwarded now. After a match, nothing more is.
    pub fn push(&mut self, text: &str) -> String {
        if self.matched.is_some() {
            return String::new();
        }
        self.held.push_str(text);
        if let Some((at, seq)) = find(&self.held, &self.sequences) {
            let out = self.held[..at].to_string();
            self.matched = Some(seq.to_string());
            self.held.clear();
            self.forwarded.push_str(&out);
            return out;
        }
        let keep = self.partial_suffix();
        let cut = self.held.len() - keep;
        let out: String = self.held.drain(..cut).collect();
        self.forwarded.push_str(&out);
        out
    }

    /// The end of a block or of the answer: whatever was held back is text after all.
    pub fn flush(&mut self) -> String {
        if self.matched.is_some() {
            self.held.clear();
            return String::new();
        }
        let out = std::mem::take(&mut self.held);
        self.forwarded.push_str(&out);
        out
    }

    /// The length of the longest suffix of `held` that is a proper prefix of a sequence, on a
    /// character boundary.
    fn partial_suffix(&self) -> usize {
        let longest = self.sequences.iter().map(String::len).max().unwrap_or(0);
        (1..longest.min(self.held.len() + 1))
            .rev()
            .filter(|n| self.held.is_char_boundary(self.held.len() - n))
            .find(|n| {
                let tail = &self.held[self.held.len() - n..];
                self.sequences
                    .iter()
                    .any(|s| s.len() > *n && s.starts_with(tail))
            })
            .unwrap_or(0)
    }
}

/// The earliest occurrence of any of `sequences` in `text`: its byte offset and the sequence.
pub fn find<'a>(text: &str, sequences: &'a [String]) -> Option<(usize, &'a str)> {
    sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.as_str())))
        .min_by_key(|(at, _)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watcher(seqs: &[&str]) -> StopWatcher {
        StopWatcher::new(&seqs.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_sequence_split_across_deltas_is_caught_and_never_shown_in_part() {
        let mut w = watcher(&["END"]);
        assert_eq!(w.push("hello E"), "hello ", "the E might start END");
        assert_eq!(w.push("N"), "");
        assert_eq!(w.push("D and more"), "");
        assert_eq!(w.matched(), Some("END"));
        assert_eq!(w.forwarded(), "hello ");
        assert_eq!(w.push("later"), "", "nothing after the stop");
    }

    #[test]
    fn a_false_start_is_released_and_the_earliest_sequence_wins() {
        let mut w = watcher(&["END", "STOP"]);
        assert_eq!(w.push("EN"), "");
        assert_eq!(w.push("X then S"), "ENX then ");
        assert_eq!(w.push("TOP it END"), "");
        assert_eq!(w.matched(), Some("STOP"));
        assert_eq!(w.forwarded(), "ENX then ");
    }

    #[test]
    fn held_text_is_released_at_the_end() {
        let mut w = watcher(&["###"]);
        assert_eq!(w.push("a ##"), "a ");
        assert_eq!(w.flush(), "##");
        assert_eq!(w.matched(), None);
        assert_eq!(w.forwarded(), "a ##");
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let mut w = watcher(&["éé"]);
        assert_eq!(w.push("café"), "caf");
        assert_eq!(w.push("é!"), "");
        assert_eq!(w.matched(), Some("éé"));
        assert_eq!(
            find("naïve éé x", &["éé".into(), "x".into()]),
            Some((7, "éé"))
        );
    }
}
