//! Tests of the syslog sender: address and facility tables, exact record bytes in both
//! formats, and real UDP, TCP, unix-datagram and unix-stream collectors.

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeZone};

use super::syslog::testing::{conf, connected, local_hostname, stream_kind};
use super::syslog::*;

fn settings(addr: &str, facility: &str, rfc5424: bool) -> SyslogSettings {
    SyslogSettings {
        addr: addr.to_string(),
        prefix: None,
        facility: facility.to_string(),
        proc_name: "app:app".to_string(),
        access: true,
        rfc5424,
    }
}

fn gunicorn_record(pri: u32, stream: &str, msg: &str) -> Vec<u8> {
    format!(
        "<{pri}>gunicorn.app.app.{stream}: [{}] {msg}\0",
        std::process::id()
    )
    .into_bytes()
}

fn udp_collector() -> (UdpSocket, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let addr = format!("udp://{}", sock.local_addr().unwrap());
    (sock, addr)
}

fn recv(sock: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 70000];
    let n = sock.recv(&mut buf).expect("a datagram");
    buf.truncate(n);
    buf
}

fn read_exact_within(conn: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    conn.read_exact(&mut buf).expect("the record bytes");
    buf
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrocorn-syslog-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unix_addr(path: &Path, suffix: &str) -> String {
    format!("unix://{}{suffix}", path.display())
}

#[test]
fn address_table_follows_parse_syslog_address() {
    let udp = |host: &str, port| SyslogAddr::Udp {
        host: host.into(),
        port,
    };
    let tcp = |host: &str, port| SyslogAddr::Tcp {
        host: host.into(),
        port,
    };
    let unix = |path: &str, socktype| SyslogAddr::Unix {
        path: path.into(),
        socktype,
    };
    let cases = [
        ("udp://localhost:514", udp("localhost", 514)),
        ("udp://LogHost", udp("loghost", 514)),
        ("udp://", udp("localhost", 514)),
        ("udp://10.0.0.1:1514", udp("10.0.0.1", 1514)),
        ("udp://[::1]:1514", udp("::1", 1514)),
        ("udp://[FE80::1]", udp("fe80::1", 514)),
        ("tcp://logs.example.com:6514", tcp("logs.example.com", 6514)),
        ("tcp://[::1]", tcp("::1", 514)),
        ("unix:///dev/log", unix("/dev/log", UnixType::Any)),
        ("unix:///dev/log#dgram", unix("/dev/log", UnixType::Dgram)),
        ("unix:///dev/log#stream", unix("/dev/log", UnixType::Stream)),
        ("unix:///dev/log#other", unix("/dev/log", UnixType::Any)),
        ("unix://relative.sock", unix("relative.sock", UnixType::Any)),
        ("unix://", unix("", UnixType::Any)),
    ];
    for (input, want) in cases {
        assert_eq!(parse_address(input).unwrap(), want, "{input}");
    }
    for bad in ["localhost:514", "UDP://x", "unix:/dev/log", "", "http://x"] {
        assert_eq!(
            parse_address(bad).unwrap_err(),
            "invalid syslog address",
            "{bad}"
        );
    }
    assert_eq!(
        parse_address("udp://host:port").unwrap_err(),
        "'port' is not a valid port number."
    );
    assert_eq!(
        parse_address("tcp://host:").unwrap_err(),
        "'' is not a valid port number."
    );
    assert!(parse_address("udp://host:70000").is_err());
}

#[test]
fn facility_table_is_gunicorns() {
    let table = [
        ("auth", 4),
        ("authpriv", 10),
        ("cron", 9),
        ("daemon", 3),
        ("ftp", 11),
        ("kern", 0),
        ("lpr", 6),
        ("mail", 2),
        ("news", 7),
        ("security", 4),
        ("syslog", 5),
        ("user", 1),
        ("uucp", 8),
        ("local0", 16),
        ("local1", 17),
        ("local2", 18),
        ("local3", 19),
        ("local4", 20),
        ("local5", 21),
        ("local6", 22),
        ("local7", 23),
    ];
    for (name, code) in table {
        assert_eq!(facility_code(name), Ok(code), "{name}");
        assert_eq!(facility_code(&name.to_uppercase()), Ok(code), "{name}");
    }
    assert_eq!(facility_code("Daemon"), Ok(3));
    // Python's lower() folds the Kelvin sign to `k`.
    assert_eq!(facility_code("\u{212A}ERN"), Ok(0));
    for bad in ["console", "ntp", "", "local8"] {
        assert_eq!(facility_code(bad).unwrap_err(), "unknown facility name");
    }
}

#[test]
fn severities_follow_map_priority() {
    let cases = [
        (50, 2),
        (40, 3),
        (30, 4),
        (20, 6),
        (10, 7),
        (25, 4),
        (0, 4),
        (60, 4),
    ];
    for (levelno, want) in cases {
        assert_eq!(severity(levelno), want, "{levelno}");
    }
}

#[test]
fn gunicorn_records_match_the_live_wire_bytes() {
    let no_time: Option<&chrono::DateTime<FixedOffset>> = None;
    let local0 = conf("local0", "app.app", false, "h");
    assert_eq!(
        format_record(
            &local0,
            20,
            Stream::Error,
            12034,
            "Starting gunicorn 27.0.1",
            no_time
        ),
        b"<134>gunicorn.app.app.error: [12034] Starting gunicorn 27.0.1\0"
    );
    assert_eq!(
        format_record(
            &local0,
            20,
            Stream::Access,
            12036,
            "127.0.0.1 - - \"GET /\"",
            no_time
        ),
        b"<134>gunicorn.app.app.access: [12036] 127.0.0.1 - - \"GET /\"\0"
    );
    let traceback = "Error handling request GET /boom\nTraceback (most recent call last):\n  \
                     File \"x\", line 3, in app\nValueError: boom";
    let mut want = b"<131>gunicorn.app.app.error: [7] ".to_vec();
    want.extend_from_slice(traceback.as_bytes());
    want.push(0);
    assert_eq!(
        format_record(&local0, 40, Stream::Error, 7, traceback, no_time),
        want
    );
    let daemon = conf("daemon", "my:pfx", false, "h");
    let cases = [(10, 31), (20, 30), (25, 28), (30, 28), (40, 27), (50, 26)];
    for (levelno, pri) in cases {
        let want = format!("<{pri}>gunicorn.my:pfx.error: [1] m\0");
        let got = format_record(&daemon, levelno, Stream::Error, 1, "m", no_time);
        assert_eq!(got, want.as_bytes(), "{levelno}");
    }
    let kern = conf("kern", "x", false, "h");
    assert_eq!(
        format_record(&kern, 50, Stream::Error, 1, "m", no_time),
        b"<2>gunicorn.x.error: [1] m\0"
    );
}

#[test]
fn rfc5424_records() {
    let at = FixedOffset::east_opt(2 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 12, 4, 7, 28, 19)
        .unwrap()
        + chrono::Duration::microseconds(4567);
    let c = conf("local0", "app.app", true, "web1");
    assert_eq!(
        String::from_utf8(format_record(
            &c,
            20,
            Stream::Error,
            99,
            "hi there",
            Some(&at)
        ))
        .unwrap(),
        "<134>1 2026-12-04T07:28:19.004567+02:00 web1 gunicorn.app.app.error 99 - - hi there"
    );
    let west = FixedOffset::west_opt(5 * 3600 + 30 * 60)
        .unwrap()
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .unwrap();
    assert_eq!(
        String::from_utf8(format_record(
            &c,
            30,
            Stream::Access,
            1,
            "a\nb",
            Some(&west)
        ))
        .unwrap(),
        "<132>1 2026-01-02T03:04:05.000000-05:30 web1 gunicorn.app.app.access 1 - - a\nb"
    );
    // APP-NAME is at most 48 printable ASCII characters.
    let odd = conf(
        "user",
        "my app with a very long process name indeed",
        true,
        "h",
    );
    let text =
        String::from_utf8(format_record(&odd, 20, Stream::Error, 1, "m", Some(&west))).unwrap();
    let app = text.split(' ').nth(3).unwrap();
    assert_eq!(app, "gunicorn.my_app_with_a_very_long_process_name_in");
    assert_eq!(app.len(), 48);
}

#[test]
fn udp_records_and_prefix_choice() {
    let _guard = super::global_test_guard();
    let (sock, addr) = udp_collector();
    configure(Some(&settings(&addr, "local0", false))).unwrap();
    assert!(enabled() && access_enabled());
    send(20, Stream::Error, "Starting gunicorn 27.0.1");
    assert_eq!(
        recv(&sock),
        gunicorn_record(134, "error", "Starting gunicorn 27.0.1")
    );
    send(20, Stream::Access, "GET / 200");
    assert_eq!(recv(&sock), gunicorn_record(134, "access", "GET / 200"));
    send(
        40,
        Stream::Error,
        "boom\nTraceback (most recent call last):\nValueError: x",
    );
    assert_eq!(
        recv(&sock),
        gunicorn_record(
            131,
            "error",
            "boom\nTraceback (most recent call last):\nValueError: x"
        )
    );

    let mut with_prefix = settings(&addr, "LOCAL7", false);
    with_prefix.prefix = Some("my:pfx".into());
    with_prefix.access = false;
    configure(Some(&with_prefix)).unwrap();
    assert!(!access_enabled());
    send(20, Stream::Access, "not sent");
    send(10, Stream::Error, "kept");
    let want = format!(
        "<191>gunicorn.my:pfx.error: [{}] kept\0",
        std::process::id()
    );
    assert_eq!(recv(&sock), want.as_bytes());

    // An empty syslog_prefix is falsy in Python: proc_name is used.
    with_prefix.prefix = Some(String::new());
    configure(Some(&with_prefix)).unwrap();
    send(30, Stream::Error, "w");
    let want = format!("<188>gunicorn.app.app.error: [{}] w\0", std::process::id());
    assert_eq!(recv(&sock), want.as_bytes());

    configure(Some(&settings(&addr, "user", true))).unwrap();
    send(20, Stream::Error, "five four two four");
    let text = String::from_utf8(recv(&sock)).unwrap();
    assert!(text.starts_with("<14>1 20"), "{text}");
    let tail = format!(
        " {} gunicorn.app.app.error {} - - five four two four",
        local_hostname(),
        std::process::id()
    );
    assert!(text.ends_with(&tail), "{text}");
    assert!(!text.contains('\0'));

    // Too large for one UDP datagram: dropped and counted, and the next record still goes.
    let before = dropped_total();
    send(20, Stream::Error, &"x".repeat(70_000));
    assert_eq!(dropped_total(), before + 1);
    send(20, Stream::Error, "after");
    assert!(String::from_utf8(recv(&sock))
        .unwrap()
        .ends_with(" - - after"));

    configure(None).unwrap();
    assert!(!enabled() && !access_enabled());
    send(20, Stream::Error, "off");
    sock.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(sock.recv(&mut buf).is_err());
}

#[test]
fn config_errors_keep_the_previous_setup() {
    let _guard = super::global_test_guard();
    let (sock, addr) = udp_collector();
    configure(Some(&settings(&addr, "user", false))).unwrap();
    assert_eq!(
        configure(Some(&settings(&addr, "nope", false))).unwrap_err(),
        "unknown facility name"
    );
    assert_eq!(
        configure(Some(&settings("localhost:514", "user", false))).unwrap_err(),
        "invalid syslog address"
    );
    // Gunicorn exits when a TCP collector refuses the connection at start-up.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = configure(Some(&settings(
        &format!("tcp://127.0.0.1:{port}"),
        "user",
        false,
    )))
    .unwrap_err();
    assert_eq!(
        err,
        format!("syslog: cannot connect to tcp://127.0.0.1:{port}: [Errno 111] Connection refused")
    );
    send(20, Stream::Error, "still here");
    assert_eq!(recv(&sock), gunicorn_record(14, "error", "still here"));
    configure(None).unwrap();
}

#[test]
fn tcp_records_framing_and_lazy_reconnect() {
    let _guard = super::global_test_guard();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp://{}", listener.local_addr().unwrap());
    configure(Some(&settings(&addr, "daemon", false))).unwrap();
    assert!(stream_kind());
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    send(20, Stream::Error, "one");
    send(40, Stream::Access, "two\nlines");
    let mut want = gunicorn_record(30, "error", "one");
    want.extend(gunicorn_record(27, "access", "two\nlines"));
    assert_eq!(read_exact_within(&mut conn, want.len()), want);

    // RFC 5424 over TCP: octet counting.
    configure(Some(&settings(&addr, "daemon", true))).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    send(20, Stream::Error, "framed\nmessage");
    let record = read_octet_counted(&mut conn);
    assert!(record.starts_with("<30>1 "), "{record}");
    assert!(record.ends_with(" - - framed\nmessage"), "{record}");

    // The collector goes away: records are dropped (and counted) until a reconnect, at most
    // once a second, reaches the new listener.
    drop(conn);
    let before = dropped_total();
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut fresh: Option<TcpStream> = None;
    let mut n = 0;
    while Instant::now() < deadline {
        send(20, Stream::Error, &format!("retry {n}"));
        n += 1;
        if fresh.is_none() {
            if let Ok((c, _)) = listener.accept() {
                fresh = Some(c);
            }
        }
        if fresh.is_some() && connected() && n > 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut fresh = fresh.expect("a reconnect within 5 s");
    fresh.set_nonblocking(false).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(
        dropped_total() > before,
        "records sent to the dead peer are counted"
    );
    std::thread::sleep(Duration::from_millis(100));
    send(20, Stream::Error, "after reconnect");
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|r: &String| r.ends_with(" - - after reconnect"))
    {
        seen.push(read_octet_counted(&mut fresh));
    }
    configure(None).unwrap();
}

fn read_octet_counted(conn: &mut impl Read) -> String {
    let mut len = Vec::new();
    loop {
        let byte = read_exact_within(conn, 1)[0];
        if byte == b' ' {
            break;
        }
        len.push(byte);
    }
    let len: usize = String::from_utf8(len).unwrap().parse().unwrap();
    String::from_utf8(read_exact_within(conn, len)).unwrap()
}

#[test]
fn unix_datagram_and_stream_collectors() {
    let _guard = super::global_test_guard();
    let dir = temp_dir("unix");
    let dgram_path = dir.join("dgram.sock");
    let dgram = UnixDatagram::bind(&dgram_path).unwrap();
    dgram
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    for suffix in ["", "#dgram"] {
        configure(Some(&settings(
            &unix_addr(&dgram_path, suffix),
            "local1",
            false,
        )))
        .unwrap();
        assert!(!stream_kind());
        send(20, Stream::Error, "via dgram");
        let n = dgram.recv(&mut buf).unwrap();
        let want = format!(
            "<142>gunicorn.app.app.error: [{}] via dgram\0",
            std::process::id()
        );
        assert_eq!(&buf[..n], want.as_bytes(), "{suffix:?}");
    }

    // A bare unix:// falls back to a stream socket, as Python's handler does.
    let stream_path = dir.join("stream.sock");
    let listener = UnixListener::bind(&stream_path).unwrap();
    for suffix in ["", "#stream"] {
        configure(Some(&settings(
            &unix_addr(&stream_path, suffix),
            "local1",
            false,
        )))
        .unwrap();
        assert!(stream_kind(), "{suffix:?}");
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        send(20, Stream::Access, "via stream");
        let want = gunicorn_record(142, "access", "via stream");
        assert_eq!(read_exact_within(&mut conn, want.len()), want);
    }
    // `#dgram` on a stream socket: no fallback, nothing connects, records are counted.
    configure(Some(&settings(
        &unix_addr(&stream_path, "#dgram"),
        "user",
        false,
    )))
    .unwrap();
    let before = dropped_total();
    send(20, Stream::Error, "lost");
    assert_eq!(dropped_total(), before + 1);
    configure(None).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_unix_socket_is_retried_lazily() {
    let _guard = super::global_test_guard();
    let dir = temp_dir("late");
    let path = dir.join("late.sock");
    // Python's handler swallows this at start-up too.
    configure(Some(&settings(&unix_addr(&path, ""), "user", false))).unwrap();
    assert!(!connected());
    let before = dropped_total();
    send(20, Stream::Error, "early");
    assert_eq!(dropped_total(), before + 1);
    let late = UnixDatagram::bind(&path).unwrap();
    late.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 256];
    let got = loop {
        assert!(Instant::now() < deadline, "no reconnect within 3 s");
        send(20, Stream::Error, "late");
        if let Ok(n) = late.recv(&mut buf) {
            break buf[..n].to_vec();
        }
    };
    assert_eq!(got, gunicorn_record(14, "error", "late"));
    configure(None).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_stalled_tcp_collector_never_blocks_the_sender() {
    let _guard = super::global_test_guard();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp://{}", listener.local_addr().unwrap());
    configure(Some(&settings(&addr, "user", true))).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let before = dropped_total();
    let big = "y".repeat(60_000);
    let started = Instant::now();
    for _ in 0..400 {
        send(20, Stream::Error, &big);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        dropped_total() > before,
        "a full socket buffer drops records"
    );
    // What did arrive is whole frames; a record cut short ended its connection, so the
    // stream holds no bytes after the cut.
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut received = Vec::new();
    let _ = conn.read_to_end(&mut received);
    configure(None).unwrap();
    let mut rest = &received[..];
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..space])
            .unwrap()
            .parse()
            .unwrap();
        let body = &rest[space + 1..];
        if body.len() < len {
            break; // the last frame may be the cut one
        }
        assert!(body[..len].ends_with(big.as_bytes()));
        rest = &body[len..];
    }
}
