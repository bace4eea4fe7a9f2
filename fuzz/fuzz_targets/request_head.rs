//! Fuzz target: request heads, whole and in pieces.
//!
//! Feeds the wire to a `HeadParser` in the cuts the input chooses and checks, at every cut, that
//! it answers exactly as a fresh `parse_head` over the same bytes; that a decided result matches
//! `parse_head` over the whole wire (the same head and length, or an error with the same status,
//! a size limit against a 400 excepted); that
//! `consumed` never exceeds the bytes given and ends at the head's first empty line; and that an
//! accepted head respects rules Gunicorn enforces whatever the code path. After a head the same
//! parser continues with the pipelined bytes, so its reset is exercised too.
//!
//! Owns only these properties; the input layout is in `src/lib.rs`.
#![no_main]

use ferrocorn_h1::{parse_head, HeadParser, ParserConfig, RequestHead};
use ferrocorn_h1_fuzz::FuzzInput;
use libfuzzer_sys::fuzz_target;

/// Comparing with a fresh `parse_head` at every cut costs the whole prefix each time; past this
/// many rescanned bytes only decided results and the last cut are compared, so one-byte cuts of a
/// long input stay fast enough to fuzz (the incremental parser is still fed every piece).
const RESCAN_BUDGET: usize = 1 << 17;

fuzz_target!(|data: &[u8]| {
    if let Some(input) = FuzzInput::decode(data) {
        check(&input);
    }
});

fn check(input: &FuzzInput<'_>) {
    let (wire, cfg, trusted) = (input.wire, &input.cfg, input.peer_trusted);
    let ends = input.cut_points();
    let mut parser = HeadParser::new();
    // Where the request being parsed begins: it moves past each accepted head.
    let mut start = 0;
    let mut rescanned = 0;
    for (index, &end) in ends.iter().enumerate() {
        if end <= start {
            continue;
        }
        let buf = &wire[start..end];
        let got = parser.parse(buf, cfg, trusted);
        let decided = !matches!(got, Ok(None));
        if decided || index + 1 == ends.len() || rescanned < RESCAN_BUDGET {
            rescanned += buf.len();
            let fresh = parse_head(buf, cfg, trusted);
            assert_eq!(
                got, fresh,
                "HeadParser and parse_head disagree on {:?}",
                buf
            );
        }
        if !decided {
            continue;
        }
        let whole = parse_head(&wire[start..], cfg, trusted);
        match got {
            Ok(Some((head, consumed))) => {
                assert!(
                    consumed <= buf.len(),
                    "consumed {consumed} of {}",
                    buf.len()
                );
                check_head_end(buf, consumed);
                check_accepted(&head, cfg);
                assert_eq!(
                    whole,
                    Ok(Some((head, consumed))),
                    "a head from {} bytes is not the head of the whole {} bytes",
                    buf.len(),
                    wire.len() - start
                );
                start += consumed;
            }
            Err(error) => {
                // The same status (the message may name less than the whole input), except
                // that a size limit (414, 431) and a 400 further on in the same bytes may still
                // be told apart by where the cut falls: only a refusal either way is required.
                let statuses = (whole.as_ref().err().map(|e| e.status()), error.status());
                let limit = |s: u16| s == 414 || s == 431;
                assert!(
                    match statuses {
                        (Some(w), c) => w == c || limit(w) || limit(c),
                        (None, _) => false,
                    },
                    "{} bytes were refused ({error:?}) but all {} give {whole:?}",
                    buf.len(),
                    wire.len() - start
                );
                return;
            }
            Ok(None) => unreachable!("undecided results were skipped above"),
        }
    }
}

/// A head ends at its first empty line, after the optional leading CRLF: a request line never
/// holds a CR, so the first CRLF CRLF is the end.
fn check_head_end(buf: &[u8], consumed: usize) {
    let from = if buf.starts_with(b"\r\n") { 2 } else { 0 };
    let end = buf[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| from + at + 4);
    assert_eq!(
        end,
        Some(consumed),
        "head length is not its first empty line"
    );
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Rules an accepted head must satisfy whichever path accepted it, stated independently of the
/// parser's own code.
fn check_accepted(head: &RequestHead, cfg: &ParserConfig) {
    assert!(
        !head.method.is_empty() && head.method.chars().all(is_tchar),
        "method {:?} is not a token",
        head.method
    );
    assert!(
        !head.uri.is_empty() && head.uri.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "target {:?} is not printable ASCII",
        head.uri
    );
    if !cfg.permit_unconventional_http_version {
        assert_eq!(head.version.0, 1, "version {:?} accepted", head.version);
    }
    assert!(
        head.headers.len() <= cfg.limits().fields,
        "{} fields kept over a limit of {}",
        head.headers.len(),
        cfg.limits().fields
    );
    for (name, value) in &head.headers {
        assert!(
            !name.is_empty()
                && name.chars().all(is_tchar)
                && !name.chars().any(|c| c.is_ascii_lowercase()),
            "field name {name:?} is not an upper-cased token"
        );
        assert!(
            !value.contains(['\r', '\n', '\0']),
            "field value {value:?} holds CR, LF or NUL"
        );
    }
}
