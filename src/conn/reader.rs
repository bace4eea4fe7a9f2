//! The head reader, used by every worker: the bytes a connection received so far, an
//! optional PROXY header (first request only, as Gunicorn), the request head (an HTTP/1 head,
//! or a uWSGI packet with `protocol = uwsgi`), and, when asked, a small Content-Length body
//! gathered before the request is ready. Parsing is sans-IO (`advance` works on what
//! `fill_nonblocking` or `read_head_blocking` received), so the gthread table and the sync
//! worker share every rule.

use std::time::Instant;

use ferrocorn_h1::{
    parse_proxy_header, parse_uwsgi, BodyKind, HeadParser, ParseError, ParserConfig, ProxyInfo,
    ProxyMode, ProxyParse, RequestHead, UwsgiError,
};

use super::transport::Transport;
use super::Liveness;
use crate::config::{Protocol, Serving};
use crate::http::{Peer, Request, ServerAddr};
use crate::telemetry::error_log;

/// At most this much is read from one connection per `fill_nonblocking`, so one fast sender
/// cannot starve the others; also the size of one blocking read.
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Where reads land, zeroed once per thread rather than once per read, and large enough
    /// that a request with a 16 KiB body arrives in one recv(2).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// How much a connection's peer is trusted (Gunicorn's `_peer_is_trusted_proxy` and the
/// PROXY protocol's `proxy_allow_ips`).
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    /// May set `secure_scheme_headers` and `forwarder_headers`.
    pub trusted: bool,
    pub proxy: ProxyMode,
    /// Set when the peer is not in `proxy_allow_ips`: a PROXY header from it gets a 403.
    pub forbidden_peer: Option<String>,
    pub speaks: Speaks,
}

/// What the connection's requests arrive as (`protocol`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaks {
    Http,
    /// uWSGI packets. `forbidden`: the peer is not on `uwsgi_allow_ips` (its address), so
    /// its first bytes get a 403.
    Uwsgi {
        forbidden: Option<String>,
    },
}

impl PeerPolicy {
    pub fn new(serving: &Serving, peer: &Peer) -> Self {
        let speaks = match (serving.protocol, peer) {
            (Protocol::Http, _) => Speaks::Http,
            // A unix socket is reachable only by who may open its path.
            (Protocol::Uwsgi, Peer::Unix) => Speaks::Uwsgi { forbidden: None },
            (Protocol::Uwsgi, Peer::Ip(a)) => Speaks::Uwsgi {
                forbidden: (!serving.uwsgi_allow_ips.contains(a.ip())).then(|| a.ip().to_string()),
            },
        };
        match peer {
            Peer::Unix => PeerPolicy {
                trusted: true,
                proxy: serving.proxy_protocol,
                forbidden_peer: None,
                speaks,
            },
            Peer::Ip(a) => PeerPolicy {
                trusted: serving.forwarded_allow_ips.contains(a.ip()),
                proxy: serving.proxy_protocol,
                forbidden_peer: (!serving.proxy_allow_ips.contains(a.ip()))
                    .then(|| a.ip().to_string()),
                speaks,
            },
        }
    }
}

/// How far a connection's next request is.
#[derive(Debug)]
pub enum Progress {
    /// Nothing complete yet.
    NeedMore,
    /// A request, with the bytes received after its head.
    Ready(Box<RequestHead>, Vec<u8>),
    /// Input that can never become a request: answer with the error page and close.
    Invalid(ParseError),
}

/// What one non-blocking fill found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    /// Bytes received.
    pub got: usize,
    /// The peer closed its side (or reading failed): nothing more will arrive.
    pub eof: bool,
}

pub struct HeadReader {
    /// Received and not yet handed to a request (the start of the next one when pipelined).
    buf: Vec<u8>,
    parser: HeadParser,
    policy: PeerPolicy,
    proxy_pending: bool,
    proxy_info: Option<ProxyInfo>,
    /// Content-Length bodies up to this size are received before the request is ready.
    gather: u64,
    /// A parsed head waiting for its body to arrive in `buf`.
    waiting: Option<(Box<RequestHead>, usize)>,
}

impl HeadReader {
    /// `gather`: receive Content-Length bodies up to this size before the request is
    /// ready (0: never).
    pub fn new(policy: PeerPolicy, gather: u64) -> Self {
        HeadReader {
            buf: Vec::new(),
            parser: HeadParser::new(),
            proxy_pending: policy.proxy != ProxyMode::Off,
            policy,
            proxy_info: None,
            gather,
            waiting: None,
        }
    }

    /// The next request on the connection begins with these bytes.
    pub fn resume(&mut self, leftover: Vec<u8>) {
        self.buf = leftover;
        self.parser.reset();
        self.waiting = None;
    }

    /// Bytes an asynchronous reader received (the ASGI worker's connection tasks).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// A head has arrived and its body is still coming: a request, not an idle connection.
    pub fn waiting_body(&self) -> bool {
        self.waiting.is_some()
    }

    pub fn proxy_info(&self) -> Option<&ProxyInfo> {
        self.proxy_info.as_ref()
    }

    /// The client closed while its body was still arriving: the request goes to the app
    /// with what came, as Gunicorn's length reader hands over what it got at EOF.
    pub fn take_partial(&mut self) -> Option<(Box<RequestHead>, Vec<u8>)> {
        let (head, _) = self.waiting.take()?;
        Some((head, std::mem::take(&mut self.buf)))
    }

    /// Receive what the socket has, without blocking and at most `READ_CHUNK`. Bytes read
    /// before the end are kept: a request (or part of a body) may precede it. A short read
    /// means the socket is drained for now, so the caller's poll reports more instead of a
    /// read that would only say EAGAIN.
    pub fn fill_nonblocking(&mut self, transport: &mut Transport) -> Filled {
        SCRATCH.with(|scratch| {
            let mut chunk = scratch.borrow_mut();
            let mut filled = Filled { got: 0, eof: false };
            while filled.got < READ_CHUNK {
                match transport.try_read(&mut chunk[..]) {
                    Ok(Some(0)) | Err(_) => {
                        filled.eof = true;
                        break;
                    }
                    Ok(None) => break,
                    Ok(Some(n)) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        filled.got += n;
                        // A TLS read hands over one record at a time: short, yet the socket
                        // may hold more of a body being gathered. A head fits a record or
                        // two, and one more read per request would only say EAGAIN.
                        if n < chunk.len() && !(transport.is_tls() && self.waiting_body()) {
                            break;
                        }
                    }
                }
            }
            filled
        })
    }

    /// Parse what has arrived: the PROXY header, the head, then a gathered body.
    pub fn advance(&mut self, pcfg: &ParserConfig) -> Progress {
        if let Some((_, need)) = &self.waiting {
            if self.buf.len() < *need {
                return Progress::NeedMore;
            }
            let (head, _) = self.waiting.take().expect("checked above");
            return Progress::Ready(head, std::mem::take(&mut self.buf));
        }
        if self.proxy_pending {
            match parse_proxy_header(
                &self.buf,
                self.policy.proxy,
                self.policy.forbidden_peer.as_deref(),
            ) {
                Ok(ProxyParse::Incomplete) => return Progress::NeedMore,
                Ok(ProxyParse::Absent) => self.proxy_pending = false,
                Ok(ProxyParse::Present { info, consumed }) => {
                    self.buf.drain(..consumed);
                    self.proxy_info = Some(info);
                    self.proxy_pending = false;
                }
                Err(e) => return Progress::Invalid(e),
            }
        }
        if self.buf.is_empty() {
            return Progress::NeedMore;
        }
        let parsed = match &self.policy.speaks {
            Speaks::Http => self.parser.parse(&self.buf, pcfg, self.policy.trusted),
            Speaks::Uwsgi {
                forbidden: Some(ip),
            } => Err(UwsgiError::Forbidden(ip.clone()).into()),
            Speaks::Uwsgi { forbidden: None } => parse_uwsgi(&self.buf, pcfg).map_err(Into::into),
        };
        match parsed {
            Ok(None) => Progress::NeedMore,
            Err(e) => Progress::Invalid(e),
            Ok(Some((head, used))) => self.parsed(head, used),
        }
    }

    /// A head took the first `used` bytes: the request is ready, or its body is gathered
    /// first.
    fn parsed(&mut self, head: RequestHead, used: usize) -> Progress {
        let rest = self.buf.split_off(used);
        self.buf.clear();
        match head.body {
            // A client waiting for `100 Continue` sends nothing until the app reads, so its
            // body cannot be gathered here.
            BodyKind::Length(n)
                if n > 0
                    && n <= self.gather
                    && !head.expect_continue
                    && (rest.len() as u64) < n =>
            {
                self.buf = rest;
                self.waiting = Some((Box::new(head), n as usize));
                Progress::NeedMore
            }
            _ => Progress::Ready(Box::new(head), rest),
        }
    }
}

/// How a blocking head read ended.
pub enum HeadRead {
    Ready(Box<RequestHead>, Vec<u8>),
    /// The client went away (or the deadline passed) before a whole head arrived.
    Closed,
    Invalid(ParseError),
}

/// Read until a whole request head is parsed, the client goes away or `deadline` passes,
/// or the input can no longer become a valid request (answered at once, never waited on).
/// Blocking: call with the GIL released.
pub fn read_head_blocking(
    transport: &mut Transport,
    reader: &mut HeadReader,
    pcfg: &ParserConfig,
    deadline: Option<Instant>,
    liveness: Option<&Liveness>,
) -> HeadRead {
    let mut chunk = [0u8; 8192];
    loop {
        // What is already buffered (a resumed reader) may be a whole head.
        if reader.has_buffered() {
            match reader.advance(pcfg) {
                Progress::NeedMore => {}
                Progress::Ready(head, rest) => return HeadRead::Ready(head, rest),
                Progress::Invalid(e) => return HeadRead::Invalid(e),
            }
        }
        let now = Instant::now();
        let left = match deadline {
            Some(d) if now >= d => return HeadRead::Closed,
            Some(d) => Some(d - now),
            None => None,
        };
        if transport
            .set_read_timeout(Liveness::slice(liveness, left))
            .is_err()
        {
            return HeadRead::Closed;
        }
        let res = transport.read(&mut chunk);
        if Liveness::after_read(liveness, &res) {
            continue;
        }
        match res {
            Ok(0) => {
                if reader.has_buffered() {
                    error_log::debug("Ignored premature client disconnection.");
                }
                return HeadRead::Closed;
            }
            Ok(n) => reader.buf.extend_from_slice(&chunk[..n]),
            Err(_) => return HeadRead::Closed,
        }
    }
}

/// What the HTTP/1 exchange needs of a head besides the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Framing {
    pub body: BodyKind,
    /// `Expect: 100-continue`: send `100 Continue` on the app's first read.
    pub expect_continue: bool,
    /// The response goes back to a uWSGI gateway: never chunked (the gateway takes the body
    /// as opaque bytes, so chunk markers would reach the client), no interim responses, and
    /// the connection closes after it.
    pub to_gateway: bool,
}

/// Split a parsed head into the protocol-neutral request and its HTTP/1 framing.
pub fn into_request(
    head: RequestHead,
    peer: Peer,
    server: ServerAddr,
    proxy: Option<ProxyInfo>,
    number: u64,
) -> (Request, Framing) {
    let close_requested = head.should_close();
    let framing = Framing {
        body: head.body,
        expect_continue: head.expect_continue,
        to_gateway: head.gateway.is_some(),
    };
    let request = Request {
        method: head.method,
        uri: head.uri,
        path: head.path,
        query: head.query,
        fragment: head.fragment,
        version: head.version,
        headers: head.headers,
        scheme: head.scheme,
        peer,
        server,
        proxy,
        number,
        close_requested,
        tls: None,
        gateway: head.gateway,
    };
    (request, framing)
}
