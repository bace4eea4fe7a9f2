//! Fuzz target: the chunked body decoder, whole and in pieces.
//!
//! Decodes the wire in one call and again in the cuts the input chooses, then checks that both
//! agree on the bytes consumed, the body, the trailers, whether the body finished, the error's
//! status, and the end-of-stream verdict; that no call consumes more than it was given; and that
//! a decoder stops consuming only once the body is done, after which it takes nothing more.
//!
//! Owns only these properties; the input layout is in `src/lib.rs`.
#![no_main]

use ferrocorn_h1::{ChunkedDecoder, ParseError};
use ferrocorn_h1_fuzz::FuzzInput;
use libfuzzer_sys::fuzz_target;

/// What one decoding run ended with.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Input bytes consumed; 0 after an error, when the failing call reports none.
    consumed: usize,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    done: bool,
    /// The status of the decode error, if decoding failed. A size line that can no longer be
    /// valid is refused before its CRLF arrives, and which error the whole line gets depends on
    /// bytes after that point, so only the status is the same whatever the split.
    error: Option<u16>,
    /// `finish_eof` after a run without error.
    eof: Option<Result<(), ParseError>>,
}

fuzz_target!(|data: &[u8]| {
    if let Some(input) = FuzzInput::decode(data) {
        check(&input);
    }
});

fn check(input: &FuzzInput<'_>) {
    let wire = input.wire;
    let mut ends = input.cut_points();
    let whole = run(input, wire, &[wire.len()]);
    let split = run(input, wire, &ends);
    assert_eq!(whole, split, "one piece vs cuts at {ends:?}");
    // An empty call must change nothing, whatever state the decoder is in.
    ends.insert(0, 0);
    ends.dedup();
    let with_empty = run(input, wire, &ends);
    assert_eq!(whole, with_empty, "an empty first call changed the outcome");
}

/// Decodes `wire` in pieces ending at `ends`, stopping at the first error.
fn run(input: &FuzzInput<'_>, wire: &[u8], ends: &[usize]) -> Outcome {
    let mut decoder = ChunkedDecoder::new(&input.cfg);
    let mut body = Vec::new();
    let mut consumed = 0;
    let mut error = None;
    let mut from = 0;
    for &end in ends {
        let piece = &wire[from..end];
        from = end;
        let before = body.len();
        match decoder.decode(piece, &mut body) {
            Ok(used) => {
                assert!(used <= piece.len(), "consumed {used} of {}", piece.len());
                assert!(
                    body.len() - before <= used,
                    "more body bytes out than input consumed"
                );
                consumed += used;
                if used < piece.len() {
                    assert!(decoder.is_done(), "stopped early before the body ended");
                    let mut extra = Vec::new();
                    assert_eq!(decoder.decode(&wire[consumed..], &mut extra), Ok(0));
                    assert!(extra.is_empty(), "a finished decoder produced body bytes");
                    break;
                }
            }
            Err(e) => {
                error = Some(e.status());
                break;
            }
        }
    }
    let done = decoder.is_done();
    if !done {
        assert!(decoder.trailers().is_empty(), "trailers before the end");
    }
    Outcome {
        consumed: if error.is_none() { consumed } else { 0 },
        body,
        trailers: decoder.trailers().to_vec(),
        done,
        eof: error.is_none().then(|| decoder.finish_eof()),
        error,
    }
}
