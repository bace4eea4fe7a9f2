//! The end of a request: the unread body drained (bounded), the pipelined bytes handed on,
//! the connection given back to the worker once, and nothing the app kept able to use it.

use std::io::{ErrorKind, Write};
use std::thread;
use std::time::{Duration, Instant};

use pyo3::Python;

use super::super::{pattern, read_to_eof};
use super::{headers, wire, Spec};
use crate::http::{After, BodySource, Exchange, ResponseSink};

/// A complete keep-alive response (`Content-Length: 2`, "ok").
fn respond(ex: &mut impl ResponseSink, py: Python<'_>) {
    ex.start_response("200 OK", &headers(&[("Content-Length", "2")]))
        .unwrap();
    ex.write_body(py, b"ok").unwrap();
    ex.finish_response(py).unwrap();
}

#[test]
fn an_unread_body_is_drained_and_the_pipelined_bytes_are_handed_on() {
    let (mut ex, mut peer) = Spec::length(10, b"01234").build();
    let client = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        peer.write_all(b"56789GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        peer
    });
    Python::attach(|py| {
        respond(&mut ex, py);
        // The app read nothing; the rest of the body arrives while concluding.
        let after = ex.conclude(py, true);
        assert_eq!(after, After::KeepAlive(Vec::new()));
    });
    let mut peer = client.join().unwrap();
    // The next request was left in the socket for the worker's reader.
    let (mut transport, held) = ex.take_back().unwrap();
    assert!(held.is_empty());
    let mut buf = [0u8; 64];
    let n = transport.try_read(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..n], b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(transport);
    assert!(read_to_eof(&mut peer).ends_with(b"\r\n\r\nok"));
}

#[test]
fn a_read_body_leaves_the_pipelined_read_ahead_to_the_next_request() {
    let (mut ex, _peer) = Spec::length(3, b"abcGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3").build();
    assert_eq!(ex.read_body(None).unwrap(), b"abc");
    Python::attach(|py| {
        respond(&mut ex, py);
        assert_eq!(
            ex.conclude(py, true),
            After::KeepAlive(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3".to_vec())
        );
    });
}

#[test]
fn a_partly_read_chunked_body_is_drained() {
    let (mut ex, _peer) = Spec::chunked(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\nNEXT").build();
    assert_eq!(ex.read_body(Some(2)).unwrap(), b"ab");
    Python::attach(|py| {
        respond(&mut ex, py);
        assert_eq!(ex.conclude(py, true), After::KeepAlive(b"NEXT".to_vec()));
    });
}

#[test]
fn conclude_closes_when_reuse_is_refused_or_keep_alive_was_disabled() {
    let (mut ex, _peer) = Spec::default().build();
    Python::attach(|py| {
        respond(&mut ex, py);
        assert_eq!(ex.conclude(py, false), After::Close);
    });

    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        ex.close_after();
        assert!(ex.will_close());
        respond(&mut ex, py);
        assert_eq!(ex.conclude(py, true), After::Close);
    });
    let got = wire(&mut ex, &mut peer);
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(
        got.windows(19).any(|w| w == b"Connection: close\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn a_body_too_long_to_drain_closes_the_connection() {
    let total = 4 << 20;
    let (mut ex, mut peer) = Spec::length(total as u64, b"").build();
    let client = thread::spawn(move || {
        // Send the whole body; the server stops reading part way.
        let body = pattern(total);
        let mut sent = 0;
        for chunk in body.chunks(64 * 1024) {
            if peer.write_all(chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let started = Instant::now();
    Python::attach(|py| {
        respond(&mut ex, py);
        assert_eq!(ex.conclude(py, true), After::Close);
    });
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(ex.take_back().unwrap());
    let sent = client.join().unwrap();
    assert!(sent >= 1 << 20, "gave up after {sent} bytes");
    assert!(sent < total, "the whole {total}-byte body was read");
}

#[test]
fn conclude_sends_a_held_response_before_waiting_for_the_body() {
    let (mut ex, mut peer) = Spec {
        may_hold: true,
        ..Spec::length(5, b"")
    }
    .build();
    // This client, like many, sends its body only once it has the answer.
    let client = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\nok") {
            let n = std::io::Read::read(&mut peer, &mut buf).expect("the held response");
            assert!(n > 0, "closed before the response");
            got.extend_from_slice(&buf[..n]);
        }
        peer.write_all(b"helloNEXT").unwrap();
        peer
    });
    Python::attach(|py| {
        ex.body_in_memory();
        respond(&mut ex, py);
        assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
    });
    let _peer = client.join().unwrap();
    let (mut transport, held) = ex.take_back().unwrap();
    assert!(held.is_empty(), "the response was sent, not held");
    let mut buf = [0u8; 16];
    let n = transport.try_read(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..n], b"NEXT");
}

#[test]
fn a_consumed_body_needs_no_flush_and_the_held_response_stays_for_the_worker() {
    let (mut ex, peer) = Spec {
        may_hold: true,
        ..Spec::length(2, b"hi")
    }
    .build();
    assert_eq!(ex.read_body(None).unwrap(), b"hi");
    Python::attach(|py| {
        ex.body_in_memory();
        respond(&mut ex, py);
        assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
    });
    assert!(super::super::nothing_pending(&peer));
    let (_t, held) = ex.take_back().unwrap();
    assert!(held.ends_with(b"\r\n\r\nok"));
}

#[test]
fn take_back_returns_the_connection_once_and_then_the_request_is_over() {
    let (mut ex, mut peer) = Spec::default().build();
    assert!(ex.dup_socket().expect("a socket").is_ok());
    Python::attach(|py| {
        ex.start_response("200 OK", &[]).unwrap();
        ex.write_body(py, b"first").unwrap();
    });
    let (transport, held) = ex.take_back().expect("the connection");
    assert!(held.is_empty());
    assert!(ex.take_back().is_none(), "taken twice");
    assert!(ex.dup_socket().is_none());
    Python::attach(|py| {
        let err = ex.write_body(py, b"late").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
        assert_eq!(err.to_string(), "the request is over");
        assert!(ex.finish_response(py).is_err());
    });
    drop(transport);
    let got = read_to_eof(&mut peer);
    assert!(got.ends_with(b"5\r\nfirst\r\n"), "{got:?}");
}

/// Expect: 100-continue, an app that answers without reading, and a connection that could
/// go on. The interim response must precede the final one (RFC 9110 §15.2): one sent after
/// it is read by the client as the start of its next response.
#[test]
fn no_continue_goes_out_after_the_final_response() {
    let (mut ex, mut peer) = Spec {
        expect_continue: true,
        ..Spec::length(4, b"")
    }
    .build();
    let client = thread::spawn(move || {
        // The client reads the final response; if invited afterwards it sends the body
        // and a next request, then waits for the server to finish.
        peer.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let mut sent = false;
        loop {
            match std::io::Read::read(&mut peer, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
            if !sent && got.windows(12).any(|w| w == b"100 Continue") {
                sent = true;
                let _ = peer.write_all(b"dataGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
            }
        }
        got
    });
    let after = Python::attach(|py| {
        respond(&mut ex, py);
        ex.conclude(py, true)
    });
    drop(ex.take_back());
    let got = client.join().unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(
        !text.contains("100 Continue"),
        "interim response after the final one ({after:?}): {text:?}"
    );
}

/// The gthread flow end to end: the head reader gathers a request, the exchange serves it,
/// and the pipelined next request goes back to the reader.
#[test]
fn a_request_from_the_head_reader_is_served_and_the_next_one_follows() {
    use std::sync::Arc;

    use ferrocorn_h1::{ParserConfig, ProxyMode};

    use crate::conn::exchange::{H1Exchange, Setup};
    use crate::conn::reader::{into_request, HeadReader, PeerPolicy, Progress, Speaks};
    use crate::http::{Peer, ServerAddr};

    let (mut ours, mut peer) = super::super::unix_pair();
    let pcfg = ParserConfig::default();
    let policy = PeerPolicy {
        trusted: true,
        proxy: ProxyMode::Off,
        forbidden_peer: None,
        speaks: Speaks::Http,
    };
    let mut reader = HeadReader::new(policy, 1024);
    peer.write_all(b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel")
        .unwrap();
    reader.fill_nonblocking(&mut ours);
    assert!(matches!(reader.advance(&pcfg), Progress::NeedMore));
    peer.write_all(b"loGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    reader.fill_nonblocking(&mut ours);
    let Progress::Ready(head, leftover) = reader.advance(&pcfg) else {
        panic!("the first request is complete");
    };
    let server = ServerAddr::Unix(Arc::from("test.sock"));
    let (req, framing) = into_request(*head, Peer::Unix, server, None, 1);
    let setup = Setup {
        pcfg: &pcfg,
        framing,
        version: req.version,
        method: &req.method,
        leftover,
        may_hold: false,
        body_wait: None,
    };
    let mut ex = H1Exchange::new(ours, Peer::Unix, setup);
    assert!(ex.body_buffered());
    assert_eq!(ex.read_body(None).unwrap(), b"hello");
    let after = Python::attach(|py| {
        respond(&mut ex, py);
        ex.conclude(py, !req.close_requested)
    });
    let After::KeepAlive(rest) = after else {
        panic!("{after:?}");
    };
    let (mut ours, held) = ex.take_back().unwrap();
    assert!(held.is_empty());
    reader.resume(rest);
    let Progress::Ready(second, _) = reader.advance(&pcfg) else {
        panic!("the pipelined request is complete");
    };
    assert_eq!(second.path, "/two");
    assert_eq!(ours.try_read(&mut [0u8; 8]).unwrap(), None);
    drop(ours);
    assert!(read_to_eof(&mut peer).ends_with(b"\r\n\r\nok"));
}

/// A response head that went out saying `Connection: close` (the client had not sent its
/// 100-continue body yet) binds the exchange, even if the app reads the body afterwards:
/// no `100 Continue` inside the response, and the connection closes as announced.
#[test]
fn a_close_announced_in_the_head_is_kept_and_no_continue_follows_it() {
    let (mut ex, mut peer) = Spec {
        expect_continue: true,
        ..Spec::length(4, b"")
    }
    .build();
    let after = Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "2")]))
            .unwrap();
        ex.write_body(py, b"o").unwrap();
        // The client sends the body anyway (curl does after a second).
        peer.write_all(b"data").unwrap();
        assert_eq!(ex.read_body(None).unwrap(), b"data");
        ex.write_body(py, b"k").unwrap();
        ex.finish_response(py).unwrap();
        ex.conclude(py, true)
    });
    assert_eq!(after, After::Close);
    drop(ex.take_back());
    let text = String::from_utf8(read_to_eof(&mut peer)).unwrap();
    assert!(text.contains("Connection: close\r\n"), "{text:?}");
    assert!(!text.contains("100 Continue"), "{text:?}");
    assert!(text.ends_with("\r\n\r\nok"), "{text:?}");
}

/// A client that sent its whole Content-Length body with an `Expect: 100-continue` head
/// did not wait: an app that never reads it still keeps the connection.
#[test]
fn an_expect_body_sent_with_the_head_keeps_the_connection() {
    let (mut ex, _peer) = Spec {
        expect_continue: true,
        ..Spec::length(4, b"dataNEXT")
    }
    .build();
    Python::attach(|py| {
        respond(&mut ex, py);
        assert_eq!(ex.conclude(py, true), After::KeepAlive(b"NEXT".to_vec()));
    });
}

/// After `conclude`, what the app kept cannot write to the connection any more, though the
/// worker has not taken it back yet.
#[test]
fn conclude_hides_the_connection_from_the_app() {
    let (mut ex, _peer) = Spec::default().build();
    Python::attach(|py| {
        // Chunked: every later write has bytes to send.
        ex.start_response("200 OK", &headers(&[])).unwrap();
        ex.write_body(py, b"ok").unwrap();
        let _ = ex.conclude(py, true);
        let err = ex.write_body(py, b"late").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected);
    });
    assert!(ex.take_back().is_some());
}
