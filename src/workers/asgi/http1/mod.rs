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
use ferrocorn_ws::handshake;
use tokio::time::sleep_until;

mod respond;
mod statics;

use super::ctx::ConnCtx;
use super::stream::Stream;
use super::wire;
use crate::conn::reader::{into_request, Framing, Progress};
use crate::conn::{log_parse_error, HeadReader, PeerPolicy};
use crate::http::{
    ByteHeaders, CallKind, HubEvent, Inbound, NewCall, Outgoing, Peer, Request, ServerAddr,
    Session, RECEIVE_HIGH_WATER,
};
use crate::telemetry::{access, error_log, metrics, pyroute};

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
        let (mut request, framing) =
            into_request(*head, peer.clone(), server.clone(), proxy, number);
        request.tls = stream.tls_info();
        if let Some(statics) = ctx.statics.as_ref() {
            if statics.lookup(&request.path, false).is_some() {
                let close = !ctx.alive();
                let statics = statics.clone();
                match statics::serve(&mut stream, statics, request, framing, rest, close).await {
                    Outcome::KeepAlive(leftover) => {
                        reader.resume(leftover);
                        continue;
                    }
                    Outcome::Close => stream.close_graceful().await,
                    Outcome::Drop => {}
                }
                return;
            }
        }
        if let Some(subprotocols) = websocket_upgrade(&request).filter(|_| !ctx.wsgi) {
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
    let upgrade = req
        .header_values("UPGRADE")
        .any(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let connection = req
        .header_values("CONNECTION")
        .any(|v| handshake::header_has_token(v, "upgrade"));
    if req.method != "GET" || !upgrade || !connection {
        return None;
    }
    Some(
        req.header_values("SEC-WEBSOCKET-PROTOCOL")
            .flat_map(handshake::subprotocols)
            .map(str::to_string)
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
    expect_continue: bool,
    continue_sent: bool,
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
            expect_continue: framing.expect_continue,
            continue_sent: false,
            method: request.method.clone(),
            version: request.version,
            close_requested: request.close_requested,
            decoder: BodyDecoder::new(framing.body, &ctx.serving.parser),
            resp: Response::default(),
            started_at: Instant::now(),
            logged: (access::enabled() || pyroute::active()).then(|| request.clone()),
        }
    }

    async fn run(&mut self, stream: &mut Stream, request: Request, mut raw: Vec<u8>) -> Outcome {
        let (session, mut rx) = Session::new(self.ctx.hub.clone(), false, self.ctx.relay.clone());
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
            st.continue_pending = self.expect_continue && !done;
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
                return self.unfinished(stream, &session).await;
            }
            let gone = session.state().client_gone;
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
                        if let Err(()) = self.handle(stream, &session, m).await {
                            session.disconnect(true);
                            session.abandon_output();
                            if self.ctx.wsgi {
                                // Nothing to cancel: the greenlet learns at its next write,
                                // and the connection's slot is free at once.
                                return Outcome::Drop;
                            }
                            cancel_at.get_or_insert_with(|| tokio::time::Instant::now() + grace);
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
                        if self.ctx.wsgi {
                            return Outcome::Drop;
                        }
                        cancel_at.get_or_insert_with(|| tokio::time::Instant::now() + grace);
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
                                let page = if self.ctx.wsgi {
                                    e.error_response()
                                } else {
                                    wire::error_response(e.status(), &e.message(), &[])
                                };
                                session.state().body_error = Some(e);
                                session.disconnect(true);
                                session.abandon_output();
                                if !self.resp.head_written {
                                    let _ = stream.write_all(&page).await;
                                }
                                self.ctx.cancel_after_grace(&session);
                                return Outcome::Close;
                            }
                        }
                    }
                    Ok(_) => {}
                },
                _ = session.space.notified(), if paused => {
                    paused = false;
                    // The wait was ours, not the client's.
                    body_deadline = tokio::time::Instant::now() + io_deadline;
                }
                _ = sleep_until(cancel_at.unwrap_or_else(tokio::time::Instant::now)), if cancel_at.is_some() => {
                    session.request_cancel();
                    return Outcome::Drop;
                }
                _ = sleep_until(body_deadline), if body_open && !eof && !gone && !paused => {
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
    async fn unfinished(&mut self, stream: &mut Stream, session: &Session) -> Outcome {
        if session.state().client_gone {
            // The client left first: nothing to answer, and no fault of the app.
            error_log::debug("ASGI application returned after the client disconnected");
            return Outcome::Drop;
        }
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

    fn log_access(&self) {
        if self.ctx.wsgi {
            // The WSGI bridge logged the request, with its environ.
            return;
        }
        let elapsed = self.started_at.elapsed();
        metrics::request_done(&self.method, self.resp.status, elapsed);
        if let Some(req) = &self.logged {
            let status = format!("{} {}", self.resp.status, wire::reason(self.resp.status));
            crate::workers::access_log::log(
                req,
                &status,
                self.resp.sent,
                &self.resp.headers_for_log,
                elapsed,
            );
        }
    }
}
