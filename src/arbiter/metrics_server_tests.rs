//! Tests of the metrics endpoint with real sockets: clients in this thread for short
//! exchanges, where the kernel's buffers hold a whole response.

use super::*;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use nix::poll::{poll, PollFd, PollTimeout};

const BODY: &str = "# TYPE x gauge\nx 1\n";

fn tcp_server() -> (MetricsServer, std::net::SocketAddr) {
    let server = MetricsServer::bind("127.0.0.1:0").unwrap();
    let url = server.url();
    let hostport = url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{url}"));
    let addr = hostport.parse().unwrap();
    (server, addr)
}

/// One loop turn as the master runs it: poll what the server asks for, then `on_ready`.
fn turn(server: &mut MetricsServer, render: &mut dyn FnMut() -> String) {
    {
        let mut fds: Vec<PollFd<'_>> = server
            .poll_fds()
            .into_iter()
            .map(|(fd, flags)| PollFd::new(fd, flags))
            .collect();
        let _ = poll(&mut fds, PollTimeout::from(20u16));
    }
    server.on_ready(render);
}

fn turns(server: &mut MetricsServer, n: usize) {
    for _ in 0..n {
        turn(server, &mut || BODY.to_string());
    }
}

fn exchange(server: &mut MetricsServer, addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(request).unwrap();
    turns(server, 5);
    assert!(server.conns.is_empty(), "closed after the response");
    let mut text = String::new();
    client.read_to_string(&mut text).unwrap();
    text
}

fn split_response(text: &str) -> (&str, &str) {
    text.split_once("\r\n\r\n").expect("a complete head")
}

#[test]
fn get_metrics_is_200_with_the_rendered_body() {
    let (mut server, addr) = tcp_server();
    assert!(addr.port() != 0);
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let text = exchange(
        &mut server,
        addr,
        b"GET /metrics?name[]=x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
    );
    let (head, body) = split_response(&text);
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(
        lines,
        [
            "HTTP/1.1 200 OK",
            "Content-Type: text/plain; version=0.0.4; charset=utf-8",
            &format!("Content-Length: {}", BODY.len()),
            "Connection: close",
        ]
    );
    assert_eq!(body, BODY);
}

#[test]
fn head_gets_the_length_without_the_body() {
    let (mut server, addr) = tcp_server();
    let text = exchange(&mut server, addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    let (head, body) = split_response(&text);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(head.contains(&format!("Content-Length: {}", BODY.len())));
    assert_eq!(body, "");
}

#[test]
fn other_paths_are_404_and_other_methods_405() {
    let (mut server, addr) = tcp_server();
    for target in ["/", "/metricsx", "/metrics/", "/other?metrics"] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let text = exchange(&mut server, addr, req.as_bytes());
        assert!(
            text.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{target}: {text}"
        );
        assert!(text.contains("Connection: close\r\n"));
    }
    let text = exchange(
        &mut server,
        addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    );
    let (head, _) = split_response(&text);
    assert!(
        head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{text}"
    );
    assert!(head.contains("\r\nAllow: GET, HEAD"), "{text}");
    let text = exchange(
        &mut server,
        addr,
        b"GET http://h:1/metrics HTTP/1.1\r\n\r\n",
    );
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n"),
        "absolute form: {text}"
    );
}

#[test]
fn bad_and_oversized_heads_are_400() {
    let (mut server, addr) = tcp_server();
    for req in [
        &b"nonsense\r\n\r\n"[..],
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/2.0\r\n\r\n",
        b"GET  /metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
        b"G(T /metrics HTTP/1.1\r\n\r\n",
    ] {
        let text = exchange(&mut server, addr, req);
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{:?}: {text}",
            String::from_utf8_lossy(req)
        );
    }
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_HEAD + 500, b'a');
    let text = exchange(&mut server, addr, &big);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
}

#[test]
fn a_head_sent_in_pieces_is_answered_once_complete() {
    let (mut server, addr) = tcp_server();
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    for piece in ["GET /met", "rics HTTP/1.1\r", "\nHost: a\r\n", "\r"] {
        client.write_all(piece.as_bytes()).unwrap();
        turns(&mut server, 2);
        assert_eq!(server.conns.len(), 1, "still reading after {piece:?}");
        assert_eq!(server.poll_fds()[1].1, PollFlags::POLLIN);
        let err = client.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "no answer yet");
    }
    client.write_all(b"\n").unwrap();
    turns(&mut server, 2);
    assert!(server.conns.is_empty());
    client.set_nonblocking(false).unwrap();
    let mut text = String::new();
    client.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(BODY));
}

#[test]
fn a_client_that_never_reads_does_not_block_the_loop() {
    let (mut server, addr) = tcp_server();
    let big = "x".repeat(16 << 20);
    let mut calls = 0;
    let mut render = || {
        calls += 1;
        if calls == 1 {
            big.clone()
        } else {
            BODY.to_string()
        }
    };
    let mut stuck = TcpStream::connect(addr).unwrap();
    stuck.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    for _ in 0..5 {
        let started = Instant::now();
        turn(&mut server, &mut render);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    assert_eq!(server.conns.len(), 1);
    assert_eq!(
        server.poll_fds()[1].1,
        PollFlags::POLLOUT,
        "waiting to write"
    );

    let mut other = TcpStream::connect(addr).unwrap();
    other.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    for _ in 0..3 {
        turn(&mut server, &mut render);
    }
    let mut text = String::new();
    other.read_to_string(&mut text).unwrap();
    assert!(text.ends_with(BODY), "served while the other one is stuck");
    assert_eq!(server.conns.len(), 1);

    // As if the idle time had passed with no byte taken.
    server.conns[0].deadline = Instant::now();
    turn(&mut server, &mut render);
    assert!(server.conns.is_empty(), "given up once idle");
    drop(stuck);
}

#[test]
fn quiet_connections_are_closed_and_extra_ones_refused() {
    let (mut server, addr) = tcp_server();
    server.idle = Duration::from_millis(100);
    let clients: Vec<TcpStream> = (0..MAX_CONNS + 1)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    turns(&mut server, 2);
    assert_eq!(server.conns.len(), MAX_CONNS);
    assert_eq!(server.raw_fds().len(), MAX_CONNS + 1);
    let mut closed = 0;
    for mut c in &clients {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        if matches!(c.read(&mut [0u8; 8]), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 1, "only the one over the cap");
    std::thread::sleep(Duration::from_millis(150));
    turns(&mut server, 1);
    assert!(server.conns.is_empty(), "no head within the idle time");
    let mut c = &clients[0];
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(c.read(&mut [0u8; 8]).unwrap(), 0);
}

#[test]
fn unix_sockets_serve_and_clean_up_only_their_own_file() {
    let dir = std::env::temp_dir().join(format!("ferrocorn-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.sock");
    let spec = format!("unix:{}", path.display());
    let mut server = MetricsServer::bind(&spec).unwrap();
    assert_eq!(server.url(), spec);
    let mut client = UnixStream::connect(&path).unwrap();
    client.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    turns(&mut server, 3);
    let mut text = String::new();
    client.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with(BODY));

    let successor = MetricsServer::bind(&spec).unwrap();
    server.close();
    assert!(path.exists(), "the successor's file stays");
    drop(successor);
    assert!(!path.exists());
    std::fs::write(&path, "not a socket").unwrap();
    assert!(MetricsServer::bind(&spec).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ipv6_urls_have_brackets() {
    match MetricsServer::bind("[::1]:0") {
        Ok(server) => assert!(
            server.url().starts_with("http://[::1]:"),
            "{}",
            server.url()
        ),
        // No IPv6 loopback in this sandbox.
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable, "{e}"),
    }
}

#[test]
fn addresses_parse_like_bind() {
    let tcp = |host: &str, port| BindAddr::Tcp {
        host: host.into(),
        port,
    };
    let ok = |s: &str| parse_metrics_address(s).unwrap();
    assert_eq!(ok("127.0.0.1:0"), tcp("127.0.0.1", 0));
    assert_eq!(ok("LocalHost"), tcp("localhost", 9100));
    assert_eq!(ok(":9200"), tcp("0.0.0.0", 9200));
    assert_eq!(ok("[::1]:9300"), tcp("::1", 9300));
    assert_eq!(ok("[::]"), tcp("::", 9100));
    assert_eq!(ok("tcp://h:1"), tcp("h", 1));
    assert_eq!(ok("unix:/run/m.sock"), BindAddr::Unix("/run/m.sock".into()));
    assert_eq!(
        ok("unix:///run/m.sock"),
        BindAddr::Unix("/run/m.sock".into())
    );
    for bad in ["::1", "h:99999", "h:x", "[::1", "[::1]9", "fd://3", "unix:"] {
        assert!(parse_metrics_address(bad).is_err(), "{bad}");
    }
    let err = MetricsServer::bind("h:x").err().map(|e| e.kind());
    assert_eq!(err, Some(io::ErrorKind::InvalidInput));
}
