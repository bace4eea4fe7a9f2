//! The request body of an HTTP/1 exchange, streamed from the socket on demand (a 1 GB upload
//! never sits in memory). `Expect: 100-continue` is answered on the app's first read, so a
//! client is never told to send a body the app will not read.

use std::io;
use std::time::Instant;

use ferrocorn_h1::{BodyDecoder, ParseError};

use super::response::Writing;
use super::{finished, H1Exchange};
use crate::conn::transport::Transport;
use crate::conn::{is_read_timeout, Liveness};
use crate::http::BodySource;

/// A blocking read that beats `wait.liveness` as it waits and gives up at `wait.deadline`.
fn read_beating(transport: &mut Transport, buf: &mut [u8], wait: &BodyWait) -> io::Result<usize> {
    loop {
        let left = wait.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let liveness = Some(&wait.liveness);
        transport.set_read_timeout(Liveness::slice(liveness, Some(left)))?;
        let res = transport.read(buf);
        if !Liveness::after_read(liveness, &res) {
            return res;
        }
    }
}

/// Largest single socket read for a body (Gunicorn 27 reads up to 1 MiB).
const MAX_READ: usize = 1 << 20;

/// How blocking body reads wait on the client: not past `deadline` in all (a client that
/// trickles its body holds the worker no longer than one that stalls), beating `liveness`
/// after every read (the sync worker: waiting on a client is not a hung worker, and must not
/// race the master's `timeout`, which starts again once the body is in).
#[derive(Clone)]
pub struct BodyWait {
    pub deadline: Instant,
    pub liveness: Liveness,
}

/// Where the request body is.
#[derive(Debug)]
pub(super) enum Reading {
    /// `Expect: 100-continue`: the interim response goes out on the app's first read.
    Continue(BodyDecoder),
    Body(BodyDecoder),
    /// The body is complete; the bytes left in `raw` belong to the next request.
    Done,
    /// The client closed before a Content-Length body ended: the app gets what came, as
    /// Gunicorn's length reader hands it over, and the connection cannot carry more.
    Cut,
    /// The body could not be decoded, or a chunked body ended early. The error is taken
    /// once, for the error page.
    Failed(Option<ParseError>),
}

impl Reading {
    pub(super) fn new(decoder: BodyDecoder, expect_continue: bool) -> Self {
        match decoder {
            d if d.is_done() => Reading::Done,
            d if expect_continue => Reading::Continue(d),
            d => Reading::Body(d),
        }
    }

    fn is_over(&self) -> bool {
        matches!(self, Reading::Done | Reading::Cut | Reading::Failed(_))
    }
}

impl H1Exchange {
    fn available(&self) -> usize {
        self.out.len() - self.out_pos
    }

    fn recv(&mut self, want: usize) -> io::Result<usize> {
        let transport = self.transport.as_mut().ok_or_else(finished)?;
        if let Reading::Continue(_) = self.reading {
            // Once the final response head is out, an interim response would land inside it.
            if self.writing == Writing::Init {
                transport.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            if let Reading::Continue(d) = std::mem::replace(&mut self.reading, Reading::Done) {
                self.reading = Reading::Body(d);
            }
        }
        if self.raw_pos >= self.raw.len() {
            self.raw.clear();
            self.raw_pos = 0;
        }
        let start = self.raw.len();
        self.raw.resize(start + want, 0);
        let buf = &mut self.raw[start..];
        let res = match &self.body_wait {
            Some(wait) => read_beating(transport, buf, wait),
            None => transport.read(buf),
        };
        // A blocking read running out says EAGAIN; the app should see a timeout.
        let res = res.map_err(|e| match is_read_timeout(&e) {
            true => io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out waiting for the request body",
            ),
            false => e,
        });
        let n = *res.as_ref().unwrap_or(&0);
        self.raw.truncate(start + n);
        res
    }

    /// Decode more body into `out`. Returns false at the end of the body. Blocking.
    fn fill(&mut self, want: usize) -> io::Result<bool> {
        loop {
            let pending = &self.raw[self.raw_pos..];
            let (Reading::Continue(dec) | Reading::Body(dec)) = &mut self.reading else {
                return Ok(false);
            };
            if !pending.is_empty() {
                // What the app already took goes first: appended to, a buffer read in pieces
                // that never line up with the decoded ones would keep the whole body.
                if self.out_pos > 0 {
                    self.out.drain(..self.out_pos);
                    self.out_pos = 0;
                }
                let before = self.out.len();
                match dec.decode(pending, &mut self.out) {
                    Ok(used) => self.raw_pos += used,
                    Err(e) => return self.protocol_error(e),
                }
                let done = dec.is_done();
                if done {
                    self.reading = Reading::Done;
                }
                if self.out.len() > before || done {
                    return Ok(true);
                }
                // Only chunk framing was consumed: decode again, or receive.
                continue;
            }
            let ask = match dec {
                BodyDecoder::Length { remaining } => {
                    (*remaining).min(want.clamp(8192, MAX_READ) as u64) as usize
                }
                BodyDecoder::Chunked(_) => want.clamp(8192, MAX_READ),
            };
            if self.recv(ask)? > 0 {
                continue;
            }
            return match &self.reading {
                Reading::Body(BodyDecoder::Chunked(d)) => {
                    let err = d.finish_eof().err();
                    self.protocol_error(err.unwrap_or(ParseError::NoMoreData(None)))
                }
                _ => {
                    self.reading = Reading::Cut;
                    Ok(false)
                }
            };
        }
    }

    fn protocol_error(&mut self, err: ParseError) -> io::Result<bool> {
        let msg = err.message();
        self.reading = Reading::Failed(Some(err));
        Err(io::Error::new(io::ErrorKind::InvalidData, msg))
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.available());
        let v = self.out[self.out_pos..self.out_pos + n].to_vec();
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        v
    }

    /// Read and discard what the app left unread (at most about `max` bytes), so the
    /// connection can go on with the next request. True when the body ended cleanly.
    pub(super) fn drain_body(&mut self, max: usize) -> bool {
        let mut seen = 0;
        while !self.reading.is_over() && seen <= max {
            self.out.clear();
            self.out_pos = 0;
            match self.fill(65536) {
                Ok(_) => seen += self.out.len(),
                Err(_) => return false,
            }
        }
        matches!(self.reading, Reading::Done)
    }

    /// The client waits for `100 Continue` before sending the body: nothing of the body has
    /// come. A client that sent some of it did not wait (curl stops waiting after a second), so
    /// the rest is on its way and can be drained.
    pub(super) fn awaiting_continue(&self) -> bool {
        matches!(self.reading, Reading::Continue(_)) && self.raw_pos >= self.raw.len()
    }

    /// Picks up, without blocking, body bytes a client sent without waiting for
    /// `100 Continue`, so that `awaiting_continue` judges what was sent rather than what was
    /// read. Nothing is read once the body started or when no interim response is pending.
    pub(super) fn look_for_unawaited_body(&mut self) {
        if !self.awaiting_continue() {
            return;
        }
        let Some(transport) = self.transport.as_mut() else {
            return;
        };
        let mut buf = [0u8; 8192];
        if let Ok(Some(n)) = transport.try_read(&mut buf) {
            self.raw.clear();
            self.raw_pos = 0;
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    pub(super) fn body_done(&self) -> bool {
        self.reading.is_over()
    }
}

impl BodySource for H1Exchange {
    fn body_buffered(&self) -> bool {
        match &self.reading {
            Reading::Done | Reading::Cut | Reading::Failed(_) => true,
            Reading::Continue(_) | Reading::Body(BodyDecoder::Chunked(_)) => false,
            Reading::Body(BodyDecoder::Length { remaining }) => {
                (self.raw.len() - self.raw_pos) as u64 >= *remaining
            }
        }
    }

    fn read_body(&mut self, size: Option<usize>) -> io::Result<Vec<u8>> {
        let limit = size.unwrap_or(usize::MAX);
        while self.available() < limit {
            let want = limit.saturating_sub(self.available());
            if !self.fill(want)? {
                break;
            }
        }
        Ok(self.take(limit))
    }

    fn read_body_line(&mut self, size: Option<usize>) -> io::Result<Vec<u8>> {
        let limit = size.unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            let avail = &self.out[self.out_pos..];
            if let Some(i) = avail[scanned..].iter().position(|b| *b == b'\n') {
                return Ok(self.take((scanned + i + 1).min(limit)));
            }
            scanned = avail.len();
            if scanned >= limit || !self.fill(8192)? {
                return Ok(self.take(limit));
            }
        }
    }

    fn read_body_in_place(&mut self, size: Option<usize>, f: &mut dyn FnMut(&[u8])) -> bool {
        if self.available() != 0 || !self.body_buffered() {
            return false;
        }
        let Reading::Body(BodyDecoder::Length { remaining }) = &mut self.reading else {
            return false;
        };
        let pending = self.raw.len() - self.raw_pos;
        let n = (*remaining)
            .min(size.unwrap_or(usize::MAX) as u64)
            .min(pending as u64) as usize;
        f(&self.raw[self.raw_pos..self.raw_pos + n]);
        self.raw_pos += n;
        *remaining -= n as u64;
        if *remaining == 0 {
            self.reading = Reading::Done;
        }
        true
    }

    fn take_body_error(&mut self) -> Option<ParseError> {
        match &mut self.reading {
            Reading::Failed(err) => err.take(),
            _ => None,
        }
    }
}
