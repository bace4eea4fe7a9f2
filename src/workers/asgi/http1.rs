//! One HTTP/1 connection of the ASGI worker, as an async task on the I/O thread: read and
//! parse heads (the same `HeadReader` and codec as the WSGI workers), hand each request to
//! the event loop as a `Session`, stream its body as the app reads it, and frame and write
//! what the app sends. Keep-alive and pipelining: the next request is read once the
//! response is complete, while the app's task may still run (background work).
//!
//! Owns: the connection's socket and its states (waiting for a head, serving a call,
//! draining, closing). Must not: call Python; the session is the only thing shared with
//! the event loop.

use std::sync::Arc;
use std::time::Instant;

use ferrocorn_h1::{BodyDecoder, ParseError};
use tokio::time::sleep_until;

use super::ctx::ConnCtx;
use super::stream::Stream;
use super::wire;
use crate::conn::reader::{into_request, Framing, Progress};
use crate::conn::{log_parse_error, HeadReader, PeerPolicy};
use crate::http::{
    ByteHeaders, CallKind, HubEvent, Inbound, NewCall, Outgoing, Peer, Request, ServerAddr,
    Session, RECEIVE_HIGH_WATER,
};
use crate::telemetry::{access, error_log};

/// Content-Length bodies up to this size arrive with their request: one message, no wait.
const GATHER: u64 = 64 * 1024;
/// Bytes read past a request whose body is done (the next pipelined request, or a probe
/// for the client leaving) before the connection stops reading until the response is out.
const PIPELINE_LIMIT: usize = 64 * 1024;
/// Unread body discarded to keep a connection alive; a longer one closes it.
const DRAIN_LIMIT: usize = 1 << 20;

pub async fn serve(mut stream: Stream, peer: Peer, server: ServerAddr, ctx: Arc<ConnCtx>) {
    let pcfg = &ctx.serving.parser;
    let mut reader = HeadReader::new(PeerPolicy::new(&ctx.serving, &peer), GATHER);
    let mut stopping = ctx.stopping.clone();
    let mut number = 0u64;
    loop {
        // Wait for a head: `timeout` for the first request and for a head under way,
        // `keepalive` between requests; a stopping worker closes idle connections.
        let mut head_since: Option<tokio::time::Instant> = None;
        let (head, rest) = loop {
            if reader.has_buffered() {
                match reader.advance(pcfg) {
                    Progress::NeedMore => {}
                    Progress::Ready(head, rest) => break (head, rest),
                    Progress::Invalid(e) => {
                        reject(stream, &peer, &e).await;
                        return;
                    }
                }
            }
            let started = reader.has_buffered() || reader.waiting_body();
            // A stopping worker closes idle kept-alive connections (their client retries);
            // a new connection still gets its first request served, which may already be
            // on its way (Gunicorn's graceful stop waits for it too).
            let idle = !started && number > 0;
            if idle && *stopping.borrow() {
                return;
            }
            // A head under way must be complete within `timeout` of its first byte, however
            // it trickles in (as in the gthread worker).
            let deadline = match (started, number) {
                (true, _) => {
                    *head_since.get_or_insert_with(tokio::time::Instant::now)
                        + ctx.serving.io_deadline()
                }
                (false, 0) => tokio::time::Instant::now() + ctx.serving.io_deadline(),
                (false, _) => {
                    tokio::time::Instant::now() + ctx.serving.keepalive.unwrap_or_default()
                }
            };
            tokio::select! {
                r = stream.read_with(|b| reader.feed(b)) => match r {
                    Ok(0) | Err(_) => {
                        if let Some((head, rest)) = reader.take_partial() {
                            break (head, rest);
                        }
                        return;
                    }
                    Ok(_) => {}
                },
                _ = sleep_until(deadline) => return,
                _ = stopping.changed(), if idle => return,
            }
        };
        number += 1;
        let proxy = reader.proxy_info().cloned();
        let (request, framing) = into_request(*head, peer.clone(), server.clone(), proxy, number);
        if let Some(subprotocols) = websocket_upgrade(&request) {
            super::ws::serve(stream, request, rest, subprotocols, ctx).await;
            return;
        }
        let mut call = Call::new(&ctx, &request, framing);
        let outcome = call.run(&mut stream, request, rest).await;
        match outcome {
            Outcome::KeepAlive(leftover) => reader.resume(leftover),
            Outcome::Close => {
                stream.close_graceful().await;
                return;
            }
            Outcome::Drop => return,
        }
    }
}

/// A bad request: Gunicorn's status and message, then close.
async fn reject(mut stream: Stream, peer: &Peer, err: &ParseError) {
    log_parse_error(peer, err);
    let _ = stream
        .write_all(&wire::error_response(err.status(), &err.message(), &[]))
        .await;
    stream.close_graceful().await;
}

/// The subprotocols a WebSocket upgrade asks for, when the request is one.
fn websocket_upgrade(req: &Request) -> Option<Vec<String>> {
    let header = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let upgrade = header("UPGRADE").any(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let connection = header("CONNECTION")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if req.method != "GET" || !upgrade || !connection {
        return None;
    }
    Some(
        header("SEC-WEBSOCKET-PROTOCOL")
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

enum Outcome {
    KeepAlive(Vec<u8>),
    Close,
    /// The client is gone: nothing to close gracefully.
    Drop,
}

/// The response as it goes out.
#[derive(Default)]
struct Response {
    start: Option<(u16, ByteHeaders)>,
    head_written: bool,
    complete: bool,
    chunked: bool,
    omit: bool,
    warned: bool,
    /// Body bytes the app's Content-Length still allows.
    length_left: Option<u64>,
    sent: u64,
    close: bool,
    status: u16,
    headers_for_log: Vec<(String, String)>,
}

struct Call<'a> {
    ctx: &'a ConnCtx,
    peer: Peer,
    method: String,
    version: (u8, u8),
    close_requested: bool,
    decoder: BodyDecoder,
    resp: Response,
    started_at: Instant,
    /// Kept for the access log.
    logged: Option<Request>,
}

impl<'a> Call<'a> {
    fn new(ctx: &'a ConnCtx, request: &Request, framing: Framing) -> Self {
        Call {
            ctx,
            peer: request.peer.clone(),
            method: request.method.clone(),
            version: request.version,
            close_requested: request.close_requested,
            decoder: BodyDecoder::new(framing.body, &ctx.serving.parser),
            resp: Response::default(),
            started_at: Instant::now(),
            logged: access::enabled().then(|| request.clone()),
        }
    }

    async fn run(&mut self, stream: &mut Stream, request: Request, mut raw: Vec<u8>) -> Outcome {
        let (session, mut rx) = Session::new(self.ctx.hub.clone(), false);
        let expect_continue = request_expects_continue(&request);
        // What already arrived of the body goes with the request.
        let mut body = Vec::new();
        match self.decoder.decode(&raw, &mut body) {
            Ok(used) => {
                raw.drain(..used);
            }
            Err(e) => {
                let peer = request.peer.clone();
                log_parse_error(&peer, &e);
                let _ = stream
                    .write_all(&wire::error_response(e.status(), &e.message(), &[]))
                    .await;
                return Outcome::Close;
            }
        }
        {
            let mut st = session.state();
            let done = self.decoder.is_done();
            if !body.is_empty() || done {
                st.inbound_bytes += body.len();
                st.inbound.push_back(Inbound::Body {
                    data: body,
                    more: !done,
                });
            }
            st.continue_pending = expect_continue && !done;
        }
        let _in_flight = self.ctx.in_flight(&request.method, &request.uri);
        self.ctx.hub.push(HubEvent::Call(Box::new(NewCall {
            request,
            kind: CallKind::Http,
            session: session.clone(),
        })));

        let grace = self.ctx.asgi.disconnect_grace;
        let io_deadline = self.ctx.serving.io_deadline();
        let mut eof = false;
        let mut paused = false;
        let mut app_done = false;
        let mut cancel_at: Option<tokio::time::Instant> = None;
        let mut body_deadline = tokio::time::Instant::now() + io_deadline;
        loop {
            if self.resp.complete {
                break;
            }
            if app_done {
                return self.unfinished(stream).await;
            }
            let gone = session.state().client_gone;
            if gone && cancel_at.is_none() {
                // The cancel went out; nothing more can reach the client.
                return Outcome::Drop;
            }
            let body_open = !self.decoder.is_done();
            let want_read = !eof
                && !gone
                && if body_open {
                    !paused
                } else {
                    raw.len() < PIPELINE_LIMIT
                };
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Outgoing::Done { failed }) => {
                        app_done = true;
                        if failed && !self.resp.head_written && self.resp.start.is_some() {
                            // Started but nothing written: the client gets the 500.
                            self.resp.start = None;
                        }
                    }
                    Some(m) => {
                        if let Err(()) = self.handle(stream, &session, m, &mut raw).await {
                            session.disconnect(true);
                            session.abandon_output();
                            cancel_at = Some(tokio::time::Instant::now() + grace);
                        }
                    }
                    None => app_done = true,
                },
                r = stream.read_with(|b| raw.extend_from_slice(b)), if want_read => match r {
                    Ok(0) | Err(_) => {
                        eof = true;
                        if body_open {
                            let _ = self.decoder.finish_eof();
                        }
                        session.disconnect(true);
                        session.abandon_output();
                        cancel_at = Some(tokio::time::Instant::now() + grace);
                    }
                    Ok(_) if body_open => {
                        body_deadline = tokio::time::Instant::now() + io_deadline;
                        let mut data = Vec::new();
                        match self.decoder.decode(&raw, &mut data) {
                            Ok(used) => {
                                raw.drain(..used);
                                let more = !self.decoder.is_done();
                                if !data.is_empty() || !more {
                                    session.deliver(Inbound::Body { data, more });
                                }
                                paused = session.state().inbound_bytes >= RECEIVE_HIGH_WATER;
                            }
                            Err(e) => {
                                // A bad body after the request went to the app: the client
                                // gets Gunicorn's 400 (if nothing was sent yet), the app a
                                // disconnect, and its task is cancelled after the grace.
                                log_parse_error(&self.peer, &e);
                                session.disconnect(true);
                                session.abandon_output();
                                if !self.resp.head_written {
                                    let page = wire::error_response(e.status(), &e.message(), &[]);
                                    let _ = stream.write_all(&page).await;
                                }
                                cancel_later(&session, grace);
                                return Outcome::Close;
                            }
                        }
                    }
                    Ok(_) => {}
                },
                _ = session.space.notified(), if paused => paused = false,
                _ = sleep_until(cancel_at.unwrap_or_else(tokio::time::Instant::now)), if cancel_at.is_some() => {
                    session.request_cancel();
                    return Outcome::Drop;
                }
                _ = sleep_until(body_deadline), if body_open && !eof && !gone => {
                    // The client stopped sending its body: the app hears a disconnect, may
                    // still answer (Gunicorn's apps send a 408), and the connection is not
                    // reused.
                    session.disconnect(false);
                    eof = true;
                }
            }
        }
        // The response is complete.
        self.log_access();
        session.disconnect(false);
        if self.resp.close || eof {
            return Outcome::Close;
        }
        if !self.decoder.is_done() && !self.drain_body(stream, &mut raw).await {
            return Outcome::Close;
        }
        Outcome::KeepAlive(raw)
    }

    /// The app returned (or raised) before its response was complete.
    async fn unfinished(&mut self, stream: &mut Stream) -> Outcome {
        if !self.resp.head_written {
            self.resp.status = 500;
            let page = wire::error_response(500, "Internal Server Error", &[]);
            let _ = stream.write_all(&page).await;
            self.resp.sent = 0;
            self.log_access();
            return Outcome::Close;
        }
        error_log::error(
            "ASGI application returned without completing the response; closing the connection",
        );
        self.log_access();
        Outcome::Close
    }

    /// Discard what is left of a body the app did not read, so the connection can go on.
    async fn drain_body(&mut self, stream: &mut Stream, raw: &mut Vec<u8>) -> bool {
        let mut discarded = 0usize;
        let deadline = tokio::time::Instant::now() + self.ctx.serving.io_deadline();
        loop {
            let mut sink = Vec::new();
            match self.decoder.decode(raw, &mut sink) {
                Ok(used) => {
                    raw.drain(..used);
                }
                Err(_) => return false,
            }
            discarded += sink.len();
            if self.decoder.is_done() {
                return true;
            }
            if discarded > DRAIN_LIMIT {
                return false;
            }
            match tokio::time::timeout_at(deadline, stream.read_with(|b| raw.extend_from_slice(b)))
                .await
            {
                Ok(Ok(n)) if n > 0 => {}
                _ => return false,
            }
        }
    }

    /// Write what one message asks for. Err: the client is gone.
    async fn handle(
        &mut self,
        stream: &mut Stream,
        session: &Arc<Session>,
        msg: Outgoing,
        raw: &mut [u8],
    ) -> Result<(), ()> {
        let _ = raw;
        match msg {
            Outgoing::Continue if !self.resp.head_written && self.resp.start.is_none() => {
                stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .map_err(drop)?;
            }
            // HTTP/1.0 has no interim responses (RFC 9110 15.2).
            Outgoing::Informational { status, headers }
                if !self.resp.head_written && self.version >= (1, 1) =>
            {
                let mut out = format!(
                    "HTTP/{}.{} {} {}\r\n",
                    self.version.0,
                    self.version.1,
                    status,
                    wire::reason(status)
                )
                .into_bytes();
                for (n, v) in &headers {
                    out.extend_from_slice(n);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(v);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
                stream.write_all(&out).await.map_err(drop)?;
            }
            Outgoing::Start { status, headers } => self.resp.start = Some((status, headers)),
            Outgoing::Response {
                status,
                headers,
                data,
                more,
            } => {
                self.resp.start = Some((status, headers));
                return Box::pin(self.handle(stream, session, Outgoing::Body { data, more }, raw))
                    .await;
            }
            Outgoing::Body { data, more } => {
                let n = data.len();
                let mut out = Vec::with_capacity(n + 256);
                if !self.resp.head_written {
                    self.head(&mut out, None);
                }
                self.frame_body(&mut out, &data, !more);
                let res = stream.write_all(&out).await;
                session.written(n);
                res.map_err(drop)?;
                if !more {
                    self.resp.complete = true;
                }
            }
            Outgoing::PathSend { path } => {
                self.send_path(stream, &path).await?;
                self.resp.complete = true;
            }
            // WebSocket messages never reach an HTTP call.
            _ => {}
        }
        Ok(())
    }

    /// The response head, deciding the framing as Gunicorn's ASGI worker does.
    /// `file_len`: the body is a file of this size (pathsend), so it can be framed exactly.
    fn head(&mut self, out: &mut Vec<u8>, file_len: Option<u64>) {
        let (status, mut headers) = self.resp.start.take().unwrap_or((500, Vec::new()));
        let scan = wire::scan(&headers);
        let omit = wire::omits_body(&self.method, status);
        let mut chunked = scan.transfer_encoding;
        let mut has_length = scan.has_content_length;
        if omit && (scan.has_content_length || scan.transfer_encoding) {
            let forbid_length = (100..200).contains(&status) || status == 204;
            headers.retain(|(n, _)| {
                let framing = n.eq_ignore_ascii_case(b"transfer-encoding")
                    || (forbid_length && n.eq_ignore_ascii_case(b"content-length"));
                !framing
            });
            if forbid_length {
                has_length = false;
            }
            chunked = false;
        }
        if !has_length && !scan.transfer_encoding && !omit {
            if let Some(len) = file_len {
                headers.push((b"content-length".to_vec(), len.to_string().into_bytes()));
                has_length = true;
                self.resp.length_left = Some(len);
            } else if self.version >= (1, 1) {
                chunked = true;
                headers.push((b"transfer-encoding".to_vec(), b"chunked".to_vec()));
            }
        }
        if has_length && !chunked && !omit && self.resp.length_left.is_none() {
            self.resp.length_left = scan.content_length;
        }
        let close_delimited = !omit && !has_length && !chunked;
        let close = self.close_requested
            || close_delimited
            || self.ctx.serving.keepalive.is_none()
            || !self.ctx.alive();
        if self.logged.is_some() {
            self.resp.headers_for_log = headers
                .iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into_owned(),
                        v.iter().map(|&c| c as char).collect(),
                    )
                })
                .collect();
        }
        wire::encode_head(out, self.version, status, &headers, close);
        self.resp.head_written = true;
        self.resp.status = status;
        self.resp.chunked = chunked;
        self.resp.omit = omit;
        self.resp.close = close;
    }

    fn frame_body(&mut self, out: &mut Vec<u8>, data: &[u8], last: bool) {
        let mut data = data;
        if self.resp.omit {
            if !data.is_empty() && !self.resp.warned {
                self.resp.warned = true;
                error_log::warning(&format!(
                    "ASGI app sent body bytes on a no-body response (method={} status={}); dropping per RFC 9110.",
                    self.method, self.resp.status
                ));
            }
            data = &[];
        }
        if let Some(left) = self.resp.length_left.as_mut() {
            let take = (*left).min(data.len() as u64) as usize;
            data = &data[..take];
            *left -= take as u64;
        }
        self.resp.sent += data.len() as u64;
        if self.resp.chunked {
            wire::push_chunk(out, data);
            if last {
                out.extend_from_slice(wire::LAST_CHUNK);
            }
        } else {
            out.extend_from_slice(data);
        }
        if last && matches!(self.resp.length_left, Some(l) if l > 0) {
            // Shorter than announced: the client would wait for the rest.
            self.resp.close = true;
        }
    }

    async fn send_path(&mut self, stream: &mut Stream, path: &str) -> Result<(), ()> {
        let file = match std::fs::File::open(path).and_then(|f| {
            let len = f.metadata()?.len();
            Ok((f, len))
        }) {
            Ok(f) => f,
            Err(e) => {
                error_log::error(&format!(
                    "http.response.pathsend: cannot open {path:?}: {e}"
                ));
                if !self.resp.head_written {
                    self.resp.start = Some((500, Vec::new()));
                }
                self.resp.close = true;
                return Err(());
            }
        };
        let (file, len) = file;
        let mut out = Vec::new();
        if !self.resp.head_written {
            self.head(&mut out, Some(len));
        }
        let send_len = match self.resp.length_left {
            Some(l) => l.min(len),
            None => len,
        };
        if self.resp.omit {
            stream.write_all(&out).await.map_err(drop)?;
            return Ok(());
        }
        if self.resp.chunked {
            out.extend_from_slice(format!("{send_len:x}\r\n").as_bytes());
        }
        stream.write_all(&out).await.map_err(drop)?;
        let sent = stream.send_file(&file, 0, send_len).await.map_err(drop)?;
        self.resp.sent += sent;
        if let Some(l) = self.resp.length_left.as_mut() {
            *l -= sent.min(*l);
        }
        if self.resp.chunked {
            stream.write_all(b"\r\n0\r\n\r\n").await.map_err(drop)?;
        }
        if sent < send_len {
            self.resp.close = true;
        }
        Ok(())
    }

    fn log_access(&self) {
        if let Some(req) = &self.logged {
            super::access_log::log(
                req,
                self.resp.status,
                self.resp.sent,
                &self.resp.headers_for_log,
                self.started_at.elapsed(),
            );
        }
    }
}

/// Cancel the app's task once the grace period after the client left is over.
fn cancel_later(session: &Arc<Session>, grace: std::time::Duration) {
    let session = session.clone();
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        session.request_cancel();
    });
}

fn request_expects_continue(req: &Request) -> bool {
    req.version >= (1, 1)
        && req
            .headers
            .iter()
            .any(|(n, v)| n == "EXPECT" && v.trim().eq_ignore_ascii_case("100-continue"))
}
