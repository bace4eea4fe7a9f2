//! `protocol = uwsgi` in the connection layer: packets through the head reader (pieces, a
//! gathered body, the allow list, refused packets), the split into a `Request`, and the
//! response toward the gateway (never chunked, no interim responses, one per connection).

use std::io::Write;
use std::sync::Arc;

use ferrocorn_h1::{BodyKind, ParseError, ParserConfig, ProxyMode, UwsgiError};
use pyo3::Python;

use super::exchange::{expect_head, headers, wire, Spec};
use super::unix_pair;
use crate::conn::reader::{into_request, HeadReader, PeerPolicy, Progress, Speaks};
use crate::http::{After, Exchange, Peer, ResponseSink, ServerAddr};

/// A uWSGI packet with these vars, then `body`.
fn packet(vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        for item in [k.as_bytes(), v.as_bytes()] {
            block.extend_from_slice(&(item.len() as u16).to_le_bytes());
            block.extend_from_slice(item);
        }
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(block.len() as u16).to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out.extend_from_slice(body);
    out
}

fn uwsgi_reader(forbidden: Option<&str>, gather: u64) -> HeadReader {
    let policy = PeerPolicy {
        trusted: false,
        proxy: ProxyMode::Off,
        forbidden_peer: None,
        speaks: Speaks::Uwsgi {
            forbidden: forbidden.map(str::to_string),
        },
    };
    HeadReader::new(policy, gather)
}

#[test]
fn a_packet_in_pieces_with_a_gathered_body() {
    let (mut ours, mut peer) = unix_pair();
    let pcfg = ParserConfig::default();
    let mut reader = uwsgi_reader(None, 1024);
    let bytes = packet(
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/up"),
            ("CONTENT_LENGTH", "10"),
            ("REMOTE_ADDR", "198.51.100.4"),
        ],
        b"0123456789",
    );
    // Every piece but the last leaves the request incomplete: the header, the vars, the body.
    for piece in [&bytes[..2], &bytes[2..9], &bytes[9..bytes.len() - 3]] {
        peer.write_all(piece).unwrap();
        reader.fill_nonblocking(&mut ours);
        assert!(matches!(reader.advance(&pcfg), Progress::NeedMore));
    }
    peer.write_all(&bytes[bytes.len() - 3..]).unwrap();
    reader.fill_nonblocking(&mut ours);
    let Progress::Ready(head, body) = reader.advance(&pcfg) else {
        panic!("the packet and its body are complete");
    };
    assert_eq!(body, b"0123456789");
    let server = ServerAddr::Unix(Arc::from("u.sock"));
    let (req, framing) = into_request(*head, Peer::Unix, server, None, 1);
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/up"));
    assert!(req.close_requested, "one request per gateway connection");
    assert_eq!(req.remote_addr(), "198.51.100.4");
    assert_eq!(req.server_protocol(), "HTTP/1.1");
    assert_eq!(framing.body, BodyKind::Length(10));
    assert!(framing.to_gateway && !framing.expect_continue);
}

#[test]
fn refused_packets_are_answered_from_the_bytes_that_condemn_them() {
    let pcfg = ParserConfig::default();
    let cases: [(Option<&str>, Vec<u8>, u16); 4] = [
        // A peer off the allow list, whatever it sends.
        (Some("10.9.8.7"), vec![0], 403),
        (None, vec![1], 501),
        (None, vec![0, 2, 0, 0, 9, 0], 400),
        (None, packet(&[("CONTENT_LENGTH", "-1")], b""), 400),
    ];
    for (forbidden, bytes, status) in cases {
        let (mut ours, mut peer) = unix_pair();
        let mut reader = uwsgi_reader(forbidden, 0);
        peer.write_all(&bytes).unwrap();
        reader.fill_nonblocking(&mut ours);
        let Progress::Invalid(err) = reader.advance(&pcfg) else {
            panic!("{bytes:?} is refused");
        };
        assert!(matches!(err, ParseError::Uwsgi(_)), "{err:?}");
        assert_eq!(err.status(), status, "{err:?}");
        assert!(err.is_client_error());
    }
    let forbidden = ParseError::Uwsgi(UwsgiError::Forbidden("10.9.8.7".into()));
    assert!(String::from_utf8_lossy(&forbidden.error_response())
        .starts_with("HTTP/1.1 403 Forbidden\r\n"));
}

#[test]
fn nothing_received_is_no_request_and_no_error() {
    let pcfg = ParserConfig::default();
    let mut reader = uwsgi_reader(Some("10.9.8.7"), 0);
    assert!(matches!(reader.advance(&pcfg), Progress::NeedMore));
}

#[test]
fn a_response_to_the_gateway_is_never_chunked_and_closes() {
    let (mut ex, mut peer) = Spec {
        to_gateway: true,
        ..Spec::default()
    }
    .build();
    Python::attach(|py| {
        ex.early_hints(py, &headers(&[("Link", "</a.css>; rel=preload")]))
            .unwrap();
        ex.start_response("200 OK", &headers(&[("X-A", "1")]))
            .unwrap();
        assert!(!ex.response().chunked);
        assert!(ex.will_close() && ex.close_forced());
        ex.write_body(py, b"hello ").unwrap();
        ex.write_body(py, b"world").unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(ex.conclude(py, true), After::Close);
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(&got, "HTTP/1.1 200 OK", &["Connection: close", "X-A: 1"]);
    assert_eq!(body, b"hello world");
}
