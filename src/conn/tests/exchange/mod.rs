//! `H1Exchange` through the `http` traits the WSGI bridge uses: the request body as the app
//! reads it, the response as Gunicorn frames it, and what becomes of the connection.

mod body;
mod conclude;
mod response;

use std::os::unix::net::UnixStream;

use ferrocorn_h1::{BodyKind, ParserConfig};

use super::{read_to_eof, unix_pair, PATIENCE};
use crate::conn::exchange::{H1Exchange, Setup};
use crate::conn::reader::Framing;
use crate::http::Peer;

/// What an exchange is built from, with the defaults of a plain HTTP/1.1 GET.
pub(super) struct Spec {
    pub(super) body: BodyKind,
    pub(super) expect_continue: bool,
    pub(super) version: (u8, u8),
    pub(super) method: &'static str,
    pub(super) leftover: &'static [u8],
    pub(super) may_hold: bool,
    pub(super) to_gateway: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            body: BodyKind::Length(0),
            expect_continue: false,
            version: (1, 1),
            method: "GET",
            leftover: b"",
            may_hold: false,
            to_gateway: false,
        }
    }
}

impl Spec {
    fn length(n: u64, leftover: &'static [u8]) -> Spec {
        Spec {
            body: BodyKind::Length(n),
            method: "POST",
            leftover,
            ..Spec::default()
        }
    }

    fn chunked(leftover: &'static [u8]) -> Spec {
        Spec {
            body: BodyKind::Chunked,
            method: "POST",
            leftover,
            ..Spec::default()
        }
    }

    /// The exchange over a fresh unix pair (our read timeout bounds every wait) and the
    /// client's end.
    pub(super) fn build(self) -> (H1Exchange, UnixStream) {
        let (mut ours, peer) = unix_pair();
        ours.set_read_timeout(Some(PATIENCE)).unwrap();
        ours.set_write_timeout(Some(PATIENCE)).unwrap();
        let pcfg = ParserConfig::default();
        let setup = Setup {
            pcfg: &pcfg,
            framing: Framing {
                body: self.body,
                expect_continue: self.expect_continue,
                to_gateway: self.to_gateway,
            },
            version: self.version,
            method: self.method,
            leftover: self.leftover.to_vec(),
            may_hold: self.may_hold,
            body_wait: None,
        };
        (H1Exchange::new(ours, Peer::Unix, setup), peer)
    }
}

/// Headers as the app gives them.
pub(super) fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Take the connection back (nothing held), close it, and return all the client got.
pub(super) fn wire(ex: &mut H1Exchange, peer: &mut UnixStream) -> Vec<u8> {
    let (transport, held) = ex.take_back().expect("the connection is still there");
    assert!(held.is_empty(), "response bytes were held back");
    drop(transport);
    read_to_eof(peer)
}

/// Check a response head: the status line, Server, a Date, then exactly `rest` (the
/// Connection header, framing and the app's headers). Returns the body.
pub(super) fn expect_head<'a>(wire: &'a [u8], status_line: &str, rest: &[&str]) -> &'a [u8] {
    let text = String::from_utf8_lossy(wire);
    let end = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {text:?}"));
    let head = std::str::from_utf8(&wire[..end]).unwrap();
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], status_line, "{text:?}");
    assert_eq!(lines[1], "Server: ferrocorn", "{text:?}");
    assert!(
        lines[2].starts_with("Date: ") && lines[2].ends_with(" GMT") && lines[2].len() == 35,
        "{text:?}"
    );
    assert_eq!(&lines[3..], rest, "{text:?}");
    &wire[end + 4..]
}
