//! The response on the wire, framed as Gunicorn frames it, and what is held back for the
//! worker to send.

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::thread;

use pyo3::Python;

use super::super::{nothing_pending, pattern, read_n, read_to_eof, TempFile};
use super::{expect_head, headers, wire, Spec};
use crate::http::{After, ErrorPage, Exchange, ResponseSink};

#[test]
fn a_content_length_response_on_http11_keeps_the_connection() {
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        let app = headers(&[("Content-Type", "text/plain"), ("Content-Length", "5")]);
        ex.start_response("200 OK", &app).unwrap();
        assert!(!ex.headers_sent());
        ex.write_body(py, b"hel").unwrap();
        assert!(ex.headers_sent());
        ex.write_body(py, b"lo").unwrap();
        ex.finish_response(py).unwrap();
        assert!(!ex.will_close());
        let info = ex.response();
        assert_eq!(info.status.as_deref(), Some("200 OK"));
        assert_eq!(info.status_code, 200);
        assert_eq!(info.response_length, Some(5));
        assert_eq!(info.sent, 5);
        assert!(!info.chunked);
        assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(
        &got,
        "HTTP/1.1 200 OK",
        &[
            "Connection: keep-alive",
            "Content-Type: text/plain",
            "Content-Length: 5",
        ],
    );
    assert_eq!(body, b"hello");
}

#[test]
fn the_app_cannot_set_hop_by_hop_server_or_date_headers() {
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        let app = headers(&[
            ("Connection", "close"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "0"),
            ("X-App", " v "),
        ]);
        ex.start_response("200 OK", &app).unwrap();
        ex.finish_response(py).unwrap();
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(
        &got,
        "HTTP/1.1 200 OK",
        &["Connection: keep-alive", "Content-Length: 0", "X-App: v"],
    );
    assert!(body.is_empty());
}

#[test]
fn a_response_without_length_is_chunked_on_http11() {
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        ex.start_response("201 Created", &headers(&[("X-A", "1")]))
            .unwrap();
        assert!(ex.response().chunked);
        assert!(!ex.will_close());
        ex.write_body(py, b"hello").unwrap();
        ex.write_body(py, b"").unwrap();
        ex.write_body(py, b" world").unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(ex.response().sent, 11);
        assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(
        &got,
        "HTTP/1.1 201 Created",
        &[
            "Connection: keep-alive",
            "Transfer-Encoding: chunked",
            "X-A: 1",
        ],
    );
    assert_eq!(body, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
}

#[test]
fn a_response_without_length_on_http10_is_raw_and_closes() {
    let (mut ex, mut peer) = Spec {
        version: (1, 0),
        ..Spec::default()
    }
    .build();
    Python::attach(|py| {
        ex.start_response("200 OK", &[]).unwrap();
        assert!(!ex.response().chunked);
        assert!(ex.will_close());
        ex.write_body(py, b"raw bytes").unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(ex.conclude(py, true), After::Close);
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(&got, "HTTP/1.0 200 OK", &["Connection: close"]);
    assert_eq!(body, b"raw bytes");
}

#[test]
fn an_http10_response_with_length_may_keep_the_connection() {
    let (mut ex, mut peer) = Spec {
        version: (1, 0),
        ..Spec::default()
    }
    .build();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "2")]))
            .unwrap();
        ex.write_body(py, b"ok").unwrap();
        ex.finish_response(py).unwrap();
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(
        &got,
        "HTTP/1.0 200 OK",
        &["Connection: keep-alive", "Content-Length: 2"],
    );
    assert_eq!(body, b"ok");
}

#[test]
fn head_responses_carry_no_body() {
    let (mut ex, mut peer) = Spec {
        method: "HEAD",
        ..Spec::default()
    }
    .build();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "5")]))
            .unwrap();
        ex.write_body(py, b"hello").unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(
        &got,
        "HTTP/1.1 200 OK",
        &["Connection: keep-alive", "Content-Length: 5"],
    );
    assert!(body.is_empty(), "{body:?}");
}

#[test]
fn head_responses_without_length_are_not_chunked() {
    let (mut ex, mut peer) = Spec {
        method: "HEAD",
        ..Spec::default()
    }
    .build();
    Python::attach(|py| {
        ex.start_response("200 OK", &[]).unwrap();
        ex.write_body(py, b"dropped").unwrap();
        ex.finish_response(py).unwrap();
        assert!(!ex.will_close());
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(&got, "HTTP/1.1 200 OK", &["Connection: keep-alive"]);
    assert!(body.is_empty(), "{body:?}");
}

#[test]
fn no_content_and_not_modified_carry_no_body() {
    for (status, rest) in [
        ("204 No Content", &["Connection: keep-alive"][..]),
        (
            "304 Not Modified",
            &["Connection: keep-alive", "Content-Length: 4"][..],
        ),
    ] {
        let (mut ex, mut peer) = Spec::default().build();
        Python::attach(|py| {
            ex.start_response(status, &headers(&[("Content-Length", "4")]))
                .unwrap();
            ex.write_body(py, b"body").unwrap();
            ex.finish_response(py).unwrap();
            assert_eq!(ex.response().sent, 0);
            assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
        });
        let got = wire(&mut ex, &mut peer);
        let body = expect_head(&got, &format!("HTTP/1.1 {status}"), rest);
        assert!(body.is_empty(), "{status}: {body:?}");
    }
}

#[test]
fn a_body_longer_than_content_length_is_truncated() {
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "5")]))
            .unwrap();
        ex.write_body(py, b"hello world").unwrap();
        ex.write_body(py, b"more").unwrap();
        ex.finish_response(py).unwrap();
        assert_eq!(ex.response().sent, 5);
        assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
    });
    let got = wire(&mut ex, &mut peer);
    assert!(got.ends_with(b"\r\n\r\nhello"), "{got:?}");
}

#[test]
fn a_body_shorter_than_content_length_disables_keep_alive() {
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "10")]))
            .unwrap();
        ex.write_body(py, b"short").unwrap();
        assert!(!ex.will_close());
        ex.finish_response(py).unwrap();
        assert!(ex.will_close());
        assert_eq!(ex.conclude(py, true), After::Close);
    });
    assert!(wire(&mut ex, &mut peer).ends_with(b"\r\n\r\nshort"));
}

#[test]
fn start_response_rejects_an_invalid_status_or_header() {
    let (mut ex, mut peer) = Spec::default().build();
    let bad: [(&str, Vec<(String, String)>); 5] = [
        ("20 OK", vec![]),
        ("OK", vec![]),
        ("200 OK", headers(&[("Bad Name", "v")])),
        ("200 OK", headers(&[("X-Ok", "line\r\nbreak")])),
        ("200 OK", headers(&[("Content-Length", "many")])),
    ];
    for (status, hdrs) in &bad {
        let err = ex.start_response(status, hdrs).unwrap_err();
        assert!(!err.is_empty(), "{status} {hdrs:?}");
    }
    assert!(ex.response().status.is_none(), "nothing was taken");
    // A valid call afterwards works, and a second one replaces the first.
    ex.start_response("500 Oops", &headers(&[("X-First", "1")]))
        .unwrap();
    ex.start_response("202 Accepted", &headers(&[("Content-Length", "0")]))
        .unwrap();
    Python::attach(|py| ex.finish_response(py).unwrap());
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(
        &got,
        "HTTP/1.1 202 Accepted",
        &["Connection: keep-alive", "Content-Length: 0"],
    );
    assert!(body.is_empty());
}

#[test]
fn write_body_before_start_response_fails() {
    let (mut ex, peer) = Spec::default().build();
    Python::attach(|py| assert!(ex.write_body(py, b"x").is_err()));
    assert!(nothing_pending(&peer));
}

fn hints() -> Vec<(String, String)> {
    headers(&[("Link", " </style.css>; rel=preload ")])
}

#[test]
fn early_hints_go_out_before_the_head_on_http11() {
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        ex.early_hints(py, &hints()).unwrap();
        ex.start_response("200 OK", &headers(&[("Content-Length", "0")]))
            .unwrap();
        ex.finish_response(py).unwrap();
        // After the head it is too late: nothing more goes out.
        ex.early_hints(py, &hints()).unwrap();
    });
    let got = wire(&mut ex, &mut peer);
    let interim = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
    assert!(
        got.starts_with(interim),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    expect_head(
        &got[interim.len()..],
        "HTTP/1.1 200 OK",
        &["Connection: keep-alive", "Content-Length: 0"],
    );
    assert_eq!(
        got.windows(15).filter(|w| w == b"103 Early Hints").count(),
        1
    );
}

#[test]
fn early_hints_are_not_sent_to_http10_clients() {
    let (mut ex, peer) = Spec {
        version: (1, 0),
        ..Spec::default()
    }
    .build();
    Python::attach(|py| ex.early_hints(py, &hints()).unwrap());
    assert!(nothing_pending(&peer));
}

#[test]
fn early_hints_refuse_an_invalid_header() {
    let (mut ex, peer) = Spec::default().build();
    Python::attach(|py| {
        let err = ex
            .early_hints(py, &headers(&[("Bad Name", "v")]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = ex
            .early_hints(py, &headers(&[("Link", "a\nb")]))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    });
    assert!(nothing_pending(&peer));
}

#[test]
fn an_internal_error_page_replaces_the_response() {
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("X-App", "1")]))
            .unwrap();
        ex.send_error_page(py, ErrorPage::Internal);
        let info = ex.response();
        assert_eq!(info.status.as_deref(), Some("500 Internal Server Error"));
        assert!(info.headers.is_empty());
        assert!(
            !ex.headers_sent(),
            "Gunicorn's resp says the app's head never went"
        );
        assert!(ex.will_close());
        assert_eq!(ex.conclude(py, true), After::Close);
    });
    let got = wire(&mut ex, &mut peer);
    assert_eq!(
        got,
        ferrocorn_h1::error_page(500, "Internal Server Error", "")
    );
}

#[test]
fn a_held_response_stays_off_the_wire_until_taken_back() {
    let (mut ex, peer) = Spec {
        may_hold: true,
        ..Spec::default()
    }
    .build();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "4")]))
            .unwrap();
        ex.body_in_memory();
        ex.write_body(py, b"held").unwrap();
        ex.finish_response(py).unwrap();
        assert!(ex.headers_sent());
        assert_eq!(ex.response().sent, 4);
    });
    assert!(nothing_pending(&peer), "the held response went out");
    let (_transport, held) = ex.take_back().unwrap();
    let body = expect_head(
        &held,
        "HTTP/1.1 200 OK",
        &["Connection: keep-alive", "Content-Length: 4"],
    );
    assert_eq!(body, b"held");
    assert!(nothing_pending(&peer));
}

#[test]
fn without_may_hold_body_in_memory_changes_nothing() {
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "4")]))
            .unwrap();
        ex.body_in_memory();
        ex.write_body(py, b"sent").unwrap();
    });
    let head = read_n(&mut peer, 4);
    assert_eq!(head, b"HTTP", "the bytes went out at once");
    Python::attach(|py| ex.finish_response(py).unwrap());
    let (transport, held) = ex.take_back().unwrap();
    assert!(held.is_empty());
    drop(transport);
    assert!(read_to_eof(&mut peer).ends_with(b"\r\n\r\nsent"));
}

#[test]
fn a_held_response_too_large_to_hold_goes_out() {
    let (mut ex, mut peer) = Spec {
        may_hold: true,
        ..Spec::default()
    }
    .build();
    let body = pattern(200 * 1024);
    let client = thread::spawn(move || {
        let got = read_to_eof(&mut peer);
        (peer, got)
    });
    Python::attach(|py| {
        ex.start_response("200 OK", &[]).unwrap();
        ex.body_in_memory();
        ex.write_body(py, &body[..1000]).unwrap();
        ex.write_body(py, &body[1000..]).unwrap();
        ex.finish_response(py).unwrap();
    });
    let (transport, held) = ex.take_back().unwrap();
    assert!(held.is_empty(), "{} bytes still held", held.len());
    drop(transport);
    let (_peer, got) = client.join().unwrap();
    let framed = expect_head(
        &got,
        "HTTP/1.1 200 OK",
        &["Connection: keep-alive", "Transfer-Encoding: chunked"],
    );
    let mut expected = b"3E8\r\n".to_vec();
    expected.extend_from_slice(&body[..1000]);
    expected.extend_from_slice(format!("\r\n{:X}\r\n", body.len() - 1000).as_bytes());
    expected.extend_from_slice(&body[1000..]);
    expected.extend_from_slice(b"\r\n0\r\n\r\n");
    assert!(framed == expected, "the body was framed wrong");
}

#[test]
fn send_file_frames_the_rest_of_the_file_and_leaves_its_position() {
    use std::io::{Seek, SeekFrom};
    let contents = pattern(5000);
    let tmp = TempFile::with(&contents);
    let mut file = tmp.open();
    file.seek(SeekFrom::Start(1000)).unwrap();
    let (mut ex, mut peer) = Spec::default().build();
    Python::attach(|py| {
        ex.start_response("200 OK", &[]).unwrap();
        assert!(ex.send_file(py, file.as_raw_fd()).unwrap());
        ex.finish_response(py).unwrap();
        assert_eq!(ex.response().sent, 4000);
    });
    assert_eq!(file.stream_position().unwrap(), 1000);
    let got = wire(&mut ex, &mut peer);
    let framed = expect_head(
        &got,
        "HTTP/1.1 200 OK",
        &["Connection: keep-alive", "Transfer-Encoding: chunked"],
    );
    let mut expected = b"FA0\r\n".to_vec();
    expected.extend_from_slice(&contents[1000..]);
    expected.extend_from_slice(b"\r\n0\r\n\r\n");
    assert!(framed == expected, "the file was framed wrong");
}

#[test]
fn send_file_honours_content_length_and_refuses_a_non_file() {
    let contents = pattern(5000);
    let tmp = TempFile::with(&contents);
    let file = tmp.open();
    let (mut ex, mut peer) = Spec::default().build();
    let (pipe_r, _pipe_w) = std::os::unix::net::UnixStream::pair().unwrap();
    Python::attach(|py| {
        ex.start_response("200 OK", &headers(&[("Content-Length", "100")]))
            .unwrap();
        assert!(!ex.send_file(py, pipe_r.as_raw_fd()).unwrap(), "a socket");
        assert!(!ex.send_file(py, -1).unwrap(), "no descriptor");
        assert!(!ex.headers_sent(), "nothing went out");
        assert!(ex.send_file(py, file.as_raw_fd()).unwrap());
        ex.finish_response(py).unwrap();
        assert_eq!(ex.response().sent, 100);
        assert_eq!(ex.conclude(py, true), After::KeepAlive(Vec::new()));
    });
    let got = wire(&mut ex, &mut peer);
    let body = expect_head(
        &got,
        "HTTP/1.1 200 OK",
        &["Connection: keep-alive", "Content-Length: 100"],
    );
    assert_eq!(body, &contents[..100]);
}
