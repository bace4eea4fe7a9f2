//! Tests of the StatsD client: exact line bytes, Python float printing, address parsing, and
//! real UDP and unix-datagram collectors in master (direct) and worker (batched) mode.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::statsd::testing::{render, MAX_UDP};
use super::statsd::*;

fn settings(host: &str, prefix: &str, tags: &str) -> StatsdSettings {
    StatsdSettings {
        host: host.to_string(),
        prefix: prefix.to_string(),
        tags: tags.to_string(),
    }
}

fn udp_collector() -> (UdpSocket, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let host = sock.local_addr().unwrap().to_string();
    (sock, host)
}

fn recv(sock: &UdpSocket) -> String {
    let mut buf = [0u8; 65536];
    let n = sock.recv(&mut buf).expect("a datagram");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn nothing_more(sock: &UdpSocket) {
    sock.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(sock.recv(&mut buf).is_err(), "unexpected datagram");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrocorn-statsd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn lines_match_gunicorn_27() {
    let cases = [
        (
            ("", ""),
            ("gunicorn.requests", "1", "c|@1.0"),
            "gunicorn.requests:1|c|@1.0",
        ),
        (
            ("", ""),
            ("gunicorn.requests", "-1", "c|@1.0"),
            "gunicorn.requests:-1|c|@1.0",
        ),
        (
            ("", ""),
            ("gunicorn.workers", "3", "g"),
            "gunicorn.workers:3|g",
        ),
        (
            ("", ""),
            ("gunicorn.backlog", "0", "h"),
            "gunicorn.backlog:0|h",
        ),
        (
            ("", ""),
            ("gunicorn.request.duration", "0.283", "ms"),
            "gunicorn.request.duration:0.283|ms",
        ),
        (
            ("app", ""),
            ("gunicorn.workers", "1", "g"),
            "app.gunicorn.workers:1|g",
        ),
        (("app...", ""), ("x", "1", "g"), "app.x:1|g"),
        (("app.", ""), ("x", "1", "g"), "app.x:1|g"),
        // Gunicorn prints `agunicorn.requests` here; ferrocorn adds the dot.
        (
            ("a", "env:prod,team:x"),
            ("gunicorn.requests", "1", "c|@1.0"),
            "a.gunicorn.requests:1|c|@1.0|#env:prod,team:x",
        ),
        (
            ("a", "env:prod,team:x"),
            ("gunicorn.request.duration", "0.283", "ms"),
            "a.gunicorn.request.duration:0.283|ms|#env:prod,team:x",
        ),
        (
            ("", "t"),
            ("gunicorn.workers", "1", "g"),
            "gunicorn.workers:1|g|#t",
        ),
        (
            ("", "t"),
            ("gunicorn.backlog", "0", "h"),
            "gunicorn.backlog:0|h|#t",
        ),
    ];
    for ((prefix, tags), (name, value, kind), want) in cases {
        assert_eq!(
            render(prefix, tags, name, value, kind),
            want,
            "{prefix:?} {name}"
        );
    }
}

#[test]
fn prefix_gets_exactly_one_dot() {
    assert_eq!(normalise_prefix(""), "");
    assert_eq!(normalise_prefix("a"), "a.");
    assert_eq!(normalise_prefix("ab"), "ab.");
    assert_eq!(normalise_prefix("a.b"), "a.b.");
    assert_eq!(normalise_prefix("a.b.."), "a.b.");
    assert_eq!(normalise_prefix("."), ".");
}

#[test]
fn float_repr_matches_python_table() {
    let cases: &[(f64, &str)] = &[
        (0.283, "0.283"),
        (12.0, "12.0"),
        (1000.5, "1000.5"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e-5, "1e-05"),
        (1.5e-5, "1.5e-05"),
        (0.0001, "0.0001"),
        (0.00012345, "0.00012345"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (9999999999999998.0, "9999999999999998.0"),
        (123456789012345678.0, "1.2345678901234568e+17"),
        (1e22, "1e+22"),
        (1e100, "1e+100"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e+308"),
        (-2.5, "-2.5"),
        (-1e-7, "-1e-07"),
        (86399999.999, "86399999.999"),
        (f64::NAN, "nan"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ];
    for &(x, want) in cases {
        assert_eq!(py_float_repr(x), want, "{x:e}");
    }
}

#[test]
fn float_repr_matches_cpython_on_many_values() {
    let mut values = Vec::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..4000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = f64::from_bits(state);
        if x.is_finite() {
            values.push(x);
        }
        // Request durations: whole seconds * 1000 + microseconds / 1000.
        values.push((state % 90_000) as f64 * 1000.0 + (state % 1_000_000) as f64 / 1000.0);
        values.push((state % 1000) as f64 / 1000.0);
        values.push((state % 100_000) as f64 * 10f64.powi((state % 40) as i32 - 20));
    }
    Python::attach(|py| {
        for x in values {
            let want = pyo3::types::PyFloat::new(py, x).repr().unwrap().to_string();
            assert_eq!(py_float_repr(x), want, "bits {:#x}", x.to_bits());
        }
    });
}

#[test]
fn request_duration_text_is_python_repr_of_the_float() {
    for micros in (0..1_000_000u64).chain([1_000_000, 1_000_283, 61_500_000, 86_399_999_999]) {
        let elapsed = Duration::from_micros(micros) + Duration::from_nanos(micros % 997);
        let mut text = String::new();
        write_duration_ms(&mut text, elapsed);
        assert_eq!(text, py_float_repr(duration_ms(elapsed)), "{micros} µs");
    }
}

#[test]
fn duration_is_whole_microseconds() {
    assert_eq!(duration_ms(Duration::from_micros(283)), 0.283);
    assert_eq!(duration_ms(Duration::from_millis(12)), 12.0);
    assert_eq!(duration_ms(Duration::new(1, 500_999)), 1000.5);
    assert_eq!(duration_ms(Duration::from_nanos(999)), 0.0);
    assert_eq!(
        py_float_repr(duration_ms(Duration::from_micros(10))),
        "0.01"
    );
    assert_eq!(
        py_float_repr(duration_ms(Duration::from_micros(1))),
        "0.001"
    );
}

#[test]
fn host_parsing_follows_validate_statsd_address() {
    let udp = |host: &str, port| StatsdAddr::Udp {
        host: host.to_string(),
        port,
    };
    let cases = [
        ("localhost", udp("localhost", 8125)),
        ("Example.COM:9125", udp("example.com", 9125)),
        ("127.0.0.1:1", udp("127.0.0.1", 1)),
        ("[::1]:9125", udp("::1", 9125)),
        ("[::1]", udp("::1", 8125)),
        ("unix:8125", udp("unix", 8125)),
        (
            "unix:///run/statsd.sock",
            StatsdAddr::Unix("/run/statsd.sock".into()),
        ),
        ("unix:/run/s", StatsdAddr::Unix("/run/s".into())),
        ("unix://rel.sock", StatsdAddr::Unix("rel.sock".into())),
    ];
    for (input, want) in cases {
        assert_eq!(parse_host(input).unwrap(), want, "{input}");
    }
    assert_eq!(
        parse_host("host:port").unwrap_err(),
        "Value must be one of ('host:port', 'unix://PATH')"
    );
    assert!(parse_host("fd://3").is_err());
}

#[test]
fn batch_splits_at_the_datagram_limit() {
    let mut batch = Batch::new();
    let mut full = Vec::new();
    let line = "x".repeat(100);
    for _ in 0..30 {
        batch.push(&line, 1000, &mut full);
    }
    // 9 lines of 100 bytes plus 8 newlines is 908 bytes; a tenth would make 1009.
    assert_eq!(full.len(), 3);
    for datagram in &full {
        assert_eq!(datagram.lines, 9);
        assert_eq!(datagram.bytes.len(), 908);
    }
    assert_eq!(batch.datagram.lines, 3);
    let rest = batch.take();
    assert_eq!(rest.bytes, [line.as_str(); 3].join("\n").into_bytes());
    assert_eq!(batch.datagram.lines, 0);
    // A line longer than the limit still goes, alone.
    let long = "y".repeat(1500);
    batch.push("a", 1000, &mut full);
    batch.push(&long, 1000, &mut full);
    assert_eq!(full.last().unwrap().bytes, b"a");
    assert_eq!(batch.take().bytes, long.as_bytes());
}

#[test]
fn direct_mode_sends_each_line_to_a_udp_collector() {
    let _guard = super::global_test_guard();
    let (sock, host) = udp_collector();
    configure(Some(&settings(&host, "a", ""))).unwrap();
    assert!(enabled());
    assert!(!super::statsd::testing::batching());

    counter("gunicorn.requests", 1);
    assert_eq!(recv(&sock), "a.gunicorn.requests:1|c|@1.0");
    counter("x", -3);
    assert_eq!(recv(&sock), "a.x:-3|c|@1.0");
    gauge("gunicorn.workers", "4");
    assert_eq!(recv(&sock), "a.gunicorn.workers:4|g");
    histogram("gunicorn.backlog", "0");
    assert_eq!(recv(&sock), "a.gunicorn.backlog:0|h");
    timer_ms("t", 1e-5);
    assert_eq!(recv(&sock), "a.t:1e-05|ms");

    request(200, Duration::from_micros(283));
    assert_eq!(recv(&sock), "a.gunicorn.request.duration:0.283|ms");
    assert_eq!(recv(&sock), "a.gunicorn.requests:1|c|@1.0");
    assert_eq!(recv(&sock), "a.gunicorn.request.status.200:1|c|@1.0");

    for (kind, name) in [
        (LogCall::Critical, "critical"),
        (LogCall::Error, "error"),
        (LogCall::Warning, "warning"),
        (LogCall::Exception, "exception"),
    ] {
        log_call(kind);
        assert_eq!(recv(&sock), format!("a.gunicorn.log.{name}:1|c|@1.0"));
    }

    extra_metric("m", "7", "gauge");
    extra_metric("m", "2", "counter");
    extra_metric("m", "3.5", "histogram");
    extra_metric("m", "12", "timer");
    extra_metric("m", "1", "meter");
    extra_metric("", "1", "gauge");
    for want in ["a.m:7|g", "a.m:2|c|@1.0", "a.m:3.5|h", "a.m:12|ms"] {
        assert_eq!(recv(&sock), want);
    }
    nothing_more(&sock);

    configure(Some(&settings(&host, "", "env:prod,team:x"))).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    request(503, Duration::new(12, 0));
    assert_eq!(
        recv(&sock),
        "gunicorn.request.duration:12000.0|ms|#env:prod,team:x"
    );
    assert_eq!(recv(&sock), "gunicorn.requests:1|c|@1.0|#env:prod,team:x");
    assert_eq!(
        recv(&sock),
        "gunicorn.request.status.503:1|c|@1.0|#env:prod,team:x"
    );

    configure(None).unwrap();
    assert!(!enabled());
    counter("off", 1);
    nothing_more(&sock);
}

#[test]
fn reconfigure_moves_to_the_new_collector() {
    let _guard = super::global_test_guard();
    let (first, first_host) = udp_collector();
    let (second, second_host) = udp_collector();
    configure(Some(&settings(&first_host, "", ""))).unwrap();
    counter("one", 1);
    assert_eq!(recv(&first), "one:1|c|@1.0");
    configure(Some(&settings(&second_host, "p", ""))).unwrap();
    counter("two", 1);
    assert_eq!(recv(&second), "p.two:1|c|@1.0");
    nothing_more(&first);
    configure(None).unwrap();
}

#[test]
fn ipv6_host_uses_an_inet6_socket() {
    let _guard = super::global_test_guard();
    let Ok(sock) = UdpSocket::bind("[::1]:0") else {
        return; // no IPv6 loopback here
    };
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let port = sock.local_addr().unwrap().port();
    configure(Some(&settings(&format!("[::1]:{port}"), "", ""))).unwrap();
    gauge("g", "1");
    assert_eq!(recv(&sock), "g:1|g");
    configure(None).unwrap();
}

#[test]
fn unix_datagram_collector() {
    let _guard = super::global_test_guard();
    let dir = temp_dir("unix");
    let path = dir.join("statsd.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let host = format!("unix://{}", path.display());
    configure(Some(&settings(&host, "u", "k:v"))).unwrap();
    let before = dropped_total();
    counter("gunicorn.requests", 1);
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"u.gunicorn.requests:1|c|@1.0|#k:v");
    assert_eq!(dropped_total(), before);
    configure(None).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn drops_are_counted_when_the_collector_is_absent() {
    let _guard = super::global_test_guard();
    // A unix socket that does not exist: connect failed, every line is lost.
    configure(Some(&settings(
        "unix:///nonexistent-ferrocorn/s.sock",
        "",
        "",
    )))
    .unwrap();
    let before = dropped_total();
    counter("a", 1);
    gauge("b", "1");
    request(200, Duration::from_millis(1));
    assert_eq!(dropped_total(), before + 5);

    // A UDP port nobody listens on: loopback reports it (ECONNREFUSED) on the next sends.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    configure(Some(&settings(&format!("127.0.0.1:{port}"), "", ""))).unwrap();
    let before = dropped_total();
    for _ in 0..5 {
        counter("c", 1);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dropped_total() > before, "no drop counted");

    // Gunicorn's `encode("ascii")` refuses such a line; it is counted, not sent.
    let (sock, host) = udp_collector();
    configure(Some(&settings(&host, "", ""))).unwrap();
    let before = dropped_total();
    counter("café", 1);
    assert_eq!(dropped_total(), before + 1);
    counter("plain", 1);
    assert_eq!(recv(&sock), "plain:1|c|@1.0");
    configure(None).unwrap();
}

#[test]
fn worker_mode_batches_lines_into_multi_metric_datagrams() {
    use nix::sys::wait::{waitpid, WaitStatus};

    let _guard = super::global_test_guard();
    let (sock, host) = udp_collector();
    configure(Some(&settings(&host, "w", ""))).unwrap();
    let started = Instant::now();
    // A forked child is a real worker: batching and its flusher thread stay in it.
    let child = crate::sys::process::fork_and_run(|| {
        after_fork_in_worker();
        request(200, Duration::from_micros(1500));
        std::thread::sleep(Duration::from_millis(400));
        for i in 0..150 {
            counter(&format!("line.{i:03}"), i);
        }
        flush();
    });
    let first = recv(&sock);
    let waited = started.elapsed();
    assert_eq!(
        first,
        "w.gunicorn.request.duration:1.5|ms\nw.gunicorn.requests:1|c|@1.0\n\
         w.gunicorn.request.status.200:1|c|@1.0"
    );
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_millis(390),
        "the flusher sent after {waited:?}"
    );
    let mut lines = Vec::new();
    let mut datagrams = 0;
    while lines.len() < 150 {
        let datagram = recv(&sock);
        assert!(datagram.len() <= MAX_UDP, "{} bytes", datagram.len());
        datagrams += 1;
        lines.extend(datagram.split('\n').map(str::to_owned));
    }
    assert!(datagrams >= 2, "{datagrams} datagrams");
    let want: Vec<String> = (0..150)
        .map(|i| format!("w.line.{i:03}:{i}|c|@1.0"))
        .collect();
    assert_eq!(lines, want);
    assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
    assert!(
        !super::statsd::testing::batching(),
        "the parent stays in direct mode"
    );
    configure(None).unwrap();
}

#[test]
fn in_process_batching_uses_the_flusher_thread() {
    let _guard = super::global_test_guard();
    let (sock, host) = udp_collector();
    configure(Some(&settings(&host, "", ""))).unwrap();
    after_fork_in_worker();
    assert!(super::statsd::testing::batching());
    counter("a", 1);
    counter("b", 2);
    assert_eq!(recv(&sock), "a:1|c|@1.0\nb:2|c|@1.0");
    counter("c", 3);
    super::statsd::testing::stop_batching();
    assert_eq!(recv(&sock), "c:3|c|@1.0");
    configure(None).unwrap();
}
