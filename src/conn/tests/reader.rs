//! The head reader: heads arriving in pieces, pipelining, the PROXY header, gathered
//! bodies, the blocking read of the sync worker, and the split into a `Request`.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferrocorn_h1::{BodyKind, ParseError, ParserConfig, ProxyMode, RequestHead};

use super::{tcp_pair, unix_pair, PATIENCE};
use crate::conn::reader::{
    into_request, read_head_blocking, Filled, HeadRead, HeadReader, PeerPolicy, Progress, Speaks,
};
use crate::conn::transport::Transport;
use crate::conn::Liveness;
use crate::http::{Peer, ServerAddr};

fn policy(proxy: ProxyMode, forbidden_peer: Option<&str>) -> PeerPolicy {
    PeerPolicy {
        trusted: true,
        proxy,
        forbidden_peer: forbidden_peer.map(str::to_string),
        speaks: Speaks::Http,
    }
}

fn plain() -> HeadReader {
    HeadReader::new(policy(ProxyMode::Off, None), 0)
}

/// Send `bytes` from the peer and take them in with one non-blocking fill.
fn feed(reader: &mut HeadReader, ours: &mut Transport, peer: &mut UnixStream, bytes: &[u8]) {
    peer.write_all(bytes).unwrap();
    let filled = reader.fill_nonblocking(ours);
    assert_eq!(
        filled,
        Filled {
            got: bytes.len(),
            eof: false
        }
    );
}

fn ready(p: Progress) -> (Box<RequestHead>, Vec<u8>) {
    match p {
        Progress::Ready(head, rest) => (head, rest),
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn invalid(p: Progress) -> ParseError {
    match p {
        Progress::Invalid(e) => e,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn need_more(p: Progress) {
    assert!(
        matches!(p, Progress::NeedMore),
        "expected NeedMore, got {p:?}"
    );
}

#[test]
fn a_head_in_one_byte_pieces_is_need_more_until_its_last_byte() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    need_more(reader.advance(&pcfg));
    let head = b"GET /path?q=1 HTTP/1.1\r\nHost: example\r\n\r";
    for b in head {
        feed(&mut reader, &mut ours, &mut peer, &[*b]);
        need_more(reader.advance(&pcfg));
    }
    // The last byte arrives with the start of the next request.
    feed(&mut reader, &mut ours, &mut peer, b"\nGET /next");
    let (head, rest) = ready(reader.advance(&pcfg));
    assert_eq!(head.method, "GET");
    assert_eq!(head.path, "/path");
    assert_eq!(head.query, "q=1");
    assert_eq!(head.version, (1, 1));
    assert_eq!(head.headers, vec![("HOST".into(), "example".into())]);
    assert_eq!(head.body, BodyKind::Length(0));
    assert_eq!(rest, b"GET /next");
    assert!(!reader.has_buffered(), "the leftover was handed over");
}

#[test]
fn a_pipelined_request_stays_in_the_leftover() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    feed(
        &mut reader,
        &mut ours,
        &mut peer,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\n",
    );
    let (a, rest) = ready(reader.advance(&pcfg));
    assert_eq!(a.path, "/a");
    assert_eq!(rest, b"GET /b HTTP/1.1\r\nHost: y\r\n\r\n");
    reader.resume(rest);
    assert!(reader.has_buffered());
    let (b, rest) = ready(reader.advance(&pcfg));
    assert_eq!(b.path, "/b");
    assert!(rest.is_empty());
    need_more(reader.advance(&pcfg));
}

#[test]
fn fill_nonblocking_keeps_the_bytes_that_came_before_eof() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    assert_eq!(
        reader.fill_nonblocking(&mut ours),
        Filled { got: 0, eof: false }
    );
    peer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    drop(peer);
    // A short read ends the fill (the socket is drained for now); the next one sees EOF.
    assert_eq!(reader.fill_nonblocking(&mut ours).got, 27);
    assert_eq!(
        reader.fill_nonblocking(&mut ours),
        Filled { got: 0, eof: true }
    );
    let (head, _) = ready(reader.advance(&pcfg));
    assert_eq!(head.path, "/");
}

#[test]
fn fill_nonblocking_reads_a_large_burst_in_bounded_steps() {
    let (mut ours, mut peer) = unix_pair();
    let mut reader = plain();
    let body = vec![b'x'; 200 * 1024];
    let writer = thread::spawn(move || {
        peer.write_all(&body).unwrap();
        peer
    });
    let mut total = 0;
    let _peer = eventually_total(&mut reader, &mut ours, &mut total, 200 * 1024, writer);
    assert_eq!(total, 200 * 1024);
}

/// Fill until `want` bytes came, checking that no single fill takes more than 64 KiB.
fn eventually_total(
    reader: &mut HeadReader,
    ours: &mut Transport,
    total: &mut usize,
    want: usize,
    writer: thread::JoinHandle<UnixStream>,
) -> UnixStream {
    let until = Instant::now() + PATIENCE;
    while *total < want {
        let filled = reader.fill_nonblocking(ours);
        assert!(!filled.eof);
        assert!(
            filled.got <= 64 * 1024,
            "one fill took {} bytes",
            filled.got
        );
        *total += filled.got;
        assert!(Instant::now() < until, "only {total} of {want} bytes came");
        if filled.got == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    writer.join().unwrap()
}

const PROXY_LINE: &[u8] = b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 8080\r\n";

#[test]
fn a_proxy_header_is_taken_off_the_first_request_only() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = HeadReader::new(policy(ProxyMode::V1, None), 0);
    // The header arrives in two pieces.
    feed(&mut reader, &mut ours, &mut peer, &PROXY_LINE[..20]);
    need_more(reader.advance(&pcfg));
    assert!(reader.proxy_info().is_none());
    let mut rest = PROXY_LINE[20..].to_vec();
    rest.extend_from_slice(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
    rest.extend_from_slice(PROXY_LINE);
    rest.extend_from_slice(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
    feed(&mut reader, &mut ours, &mut peer, &rest);
    let (first, leftover) = ready(reader.advance(&pcfg));
    assert_eq!(first.path, "/first");
    let info = reader.proxy_info().expect("proxy info").clone();
    assert_eq!(info.protocol, "TCP4");
    assert_eq!(info.client_addr.as_deref(), Some("192.0.2.1"));
    assert_eq!(info.client_port, Some(51000));
    assert_eq!(info.proxy_addr.as_deref(), Some("198.51.100.2"));
    assert_eq!(info.proxy_port, Some(8080));
    // On the next request of the connection it is just a bad request line.
    assert!(leftover.starts_with(PROXY_LINE));
    reader.resume(leftover);
    let err = invalid(reader.advance(&pcfg));
    assert_eq!(err.status(), 400, "{err:?}");
    assert_eq!(reader.proxy_info(), Some(&info));
}

#[test]
fn no_proxy_header_when_the_mode_allows_one_is_a_plain_request() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = HeadReader::new(policy(ProxyMode::Auto, None), 0);
    feed(
        &mut reader,
        &mut ours,
        &mut peer,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (head, _) = ready(reader.advance(&pcfg));
    assert_eq!(head.method, "GET");
    assert!(reader.proxy_info().is_none());
}

#[test]
fn a_proxy_header_from_a_peer_not_allowed_is_forbidden() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = HeadReader::new(policy(ProxyMode::V1, Some("203.0.113.9")), 0);
    let mut bytes = PROXY_LINE.to_vec();
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    feed(&mut reader, &mut ours, &mut peer, &bytes);
    let err = invalid(reader.advance(&pcfg));
    assert_eq!(err, ParseError::ForbiddenProxyRequest("203.0.113.9".into()));
    assert_eq!(err.status(), 403);
    assert!(reader.proxy_info().is_none());
}

#[test]
fn an_invalid_request_line_is_invalid_before_the_head_ends() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    feed(
        &mut reader,
        &mut ours,
        &mut peer,
        b"GET / HTTP/1.1 junk\r\nHost:",
    );
    let err = invalid(reader.advance(&pcfg));
    assert_eq!(err.status(), 400);
}

fn post(len: usize, extra: &str) -> Vec<u8> {
    format!("POST /up HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {len}\r\n\r\n").into_bytes()
}

#[test]
fn a_small_body_is_gathered_before_the_request_is_ready() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = HeadReader::new(policy(ProxyMode::Off, None), 1024);
    let mut first = post(10, "");
    first.extend_from_slice(b"abc");
    feed(&mut reader, &mut ours, &mut peer, &first);
    need_more(reader.advance(&pcfg));
    assert!(reader.waiting_body());
    feed(&mut reader, &mut ours, &mut peer, b"defg");
    need_more(reader.advance(&pcfg));
    feed(&mut reader, &mut ours, &mut peer, b"hijGET /next");
    let (head, rest) = ready(reader.advance(&pcfg));
    assert_eq!(head.body, BodyKind::Length(10));
    assert_eq!(
        rest, b"abcdefghijGET /next",
        "the body, then the next request"
    );
    assert!(!reader.waiting_body());
}

#[test]
fn a_body_already_complete_is_ready_at_once() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = HeadReader::new(policy(ProxyMode::Off, None), 1024);
    let mut bytes = post(3, "");
    bytes.extend_from_slice(b"xyz");
    feed(&mut reader, &mut ours, &mut peer, &bytes);
    let (_, rest) = ready(reader.advance(&pcfg));
    assert_eq!(rest, b"xyz");
    assert!(!reader.waiting_body());
}

#[test]
fn a_body_above_the_gather_limit_is_ready_at_once() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = HeadReader::new(policy(ProxyMode::Off, None), 1024);
    let mut bytes = post(1025, "");
    bytes.extend_from_slice(b"abc");
    feed(&mut reader, &mut ours, &mut peer, &bytes);
    let (head, rest) = ready(reader.advance(&pcfg));
    assert_eq!(head.body, BodyKind::Length(1025));
    assert_eq!(rest, b"abc");
    assert!(!reader.waiting_body());
}

#[test]
fn a_body_with_expect_continue_is_never_gathered() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = HeadReader::new(policy(ProxyMode::Off, None), 1024);
    feed(
        &mut reader,
        &mut ours,
        &mut peer,
        &post(10, "Expect: 100-continue\r\n"),
    );
    let (head, rest) = ready(reader.advance(&pcfg));
    assert!(head.expect_continue);
    assert!(rest.is_empty());
}

#[test]
fn take_partial_hands_over_what_came_of_a_body_cut_by_eof() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = HeadReader::new(policy(ProxyMode::Off, None), 1024);
    assert!(reader.take_partial().is_none(), "nothing is waiting yet");
    let mut bytes = post(10, "");
    bytes.extend_from_slice(b"abc");
    feed(&mut reader, &mut ours, &mut peer, &bytes);
    need_more(reader.advance(&pcfg));
    drop(peer);
    assert!(reader.fill_nonblocking(&mut ours).eof);
    let (head, partial) = reader.take_partial().expect("a waiting request");
    assert_eq!(head.path, "/up");
    assert_eq!(partial, b"abc");
    assert!(!reader.waiting_body());
    assert!(reader.take_partial().is_none());
}

#[test]
fn read_head_blocking_waits_for_a_head_sent_late() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    let writer = thread::spawn(move || {
        peer.write_all(b"GET /slow HTTP/1.1\r\n").unwrap();
        thread::sleep(Duration::from_millis(100));
        peer.write_all(b"Host: x\r\n\r\nextra").unwrap();
        peer
    });
    let deadline = Some(Instant::now() + PATIENCE);
    match read_head_blocking(&mut ours, &mut reader, &pcfg, deadline, None) {
        HeadRead::Ready(head, rest) => {
            assert_eq!(head.path, "/slow");
            assert_eq!(rest, b"extra");
        }
        HeadRead::Closed => panic!("Closed"),
        HeadRead::Invalid(e) => panic!("Invalid: {e:?}"),
    }
    drop(writer.join().unwrap());
}

#[test]
fn read_head_blocking_is_closed_when_the_peer_leaves_mid_head() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    peer.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    drop(peer);
    let started = Instant::now();
    let res = read_head_blocking(&mut ours, &mut reader, &pcfg, None, None);
    assert!(matches!(res, HeadRead::Closed));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn read_head_blocking_is_closed_at_the_deadline() {
    let (mut ours, mut peer) = tcp_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    peer.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let deadline = Some(started + Duration::from_millis(300));
    let res = read_head_blocking(&mut ours, &mut reader, &pcfg, deadline, None);
    let waited = started.elapsed();
    assert!(matches!(res, HeadRead::Closed));
    assert!(waited >= Duration::from_millis(250), "after {waited:?}");
    assert!(waited < Duration::from_secs(2), "after {waited:?}");
    // A deadline already passed does not read at all.
    let res = read_head_blocking(&mut ours, &mut reader, &pcfg, Some(Instant::now()), None);
    assert!(matches!(res, HeadRead::Closed));
    drop(peer);
}

#[test]
fn read_head_blocking_answers_an_invalid_head_without_waiting() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    peer.write_all(b"GET / HTTP/1.1\r\nBad Header\r\n").unwrap();
    let res = read_head_blocking(
        &mut ours,
        &mut reader,
        &pcfg,
        Some(Instant::now() + PATIENCE),
        None,
    );
    match res {
        HeadRead::Invalid(e) => assert_eq!(e.status(), 400, "{e:?}"),
        _ => panic!("expected Invalid"),
    }
}

/// A reader resumed with a whole pipelined request already buffered: the head is there, so
/// nothing needs to be read. Latent: the sync worker, the only caller, never resumes.
#[test]
fn read_head_blocking_parses_what_is_already_buffered_first() {
    let (mut ours, peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    reader.resume(b"GET /buffered HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
    let started = Instant::now();
    let res = read_head_blocking(
        &mut ours,
        &mut reader,
        &pcfg,
        Some(started + Duration::from_millis(500)),
        None,
    );
    drop(peer);
    match res {
        HeadRead::Ready(head, _) => assert_eq!(head.path, "/buffered"),
        HeadRead::Closed => panic!("Closed after {:?}", started.elapsed()),
        HeadRead::Invalid(e) => panic!("Invalid: {e:?}"),
    }
}

fn head_of(bytes: &[u8]) -> RequestHead {
    let (mut ours, mut peer) = unix_pair();
    let mut reader = plain();
    peer.write_all(bytes).unwrap();
    reader.fill_nonblocking(&mut ours);
    *ready(reader.advance(&ParserConfig::default())).0
}

#[test]
fn into_request_moves_the_head_and_the_connection_facts() {
    let head = head_of(
        b"PUT /p/a?x=1#frag HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    let peer: SocketAddr = "192.0.2.7:4321".parse().unwrap();
    let server = ServerAddr::Unix(Arc::from("/run/app.sock"));
    let proxy = ferrocorn_h1::ProxyInfo {
        protocol: "TCP4",
        client_addr: Some("192.0.2.1".into()),
        client_port: Some(1),
        proxy_addr: Some("192.0.2.2".into()),
        proxy_port: Some(2),
    };
    let (req, framing) = into_request(head, Peer::Ip(peer), server.clone(), Some(proxy.clone()), 7);
    assert_eq!(req.method, "PUT");
    assert_eq!(req.uri, "/p/a?x=1#frag");
    assert_eq!(req.path, "/p/a");
    assert_eq!(req.query, "x=1");
    assert_eq!(req.fragment, "frag");
    assert_eq!(req.version, (1, 1));
    assert_eq!(req.headers[0], ("HOST".to_string(), "h".to_string()));
    assert_eq!(req.scheme, "http");
    assert_eq!(req.peer, Peer::Ip(peer));
    assert_eq!(req.server, server);
    assert_eq!(req.proxy, Some(proxy));
    assert_eq!(req.number, 7);
    assert!(!req.close_requested);
    assert_eq!(framing.body, BodyKind::Chunked);
    assert!(framing.expect_continue);
}

#[test]
fn into_request_says_when_the_client_asked_to_close() {
    let cases: [(&[u8], bool); 5] = [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            true,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close \r\n\r\n",
            true,
        ),
    ];
    for (bytes, close) in cases {
        let server = ServerAddr::Unix(Arc::from("s"));
        let (req, framing) = into_request(head_of(bytes), Peer::Unix, server, None, 1);
        assert_eq!(
            req.close_requested,
            close,
            "{}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(framing.body, BodyKind::Length(0));
        assert!(!framing.expect_continue);
    }
}

/// The sync worker's heartbeat: a head allowed `timeout` must not look like a hung worker to
/// the master, whose limit is the same `timeout` (found by `make fuzz-server`: WORKER TIMEOUT
/// for a client that sent half a head).
#[test]
fn read_head_blocking_beats_while_it_waits() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (mut ours, _peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = plain();
    let beats = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = beats.clone();
    let liveness = Liveness {
        every: Duration::from_millis(20),
        beat: std::sync::Arc::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        }),
    };
    let started = Instant::now();
    let deadline = Some(started + Duration::from_millis(200));
    let res = read_head_blocking(&mut ours, &mut reader, &pcfg, deadline, Some(&liveness));
    assert!(matches!(res, HeadRead::Closed));
    assert!(started.elapsed() >= Duration::from_millis(200));
    let n = beats.load(Ordering::Relaxed);
    assert!(n >= 5, "only {n} beats in 200 ms at one per 20 ms");
}
