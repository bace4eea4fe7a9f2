//! The request body as the app reads it: Content-Length and chunked bodies split between
//! the read-ahead and the socket, lines, in-place reads, errors and `100 Continue`.

use std::io::{ErrorKind, Write};
use std::thread;
use std::time::Duration;

use ferrocorn_h1::{BodyKind, ParseError};
use pyo3::Python;

use super::super::{nothing_pending, read_n};
use super::{headers, wire, Spec};
use crate::http::{After, BodySource, ErrorPage, Exchange, ResponseSink};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The client sends `bytes` after a pause, so our read really waits; returns its socket.
fn send_later(
    mut peer: std::os::unix::net::UnixStream,
    bytes: &'static [u8],
) -> thread::JoinHandle<std::os::unix::net::UnixStream> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        peer.write_all(bytes).unwrap();
        peer
    })
}

#[test]
fn a_content_length_body_comes_from_the_read_ahead_then_the_socket() {
    let (mut ex, peer) = Spec::length(11, b"hello").build();
    assert!(!ex.body_buffered());
    let client = send_later(peer, b" worldGET /next HTTP/1.1\r\n\r\n");
    assert_eq!(ex.read_body(Some(3)).unwrap(), b"hel");
    assert_eq!(ex.read_body(None).unwrap(), b"lo world");
    assert!(ex.body_buffered(), "the body is over");
    assert_eq!(ex.read_body(None).unwrap(), b"");
    assert_eq!(ex.read_body(Some(10)).unwrap(), b"");
    let peer = client.join().unwrap();
    // The next request was not read as body: it is still in the socket.
    let (mut transport, _) = ex.take_back().unwrap();
    let mut buf = [0u8; 64];
    let n = transport.try_read(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..n], b"GET /next HTTP/1.1\r\n\r\n");
    assert!(nothing_pending(&peer));
}

#[test]
fn read_body_with_a_size_returns_when_that_much_arrived() {
    let (mut ex, peer) = Spec::length(8, b"").build();
    let client = send_later(peer, b"abcdefgh");
    assert_eq!(ex.read_body(Some(8)).unwrap(), b"abcdefgh");
    drop(client.join().unwrap());
}

#[test]
fn read_body_line_splits_lines_across_the_read_ahead_and_the_socket() {
    let (mut ex, peer) = Spec::length(16, b"one\ntw").build();
    let client = send_later(peer, b"o\nthree\nfour");
    assert_eq!(ex.read_body_line(None).unwrap(), b"one\n");
    assert_eq!(ex.read_body_line(None).unwrap(), b"two\n");
    assert_eq!(ex.read_body_line(Some(3)).unwrap(), b"thr");
    assert_eq!(ex.read_body_line(Some(0)).unwrap(), b"");
    assert_eq!(ex.read_body_line(None).unwrap(), b"ee\n");
    // The body ends without a newline after 16 bytes ("ur" is not body).
    assert_eq!(ex.read_body_line(None).unwrap(), b"fo");
    assert_eq!(ex.read_body_line(None).unwrap(), b"");
    drop(client.join().unwrap());
}

#[test]
fn read_body_in_place_hands_out_a_buffered_body_without_copying_ahead() {
    let (mut ex, _peer) = Spec::length(10, b"0123456789NEXT").build();
    assert!(ex.body_buffered());
    let mut got = Vec::new();
    assert!(ex.read_body_in_place(Some(4), &mut |b| got.extend_from_slice(b)));
    assert_eq!(got, b"0123");
    got.clear();
    assert!(ex.read_body_in_place(None, &mut |b| got.extend_from_slice(b)));
    assert_eq!(got, b"456789", "never past the body");
    assert!(!ex.read_body_in_place(None, &mut |_| panic!("the body is over")));
    assert_eq!(ex.read_body(None).unwrap(), b"");
    Python::attach(|py| {
        ex.start_response("204 No Content", &[]).unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(ex.conclude(py, true), After::KeepAlive(b"NEXT".to_vec()));
    });
}

#[test]
fn read_body_in_place_refuses_when_the_body_is_not_all_there() {
    let (mut ex, peer) = Spec::length(10, b"01234").build();
    assert!(!ex.body_buffered());
    assert!(!ex.read_body_in_place(None, &mut |_| panic!("not buffered")));
    let client = send_later(peer, b"56789");
    assert_eq!(
        ex.read_body(None).unwrap(),
        b"0123456789",
        "nothing was lost"
    );
    drop(client.join().unwrap());
}

#[test]
fn read_body_in_place_refuses_after_bytes_were_decoded_ahead() {
    let (mut ex, _peer) = Spec::length(4, b"abcd").build();
    assert_eq!(ex.read_body(Some(1)).unwrap(), b"a");
    assert!(!ex.read_body_in_place(None, &mut |_| panic!("decoded ahead")));
    assert_eq!(ex.read_body(None).unwrap(), b"bcd");
}

#[test]
fn read_body_in_place_is_for_content_length_bodies_only() {
    let (mut ex, _peer) = Spec::chunked(b"3\r\nabc\r\n0\r\n\r\n").build();
    assert!(!ex.read_body_in_place(None, &mut |_| panic!("chunked")));
    assert_eq!(ex.read_body(None).unwrap(), b"abc");
}

#[test]
fn a_chunked_body_is_decoded_across_the_read_ahead_and_the_socket() {
    let (mut ex, peer) = Spec::chunked(b"5\r\nhello\r\n").build();
    assert!(!ex.body_buffered());
    let client = send_later(peer, b"6\r\n world\r\n0\r\n\r\nGET /next");
    assert_eq!(ex.read_body(None).unwrap(), b"hello world");
    assert!(ex.body_buffered());
    assert!(ex.take_body_error().is_none());
    let mut peer = client.join().unwrap();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "2")]))
            .unwrap();
        ex.write_body(py, b"ok").unwrap();
        ex.finish_response(py).unwrap();
        // What arrived after the last chunk is the next request.
        assert_eq!(
            ex.conclude(py, true),
            After::KeepAlive(b"GET /next".to_vec())
        );
    });
    assert!(wire(&mut ex, &mut peer).ends_with(b"\r\n\r\nok"));
}

#[test]
fn a_malformed_chunk_is_an_error_and_take_body_error_returns_it_once() {
    let (mut ex, mut peer) = Spec::chunked(b"zz\r\nhello\r\n0\r\n\r\n").build();
    let err = ex.read_body(None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(err.to_string().contains("Invalid chunk size"), "{err}");
    let parse = ex.take_body_error().expect("the parse error");
    assert!(
        matches!(parse, ParseError::InvalidChunkSize(_)),
        "{parse:?}"
    );
    assert!(ex.take_body_error().is_none(), "taken once");
    assert!(ex.body_buffered(), "no more I/O for this body");
    Python::attach(|py| {
        ex.send_error_page(py, ErrorPage::BadBody(&parse));
        assert!(ex.will_close());
        assert_eq!(ex.conclude(py, true), After::Close);
    });
    assert_eq!(wire(&mut ex, &mut peer), parse.error_response());
}

#[test]
fn a_chunked_body_cut_by_eof_is_an_error() {
    let (mut ex, peer) = Spec::chunked(b"5\r\nhel").build();
    drop(peer);
    let err = ex.read_body(None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert_eq!(ex.take_body_error(), Some(ParseError::NoMoreData(None)));
    Python::attach(|py| assert_eq!(ex.conclude(py, true), After::Close));
}

#[test]
fn eof_mid_content_length_body_gives_what_came_and_closes() {
    let (mut ex, mut peer) = Spec::length(10, b"abc").build();
    let client = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        peer.write_all(b"de").unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        peer
    });
    assert_eq!(ex.read_body(None).unwrap(), b"abcde");
    assert!(ex.body_buffered());
    assert_eq!(ex.read_body(None).unwrap(), b"");
    assert!(ex.take_body_error().is_none(), "not an error, as Gunicorn");
    let mut peer = client.join().unwrap();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "0")]))
            .unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(ex.conclude(py, true), After::Close);
    });
    assert!(wire(&mut ex, &mut peer).starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn expect_continue_is_sent_on_the_first_read_only() {
    let (mut ex, mut peer) = Spec {
        expect_continue: true,
        ..Spec::chunked(b"")
    }
    .build();
    // Nothing before the app reads.
    assert!(nothing_pending(&peer));
    let client = thread::spawn(move || {
        assert_eq!(read_n(&mut peer, CONTINUE.len()), CONTINUE);
        peer.write_all(b"2\r\nab").unwrap();
        thread::sleep(Duration::from_millis(100));
        peer.write_all(b"\r\n3\r\ncde\r\n0\r\n\r\n").unwrap();
        peer
    });
    assert_eq!(ex.read_body(Some(2)).unwrap(), b"ab");
    // This read goes to the socket again and must not invite the body a second time.
    assert_eq!(ex.read_body(None).unwrap(), b"cde");
    let mut peer = client.join().unwrap();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "0")]))
            .unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
    });
    let got = wire(&mut ex, &mut peer);
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{got:?}");
    assert!(!got.windows(3).any(|w| w == b"100"), "{got:?}");
}

#[test]
fn expect_continue_with_a_content_length_body() {
    let (mut ex, mut peer) = Spec {
        expect_continue: true,
        ..Spec::length(4, b"")
    }
    .build();
    let client = thread::spawn(move || {
        assert_eq!(read_n(&mut peer, CONTINUE.len()), CONTINUE);
        peer.write_all(b"data").unwrap();
        peer
    });
    assert!(
        !ex.body_buffered(),
        "waiting for 100 Continue is not buffered"
    );
    assert_eq!(ex.read_body(None).unwrap(), b"data");
    let peer = client.join().unwrap();
    assert!(nothing_pending(&peer));
}

#[test]
fn a_body_sent_without_waiting_for_continue_gets_no_interim_response() {
    let (mut ex, mut peer) = Spec {
        expect_continue: true,
        ..Spec::length(4, b"data")
    }
    .build();
    assert_eq!(ex.read_body(None).unwrap(), b"data");
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "0")]))
            .unwrap();
        ex.finish_response(py).unwrap();
    });
    assert!(wire(&mut ex, &mut peer).starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn a_read_after_the_connection_was_taken_back_fails() {
    let (mut ex, _peer) = Spec::length(4, b"").build();
    let _ = ex.take_back().unwrap();
    let err = ex.read_body(None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    assert_eq!(err.to_string(), "the request is over");
}

#[test]
fn an_empty_body_is_over_at_once() {
    let (mut ex, _peer) = Spec {
        body: BodyKind::Length(0),
        leftover: b"GET /pipelined",
        ..Spec::default()
    }
    .build();
    assert!(ex.body_buffered());
    assert_eq!(ex.read_body(None).unwrap(), b"");
    assert_eq!(ex.read_body_line(None).unwrap(), b"");
    Python::attach(|py| {
        ex.start_response("204 No Content", &[]).unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(
            ex.conclude(py, true),
            After::KeepAlive(b"GET /pipelined".to_vec())
        );
    });
}
