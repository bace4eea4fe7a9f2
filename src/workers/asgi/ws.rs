//! One WebSocket connection of the ASGI worker, from the upgrade request to the close: the
//! handshake answers (Gunicorn 27's 426, 400, 403 and 500, the denial response of the
//! `websocket.http.response` extension, the 101 with permessage-deflate when offered), then
//! frames in and out through the sans-IO codec of `ferrocorn-ws`. Pings are answered here,
//! and a stopping worker closes with 1001. The app sees whole messages only.
//!
//! Owns: the upgraded socket and the closing handshake. Must not: call Python.

use std::sync::Arc;

use ferrocorn_ws::{handshake, Event, WsCodec, WsConfig};
use tokio::time::{sleep_until, Instant};

use super::ctx::ConnCtx;
use super::stream::Stream;
use super::wire;
use crate::http::{
    CallKind, HubEvent, Inbound, NewCall, Outgoing, Request, Session, WS_QUEUE_LIMIT,
};
use crate::telemetry::error_log;

/// Bytes a client may send before the handshake is answered.
const EARLY_LIMIT: usize = 64 * 1024;

/// How long a closing WebSocket waits for the peer's close frame.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn serve(
    mut stream: Stream,
    request: Request,
    rest: Vec<u8>,
    subprotocols: Vec<String>,
    ctx: Arc<ConnCtx>,
) {
    let version_ok = request
        .header_values("SEC-WEBSOCKET-VERSION")
        .next()
        .is_some_and(handshake::valid_version);
    if !version_ok {
        let page =
            wire::error_response(426, "Upgrade Required", &[("Sec-WebSocket-Version", "13")]);
        let _ = stream.write_all(&page).await;
        stream.close_graceful().await;
        return;
    }
    let key = match request.header_values("SEC-WEBSOCKET-KEY").next() {
        Some(k) if handshake::valid_key(k) => k.trim().to_string(),
        _ => {
            let page = wire::error_response(400, "Bad Request", &[]);
            let _ = stream.write_all(&page).await;
            stream.close_graceful().await;
            return;
        }
    };
    let offers: Vec<&str> = request.header_values("SEC-WEBSOCKET-EXTENSIONS").collect();
    let deflate = handshake::negotiate_deflate(&offers);
    let (session, mut rx) = Session::new(ctx.hub.clone(), true, None);
    ctx.hub.push(HubEvent::Call(Box::new(NewCall {
        request,
        kind: CallKind::WebSocket { subprotocols },
        session: session.clone(),
    })));

    // Until the app accepts (or refuses).
    let mut early = rest;
    let mut eof = false;
    let accepted = loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Outgoing::WsAccept { subprotocol, headers }) => {
                    let mut out = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                        handshake::accept_key(&key)
                    )
                    .into_bytes();
                    if let Some(p) = &subprotocol {
                        out.extend_from_slice(format!("Sec-WebSocket-Protocol: {p}\r\n").as_bytes());
                    }
                    if let Some((_, value)) = &deflate {
                        out.extend_from_slice(format!("Sec-WebSocket-Extensions: {value}\r\n").as_bytes());
                    }
                    wire::push_headers(&mut out, &headers);
                    out.extend_from_slice(b"\r\n");
                    if stream.write_all(&out).await.is_err() {
                        break false;
                    }
                    break true;
                }
                Some(Outgoing::WsClose { .. }) => {
                    let _ = stream
                        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    break false;
                }
                Some(Outgoing::Start { status, headers }) => {
                    deny(&mut stream, &mut rx, status, headers).await;
                    break false;
                }
                Some(Outgoing::Done { failed }) => {
                    let page: &[u8] = if failed {
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    } else {
                        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    };
                    let _ = stream.write_all(page).await;
                    break false;
                }
                Some(_) => {}
                None => break false,
            },
            // A client may not send frames before the 101; what it sends anyway is kept up
            // to a bound, then TCP holds the rest back.
            r = stream.read_with(|b| early.extend_from_slice(b)), if !eof && early.len() < EARLY_LIMIT => match r {
                Ok(0) | Err(_) => {
                    eof = true;
                    session.deliver(Inbound::WsClosed { code: 1006, reason: String::new() });
                    session.disconnect(true);
                    // An app that awaits something before accepting is told, then cancelled.
                    ctx.cancel_after_grace(&session);
                }
                Ok(_) => {}
            },
        }
    };
    if !accepted {
        session.disconnect(true);
        if !eof {
            ctx.cancel_after_grace(&session);
        }
        stream.close_graceful().await;
        return;
    }
    let cfg = WsConfig {
        max_message_size: ctx.asgi.websocket_max_message,
        deflate: deflate.map(|(p, _)| p),
    };
    let mut open = Open {
        codec: WsCodec::new(cfg),
        session: session.clone(),
        sent_close: false,
        peer_closed: eof,
        close_deadline: None,
    };
    open.codec.feed(&early);
    open.run(&mut stream, &mut rx, &ctx).await;
    session.disconnect(true);
    ctx.cancel_after_grace(&session);
    stream.close_graceful().await;
}

/// `websocket.http.response.*`: the app's own HTTP answer to the upgrade.
async fn deny(
    stream: &mut Stream,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    status: u16,
    mut headers: crate::http::ByteHeaders,
) {
    let mut body = Vec::new();
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Outgoing::Body { data, more }) => {
                    body.extend_from_slice(&data);
                    if !more {
                        break;
                    }
                }
                Some(Outgoing::Done { .. }) | None => break,
                Some(_) => {}
            },
            // The client left while the app was still writing its answer.
            r = stream.read_with(|_| {}) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return;
                }
            }
        }
    }
    headers.retain(|(n, _)| {
        !n.eq_ignore_ascii_case(b"content-length") && !n.eq_ignore_ascii_case(b"transfer-encoding")
    });
    headers.push((
        b"content-length".to_vec(),
        body.len().to_string().into_bytes(),
    ));
    let mut out = Vec::new();
    wire::encode_head(&mut out, (1, 1), status, &headers, true);
    out.extend_from_slice(&body);
    let _ = stream.write_all(&out).await;
}

struct Open {
    codec: WsCodec,
    session: Arc<Session>,
    sent_close: bool,
    peer_closed: bool,
    /// After our close frame: how long the peer has to answer with its own.
    close_deadline: Option<Instant>,
}

impl Open {
    async fn run(
        &mut self,
        stream: &mut Stream,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
        ctx: &ConnCtx,
    ) {
        let mut stopping = ctx.stopping.clone();
        let mut app_done = false;
        loop {
            // Frames that already arrived.
            if !self.peer_closed && !self.drain_events(stream).await {
                return;
            }
            if self.peer_closed && (self.sent_close || app_done) {
                return;
            }
            if app_done && self.sent_close && self.peer_closed {
                return;
            }
            let paused = self.session.state().inbound.len() >= WS_QUEUE_LIMIT;
            let stop_now = *stopping.borrow() && !self.sent_close;
            if stop_now {
                if self.close(stream, 1001, "").await.is_err() {
                    return;
                }
                continue;
            }
            tokio::select! {
                msg = rx.recv(), if !app_done => match msg {
                    Some(m) => {
                        if self.outgoing(stream, m, &mut app_done).await.is_err() {
                            self.peer_gone(1006);
                            return;
                        }
                    }
                    None => app_done = true,
                },
                r = stream.read_with(|b| self.codec.feed(b)), if !self.peer_closed && !paused => match r {
                    Ok(0) | Err(_) => {
                        self.peer_gone(1006);
                        return;
                    }
                    Ok(_) => {}
                },
                _ = self.session.space.notified(), if paused => {}
                _ = stopping.changed(), if !self.sent_close => {}
                _ = sleep_until(self.close_deadline.unwrap_or_else(Instant::now)), if self.close_deadline.is_some() => {
                    self.peer_gone(1006);
                    return;
                }
            }
        }
    }

    /// Handle the events the codec can produce now. False: the connection is over.
    async fn drain_events(&mut self, stream: &mut Stream) -> bool {
        loop {
            match self.codec.next_event() {
                Ok(None) => return true,
                Ok(Some(Event::Text(t))) => self.session.deliver(Inbound::WsText(t)),
                Ok(Some(Event::Binary(b))) => self.session.deliver(Inbound::WsBytes(b)),
                Ok(Some(Event::Ping(p))) => {
                    let mut out = Vec::new();
                    self.codec.encode_pong(&p, &mut out);
                    if stream.write_all(&out).await.is_err() {
                        self.peer_gone(1006);
                        return false;
                    }
                }
                Ok(Some(Event::Pong(_))) => {}
                Ok(Some(Event::Close { code, reason })) => {
                    if !self.sent_close {
                        let mut out = Vec::new();
                        self.codec.encode_close(code, &reason, &mut out);
                        let _ = stream.write_all(&out).await;
                        self.sent_close = true;
                    }
                    self.peer_closed = true;
                    self.session.deliver(Inbound::WsClosed {
                        code: code.unwrap_or(1005),
                        reason,
                    });
                    return true;
                }
                Err(e) => {
                    let mut out = Vec::new();
                    self.codec.encode_close(Some(e.code), e.reason, &mut out);
                    let _ = stream.write_all(&out).await;
                    error_log::debug(&format!(
                        "WebSocket protocol error: {} ({})",
                        e.reason, e.code
                    ));
                    self.sent_close = true;
                    self.peer_gone(e.code);
                    return false;
                }
            }
        }
    }

    async fn outgoing(
        &mut self,
        stream: &mut Stream,
        msg: Outgoing,
        app_done: &mut bool,
    ) -> std::io::Result<()> {
        let mut out = Vec::new();
        match msg {
            Outgoing::WsText(t) => {
                let n = t.len();
                if !self.sent_close {
                    self.codec.encode_text(&t, &mut out);
                    stream.write_all(&out).await?;
                }
                self.session.written(n);
            }
            Outgoing::WsBytes(b) => {
                let n = b.len();
                if !self.sent_close {
                    self.codec.encode_binary(&b, &mut out);
                    stream.write_all(&out).await?;
                }
                self.session.written(n);
            }
            Outgoing::WsClose { code, reason } if !self.sent_close => {
                self.close(stream, code, &reason).await?;
            }
            Outgoing::Done { failed } => {
                *app_done = true;
                if !self.sent_close {
                    let (code, reason) = if failed {
                        (1011, "Application error")
                    } else {
                        (1000, "")
                    };
                    self.close(stream, code, reason).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn close(&mut self, stream: &mut Stream, code: u16, reason: &str) -> std::io::Result<()> {
        let mut out = Vec::new();
        self.codec.encode_close(Some(code), reason, &mut out);
        self.sent_close = true;
        self.close_deadline = Some(Instant::now() + CLOSE_WAIT);
        stream.write_all(&out).await
    }

    /// The connection ended without (more of) a closing handshake.
    fn peer_gone(&mut self, code: u16) {
        if !self.peer_closed {
            self.peer_closed = true;
            self.session.deliver(Inbound::WsClosed {
                code,
                reason: String::new(),
            });
        }
    }
}
