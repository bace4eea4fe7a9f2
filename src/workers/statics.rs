//! A static-file request on the sync and gthread workers: decided by `statics`, written
//! through the connection's transport (the head and a small file in one write; a larger
//! file with sendfile after the head, or read and encrypted under TLS), logged and counted.
//! Runs with the GIL released and calls no Python: no hooks, no environ.
//!
//! Owns: the write and what becomes of the connection afterwards. Must not: decide the
//! response (`statics`) or schedule the connection (the worker's loop).

use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use ferrocorn_h1::BodyKind;

use super::access_log;
use crate::conn::reader::Framing;
use crate::conn::{Liveness, Transport};
use crate::http::{After, Request};
use crate::statics::{Body, Statics, Target};
use crate::telemetry::{access, error_log, metrics, pyroute};

/// A file up to this size is read into the head's buffer and leaves in one write.
const INLINE: u64 = 16 * 1024;
/// sendfile in pieces of this size, beating the watchdog between them.
const PIECE: u64 = 1 << 20;

/// What the worker's loop knows of the request besides the request itself.
pub struct Conn<'a> {
    pub transport: &'a mut Transport,
    /// Bytes read past the head: the body, if any, then maybe a pipelined request.
    pub leftover: Vec<u8>,
    /// The worker closes the connection after this response whatever happens.
    pub close: bool,
    /// The sync worker's heartbeat, beaten while a large file goes out.
    pub liveness: Option<&'a Liveness>,
}

/// Answer `req` (under `target` of `statics`) and say what becomes of the connection.
/// Call with the GIL released.
pub fn serve(
    statics: &Statics,
    target: Target<'_>,
    req: &Request,
    framing: Framing,
    conn: Conn<'_>,
) -> After {
    let started = Instant::now();
    let _in_flight = metrics::InFlight::enter();
    let Conn {
        transport,
        mut leftover,
        close,
        liveness,
    } = conn;
    let answer = statics.answer(target, &req.method, &req.headers);
    // A request body is not read: skipped when it already arrived whole, else the
    // connection ends after the response.
    let body_skipped = match framing.body {
        BodyKind::Length(0) => true,
        BodyKind::Length(n) if !framing.expect_continue && leftover.len() as u64 >= n => {
            leftover.drain(..n as usize);
            true
        }
        _ => false,
    };
    let close = close || req.close_requested || !body_skipped;
    let mut out = answer.head(req.version, close);
    let written = match (&answer.reply.body, &answer.file) {
        (Body::File { start, len }, Some(file)) if *len <= INLINE => {
            let at = out.len();
            out.resize(at + *len as usize, 0);
            match file.read_exact_at(&mut out[at..], *start) {
                Ok(()) => transport.write_all(&out).map(|()| *len),
                Err(e) => Err(e),
            }
        }
        (Body::File { start, len }, Some(file)) => transport
            .write_all_more(&out)
            .and_then(|()| send_file(transport, file, *start, *len, liveness)),
        (Body::Text(text), _) => {
            out.extend_from_slice(text.as_bytes());
            transport.write_all(&out).map(|()| text.len() as u64)
        }
        _ => transport.write_all(&out).map(|()| 0),
    };
    let expected = answer.reply.body_len();
    let (sent, after) = match written {
        Ok(n) if n == expected && close => (n, After::Close),
        Ok(n) if n == expected => (n, After::KeepAlive(leftover)),
        Ok(n) => {
            // The file shrank while it was sent: the framing promised more.
            error_log::warning(&format!(
                "Static file shorter than its Content-Length ({n} of {expected} bytes): {}",
                req.path
            ));
            (n, After::Close)
        }
        Err(e) => {
            error_log::debug(&format!("Ignoring connection error while writing: {e}"));
            (0, After::Gone)
        }
    };
    let elapsed = started.elapsed();
    metrics::request_done(&req.method, answer.reply.status, elapsed);
    if access::enabled() || pyroute::active() {
        let status = answer.status_line();
        access_log::log(req, &status, sent, &answer.log_headers(), elapsed);
    }
    after
}

/// Send `len` bytes of `file` from `start`; the bytes sent (fewer if the file ended).
fn send_file(
    transport: &mut Transport,
    file: &std::fs::File,
    start: u64,
    len: u64,
    liveness: Option<&Liveness>,
) -> std::io::Result<u64> {
    let mut offset = start as i64;
    let mut sent = 0;
    while sent < len {
        let piece = (len - sent).min(PIECE);
        let n = transport.send_file(file.as_fd(), &mut offset, piece)?;
        sent += n;
        if let Some(l) = liveness {
            (l.beat)();
        }
        if n < piece {
            break;
        }
    }
    Ok(sent)
}
