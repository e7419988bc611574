use super::*;

fn header(id: &str) -> Header {
    Header {
        v: FORMAT_VERSION,
        id: id.into(),
        created_at_ms: 1_000,
        backend: "claude".into(),
        model: "claude".into(),
        system_prompt: "Be brief.".into(),
        workdir: None,
        owner: None,
    }
}

fn turn(at_ms: u64, prompt: &str, output: &str) -> Record {
    Record::Turn(Turn {
        at_ms,
        request_id: format!("req-{at_ms}"),
        backend: "claude".into(),
        model: "claude".into(),
        prompt: prompt.into(),
        output: output.into(),
        duration_ms: 5,
        usage: Tokens {
            input_tokens: 10,
            output_tokens: 2,
            cached_tokens: 1,
        },
    })
}

fn failed(at_ms: u64, prompt: &str) -> Record {
    Record::Failed(Failure {
        at_ms,
        request_id: "r".into(),
        prompt: prompt.into(),
        error: "boom".into(),
    })
}

fn file(records: &[Record]) -> Vec<u8> {
    records.iter().flat_map(encode).collect()
}

#[test]
fn a_transcript_round_trips_and_folds_to_its_summary() {
    let id = new_id();
    let records = [
        Record::Session(header(&id)),
        turn(2_000, "one", "1"),
        failed(3_000, "two"),
        turn(4_000, "three", "3"),
    ];
    let bytes = file(&records);
    assert!(bytes.ends_with(b"\n") && bytes.iter().filter(|b| **b == b'\n').count() == 4);
    let t = decode(&bytes).expect("decodes");
    assert_eq!((t.skipped, t.committed_len), (0, bytes.len() as u64));
    assert_eq!(t.records, records[1..]);
    let s = summarize(&t);
    assert_eq!(
        (s.turn_count, s.status, s.last_used_ms),
        (2, Status::Active, 4_000)
    );
    assert_eq!(s.initial_prompt, "one");
    assert_eq!(s.tokens.input_tokens, 20);
    let h = history(&t.records);
    let roles: Vec<_> = h.iter().map(|m| (m.role, m.content.clone())).collect();
    assert_eq!(
        roles,
        [
            (Role::User, "one".into()),
            (Role::Assistant, "1".into()),
            (Role::User, "three".into()),
            (Role::Assistant, "3".into()),
        ],
        "failed prompts are not replayed"
    );
}

#[test]
fn a_failed_last_prompt_marks_the_session_and_an_answer_clears_it() {
    let mut s = Summary::new(&header(&new_id()));
    s.apply(&turn(2_000, "one", "1"));
    s.apply(&failed(3_000, "two"));
    assert_eq!(
        (s.status, s.last_error.as_deref()),
        (Status::Error, Some("boom"))
    );
    s.apply(&turn(4_000, "two again", "2"));
    assert_eq!((s.status, s.last_error.clone()), (Status::Active, None));
}

#[test]
fn a_torn_last_line_is_skipped_and_cut_before_the_next_append() {
    let id = new_id();
    let whole = file(&[Record::Session(header(&id)), turn(2_000, "one", "1")]);
    let torn_line = encode(&turn(3_000, "two", "2"));
    // Every prefix of the last line short of its newline: even a complete JSON object without
    // its newline was never acknowledged.
    for cut in 1..torn_line.len() {
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&torn_line[..cut]);
        let t = decode(&bytes).expect("a torn tail is not fatal");
        assert_eq!(t.records.len(), 1, "cut at {cut}");
        assert_eq!((t.skipped, t.committed_len), (1, whole.len() as u64));
    }
}

#[test]
fn damaged_lines_are_skipped_and_a_file_without_header_is_refused() {
    let id = new_id();
    let mut bytes = file(&[Record::Session(header(&id))]);
    bytes.extend_from_slice(b"{not json\n\n");
    bytes.extend_from_slice(&encode(&turn(2_000, "one", "1")));
    let t = decode(&bytes).expect("decodes");
    assert_eq!((t.records.len(), t.skipped), (1, 1));
    assert_eq!(t.committed_len, bytes.len() as u64);

    assert_eq!(decode(b""), Err(DecodeError::NoHeader));
    assert_eq!(
        decode(&encode(&turn(1, "a", "b"))),
        Err(DecodeError::NoHeader)
    );
    let torn_header = &file(&[Record::Session(header(&id))])[..20];
    assert_eq!(decode(torn_header), Err(DecodeError::NoHeader));
    let mut newer = header(&id);
    newer.v = FORMAT_VERSION + 1;
    assert_eq!(
        decode(&encode(&Record::Session(newer))),
        Err(DecodeError::NewerVersion(FORMAT_VERSION + 1))
    );
}

#[test]
fn ids_are_32_hex_digits_and_nothing_else_passes() {
    let id = new_id();
    assert!(valid_id(&id), "{id}");
    assert_ne!(id, new_id());
    for bad in [
        "",
        "..",
        "../../etc/passwd",
        "0123456789abcdef0123456789abcde/",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdef",
    ] {
        assert!(!valid_id(bad), "{bad}");
    }
}

#[test]
fn retention_drops_the_idle_then_the_least_recently_used() {
    let day = 86_400_000;
    let now = 100 * day;
    let sessions = [
        ("a", now - 40 * day),
        ("b", now - day),
        ("c", now),
        ("d", now - 2 * day),
    ];
    let by_age = Retention {
        max_age: Some(Duration::from_secs(30 * 86_400)),
        max_count: None,
    };
    assert_eq!(expired(sessions.iter().copied(), now, by_age), ["a"]);
    let by_count = Retention {
        max_age: None,
        max_count: Some(2),
    };
    let mut gone = expired(sessions.iter().copied(), now, by_count);
    gone.sort();
    assert_eq!(gone, ["a", "d"]);
    let both = Retention {
        max_count: Some(1),
        ..by_age
    };
    let mut gone = expired(sessions.iter().copied(), now, both);
    gone.sort();
    assert_eq!(gone, ["a", "b", "d"]);
    assert!(expired(sessions.iter().copied(), now, Retention::default()).is_empty());
}

#[test]
fn listing_filters_then_pages_most_recent_first() {
    let mut all = Vec::new();
    for (i, backend) in ["claude", "codex", "claude", "claude"].iter().enumerate() {
        let mut s = Summary::new(&header(&format!("{i:032}")));
        s.backend = backend.to_string();
        s.last_used_ms = i as u64;
        all.push(s);
    }
    all[3].status = Status::Error;
    let filter = Filter {
        backend: Some("claude".into()),
        limit: 2,
        ..Filter::default()
    };
    let (page1, total) = page(all.iter(), &filter);
    assert_eq!(total, 3);
    let ids: Vec<_> = page1.iter().map(|s| s.last_used_ms).collect();
    assert_eq!(ids, [3, 2]);
    let (page2, _) = page(
        all.iter(),
        &Filter {
            offset: 2,
            ..filter.clone()
        },
    );
    assert_eq!(page2.len(), 1);
    let errors = Filter {
        status: Some("error".into()),
        limit: 10,
        ..Filter::default()
    };
    assert_eq!(page(all.iter(), &errors).1, 1);
    let theirs = Filter {
        owner: Some("key-1".into()),
        limit: 10,
        ..Filter::default()
    };
    assert_eq!(
        page(all.iter(), &theirs).1,
        0,
        "unowned sessions are not a client's"
    );
}

#[test]
fn a_long_first_prompt_is_cut_for_the_title() {
    let mut s = Summary::new(&header(&new_id()));
    s.apply(&turn(2, &"x".repeat(80), "y"));
    assert_eq!(s.title().chars().count(), 50);
    assert!(s.title().ends_with("..."));
    let mut short = Summary::new(&header(&new_id()));
    short.apply(&turn(2, &"é".repeat(50), "y"));
    assert_eq!(short.title(), "é".repeat(50));
}
