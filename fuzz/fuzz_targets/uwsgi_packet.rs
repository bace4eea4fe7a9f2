//! Fuzz target: the uWSGI packet parser (`protocol = uwsgi`), whole and at every cut.
//!
//! Parses every prefix that ends at one of the input's cut points and checks that a prefix
//! either needs more bytes or gives exactly the whole input's result (the same head and
//! length, or the same error), and that once a prefix is decided every longer one is too.
//! A decided head took the 4-byte header plus its vars block, never more than it was given;
//! it is one request per connection, HTTP/1.1, with a token method, upper-cased token header
//! names and no control characters in header values.
//!
//! Owns only these properties; the input layout is in `src/lib.rs` (the settings byte matters
//! only through `is_ssl`, the default scheme).
#![no_main]

use ferrocorn_h1::{parse_uwsgi, BodyKind, UwsgiError, UWSGI_MAX_VARS};
use ferrocorn_h1_fuzz::FuzzInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(input) = FuzzInput::decode(data) {
        check(&input);
    }
});

fn check(input: &FuzzInput<'_>) {
    let wire = input.wire;
    let whole = parse_uwsgi(wire, &input.cfg);
    if let Ok(Some((head, used))) = &whole {
        assert!(
            *used >= 4 && *used <= wire.len(),
            "used {used} of {}",
            wire.len()
        );
        assert_eq!(
            *used,
            4 + usize::from(u16::from_le_bytes([wire[1], wire[2]]))
        );
        assert!(head.must_close && head.gateway.is_some());
        assert_eq!(head.version, (1, 1));
        assert!(matches!(head.body, BodyKind::Length(_)));
        assert!(!head.method.is_empty() && head.method.bytes().all(|b| b.is_ascii_graphic()));
        for (name, value) in &head.headers {
            assert!(!name.is_empty(), "empty header name");
            assert!(
                !name.bytes().any(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name:?}"
            );
            assert!(
                !value.chars().any(|c| c == '\r' || c == '\n' || c == '\0'),
                "{value:?}"
            );
        }
        assert!(head.scheme == "http" || head.scheme == "https");
    }
    if let Err(UwsgiError::TooManyVars) = &whole {
        assert!(wire.len() >= 4 + UWSGI_MAX_VARS * 4);
    }
    let mut decided = false;
    for end in input.cut_points() {
        let part = parse_uwsgi(&wire[..end], &input.cfg);
        match &part {
            Ok(None) => assert!(!decided, "a longer prefix than {end} needs more again"),
            _ => {
                decided = true;
                assert_eq!(part, whole, "prefix of {end} bytes");
            }
        }
    }
    if whole == Ok(None) {
        assert!(!decided);
    }
}
