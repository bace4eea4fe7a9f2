//! A static-file request on the ASGI worker, served in its connection task: the path is
//! resolved, the files opened and a small body read on the runtime's blocking threads (so
//! the I/O thread never waits for the disk), then the head and body written here. The
//! event loop never hears of the request.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use ferrocorn_h1::BodyKind;

use super::{Outcome, Stream};
use crate::conn::reader::Framing;
use crate::http::Request;
use crate::statics::{Body, Statics};
use crate::telemetry::{access, error_log, metrics, pyroute};
use crate::workers::access_log;
use crate::workers::asgi::stream::off_thread;

/// A file up to this size is read with the decision and leaves with the head in one write.
const INLINE: u64 = 64 * 1024;

/// Answer `request` from `statics` and say what becomes of the connection. `rest`: the
/// bytes read past the head.
pub async fn serve(
    stream: &mut Stream,
    statics: Arc<Statics>,
    request: Request,
    framing: Framing,
    mut rest: Vec<u8>,
    close: bool,
) -> Outcome {
    let started = Instant::now();
    let _in_flight = metrics::InFlight::enter();
    let decided = off_thread(move || {
        let target = statics
            .lookup(&request.path, false)
            .ok_or_else(|| std::io::Error::other("the path left the mount"))?;
        let answer = statics.answer(target, &request.method, &request.headers);
        let inline = match (&answer.reply.body, &answer.file) {
            (Body::File { start, len }, Some(file)) if *len <= INLINE => {
                let mut buf = vec![0u8; *len as usize];
                file.read_exact_at(&mut buf, *start)?;
                Some(buf)
            }
            _ => None,
        };
        Ok((request, answer, inline))
    })
    .await;
    let (request, mut answer, inline) = match decided {
        Ok(d) => d,
        Err(e) => {
            error_log::error(&format!("Static file request failed: {e}"));
            return Outcome::Close;
        }
    };
    let body_skipped = match framing.body {
        BodyKind::Length(0) => true,
        BodyKind::Length(n) if !framing.expect_continue && rest.len() as u64 >= n => {
            rest.drain(..n as usize);
            true
        }
        _ => false,
    };
    let close = close || request.close_requested || !body_skipped;
    let head = answer.head(request.version, close);
    let file = answer.file.take();
    let written = write(stream, &answer.reply.body, file, &head, inline).await;
    let expected = answer.reply.body_len();
    let (sent, outcome) = match written {
        Ok(n) if n == expected && close => (n, Outcome::Close),
        Ok(n) if n == expected => (n, Outcome::KeepAlive(rest)),
        Ok(n) => {
            error_log::warning(&format!(
                "Static file shorter than its Content-Length ({n} of {expected} bytes): {}",
                request.path
            ));
            (n, Outcome::Close)
        }
        Err(e) => {
            error_log::debug(&format!("Ignoring connection error while writing: {e}"));
            (0, Outcome::Drop)
        }
    };
    let elapsed = started.elapsed();
    metrics::request_done(&request.method, answer.reply.status, elapsed);
    if access::enabled() || pyroute::active() {
        let status = answer.status_line();
        access_log::log(&request, &status, sent, &answer.log_headers(), elapsed);
    }
    outcome
}

/// Write the head and the body; the body bytes sent.
async fn write(
    stream: &mut Stream,
    body: &Body,
    file: Option<Arc<File>>,
    head: &[u8],
    inline: Option<Vec<u8>>,
) -> std::io::Result<u64> {
    match (body, file, inline) {
        (_, _, Some(body)) => {
            stream.write_all_parts(&[head, &body]).await?;
            Ok(body.len() as u64)
        }
        (Body::File { start, len }, Some(file), None) => {
            stream.write_all(head).await?;
            stream.send_file_off_thread(file, *start, *len).await
        }
        (Body::Text(text), _, None) => {
            stream.write_all_parts(&[head, text.as_bytes()]).await?;
            Ok(text.len() as u64)
        }
        _ => stream.write_all(head).await.map(|()| 0),
    }
}
