//! Tests for the access log: every atom, SafeAtoms quoting and defaults, the reference line,
//! and the global destination with reopen.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{FixedOffset, TimeZone};

use super::access::{self, AccessFormat, AccessRecord};
use super::error_log;

const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_environ(_: &str) -> Option<String> {
    None
}

fn fake_environ(key: &str) -> Option<String> {
    match key {
        "REMOTE_ADDR" => Some("127.0.0.1".into()),
        "wsgi.url_scheme" => Some("http".into()),
        "QUOTED" => Some("say \"hi\"".into()),
        _ => None,
    }
}

struct Fixture {
    req: Vec<(String, String)>,
    resp: Vec<(String, String)>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            req: headers(&[
                ("HOST", "localhost:8000"),
                ("USER-AGENT", "curl/7.88.1"),
                ("ACCEPT", "*/*"),
            ]),
            resp: headers(&[("Content-Type", "text/plain"), ("X-Trace", "abc")]),
        }
    }

    fn record(&self) -> AccessRecord<'_> {
        AccessRecord {
            remote_addr: "127.0.0.1",
            method: "GET",
            raw_uri: "/x?y=1",
            protocol: "HTTP/1.1",
            status: "200 OK",
            path_info: Some("/x"),
            query: "y=1",
            sent: Some(12),
            request_headers: &self.req,
            response_headers: &self.resp,
            request_time: Duration::new(2, 345_678_901),
            environ: &fake_environ,
        }
    }
}

fn render(format: &str, record: &AccessRecord<'_>) -> String {
    let t = FixedOffset::east_opt(0)
        .unwrap()
        .with_ymd_and_hms(2026, 11, 22, 2, 55, 45)
        .unwrap();
    AccessFormat::parse(format)
        .unwrap()
        .render_at(record, &t, 4242)
        .unwrap()
}

#[test]
fn default_format_matches_the_reference_line() {
    let f = Fixture::new();
    assert_eq!(
        render(DEFAULT_FORMAT, &f.record()),
        r#"127.0.0.1 - - [22/Nov/2026:02:55:45 +0000] "GET /x?y=1 HTTP/1.1" 200 12 "-" "curl/7.88.1""#
    );
}

#[test]
fn every_atom() {
    let f = Fixture::new();
    let rec = f.record();
    let cases = [
        ("%(h)s", "127.0.0.1"),
        ("%(l)s", "-"),
        ("%(u)s", "-"),
        ("%(t)s", "[22/Nov/2026:02:55:45 +0000]"),
        ("%(r)s", "GET /x?y=1 HTTP/1.1"),
        ("%(s)s", "200"),
        ("%(m)s", "GET"),
        ("%(U)s", "/x"),
        ("%(q)s", "y=1"),
        ("%(H)s", "HTTP/1.1"),
        ("%(b)s", "12"),
        ("%(B)s", "12"),
        ("%(B)d", "12"),
        ("%(f)s", "-"),
        ("%(a)s", "curl/7.88.1"),
        ("%(T)s", "2"),
        ("%(D)s", "2345678"),
        ("%(M)s", "2345"),
        ("%(L)s", "2.345678"),
        ("%(p)s", "<4242>"),
        ("%({accept}i)s", "*/*"),
        ("%({ACCEPT}i)s", "*/*"),
        ("%({Host}I)s", "localhost:8000"),
        ("%({content-type}o)s", "text/plain"),
        ("%({x-trace}O)s", "abc"),
        ("%({server}o)s", "-"),
        ("%({remote_addr}e)s", "127.0.0.1"),
        ("%({REMOTE_ADDR}e)s", "127.0.0.1"),
        ("%({wsgi.url_scheme}e)s", "http"),
        ("%({missing}e)s", "-"),
        ("%({x-forwarded-for}i)s", "-"),
        ("%(nope)s", "-"),
        ("%(H)s %(h)s", "HTTP/1.1 127.0.0.1"),
        ("%({accept}x)s", "-"),
        ("%({accept)s", "-"),
        ("100%% %(s)s", "100% 200"),
    ];
    for (format, want) in cases {
        assert_eq!(render(format, &rec), want, "format {format:?}");
    }
}

#[test]
fn widths_flags_and_numbers() {
    let f = Fixture::new();
    let rec = f.record();
    assert_eq!(render("%(h)-15s|", &rec), "127.0.0.1      |");
    assert_eq!(render("%(h)15s|", &rec), "      127.0.0.1|");
    assert_eq!(render("%(m).1s", &rec), "G");
    assert_eq!(render("%(D)010d", &rec), "0002345678");
    assert_eq!(render("%(T)+d", &rec), "+2");
    assert_eq!(render("%(M)x", &rec), "929");
    assert_eq!(render("%(B)08.2f", &rec), "00012.00");
}

#[test]
fn safe_atoms_quoting() {
    let mut f = Fixture::new();
    f.req = headers(&[
        ("USER-AGENT", "evil \"agent\""),
        ("REFERER", "http://x/\"y\""),
        ("X-Q", "a\"b"),
    ]);
    f.resp = headers(&[("X-Out", "\"o\"")]);
    let mut rec = f.record();
    rec.raw_uri = "/\"q\"";
    assert_eq!(render("%(a)s", &rec), r#"evil \"agent\""#);
    assert_eq!(render("%(f)s", &rec), r#"http://x/\"y\""#);
    assert_eq!(render("%({x-q}i)s", &rec), r#"a\"b"#);
    assert_eq!(render("%({x-out}o)s", &rec), r#"\"o\""#);
    assert_eq!(render("%(r)s", &rec), r#"GET /\"q\" HTTP/1.1"#);
    assert_eq!(render("%({QUOTED}e)s", &rec), r#"say \"hi\""#);
    // repr sees the escaped text, as Python formats the SafeAtoms value.
    assert_eq!(render("%(a)r", &rec), r#"'evil \\"agent\\"'"#);
}

#[test]
fn zero_bytes_none_and_error_page_values() {
    let f = Fixture::new();
    let mut rec = f.record();
    rec.sent = Some(0);
    assert_eq!(render("%(b)s %(B)s", &rec), "0 0");
    rec.sent = None;
    rec.path_info = None;
    rec.remote_addr = "";
    assert_eq!(render("%(b)s %(B)s %(U)s [%(h)s]", &rec), "- None None []");
    let err = AccessFormat::parse("%(B)d")
        .unwrap()
        .render(&rec)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "access_log_format \"%(B)d\": TypeError: %d format: a real number is required, not NoneType"
    );
    assert_eq!(err.setting(), "access_log_format");
}

#[test]
fn headers_last_wins_but_environ_style_atoms_join() {
    let mut f = Fixture::new();
    f.req = headers(&[
        ("USER-AGENT", "one"),
        ("ACCEPT", "a"),
        ("USER-AGENT", "two"),
        ("ACCEPT", "b"),
    ]);
    f.resp = headers(&[("X-A", "1"), ("x-a", "2")]);
    let rec = f.record();
    assert_eq!(render("%({accept}i)s", &rec), "b");
    assert_eq!(render("%(a)s", &rec), "one,two");
    assert_eq!(render("%({x-a}o)s", &rec), "2");
}

#[test]
fn basic_auth_user() {
    let cases = [
        ("Basic dXNlcjpwYXNz", "user"),
        ("basic dXNlcjpwYXNz", "user"),
        ("BASIC   dXNlcjpwYXNz  ", "user"),
        ("Basic bWFyaWU=", "marie"),
        ("Basic w6ltaWxlOng=", "émile"),
        ("Basic !!!", "-"),
        ("Basic dXNlcjpwYXN", "-"),
        ("Basic", "-"),
        ("Bearer abc.def", "-"),
        ("Basic Og==", "-"),
    ];
    for (header, want) in cases {
        let mut f = Fixture::new();
        f.req = headers(&[("AUTHORIZATION", header)]);
        assert_eq!(render("%(u)s", &f.record()), want, "header {header:?}");
    }
    let mut f = Fixture::new();
    f.req = headers(&[("AUTHORIZATION", "Basic dXNlcjpw\"YXNz")]);
    assert_eq!(render("%(u)s|%(u)s", &f.record()), "user|user");
}

#[test]
fn format_errors_are_reported_at_parse() {
    for (format, needle) in [
        ("%(h)", "incomplete format"),
        ("%(h", "incomplete format key"),
        (
            "%(h)y",
            "unsupported format character 'y' (0x79) at index 4",
        ),
        ("%s", "unnamed format specifier at index 0"),
        ("%(h)s %-5d", "unnamed format specifier at index 6"),
        ("%(h)*s", "* wants int"),
    ] {
        let err = AccessFormat::parse(format).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("access_log_format: "), "{text}");
        assert!(text.contains(needle), "{format:?}: {text}");
    }
    let ok = AccessFormat::parse(DEFAULT_FORMAT).unwrap();
    assert_eq!(ok.source(), DEFAULT_FORMAT);
}

#[test]
fn environ_closure_is_only_consulted_for_e_atoms() {
    let f = Fixture::new();
    let mut rec = f.record();
    rec.environ = &no_environ;
    assert_eq!(render("%({remote_addr}e)s", &rec), "-");
    let calls = std::cell::RefCell::new(Vec::new());
    let spy = |key: &str| {
        calls.borrow_mut().push(key.to_owned());
        None
    };
    rec.environ = &spy;
    render(DEFAULT_FORMAT, &rec);
    assert!(calls.borrow().is_empty());
    render("%({Remote_Addr}e)s", &rec);
    assert_eq!(
        *calls.borrow(),
        ["Remote_Addr", "REMOTE_ADDR", "remote_addr"]
    );
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrocorn-access-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read(path: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[test]
fn global_access_log_file_reopen_and_render_errors() {
    let _guard = super::global_test_guard();
    let dir = temp_dir("global");
    let path = dir.join("access.log");
    let errors = dir.join("error.log");
    error_log::init(errors.to_str().unwrap(), "info").unwrap();

    access::init(None, DEFAULT_FORMAT).unwrap();
    assert!(!access::enabled());
    let f = Fixture::new();
    access::log(&f.record());

    access::init(Some(path.to_str().unwrap()), "%(m)s %(U)s %(s)s %(b)s").unwrap();
    assert!(access::enabled());
    assert!(access::raw_fd().is_some());
    access::log(&f.record());
    std::fs::rename(&path, dir.join("access.log.1")).unwrap();
    access::reopen().unwrap();
    let mut rec = f.record();
    rec.status = "404 Not Found";
    rec.sent = Some(0);
    access::log(&rec);

    assert_eq!(read(&dir.join("access.log.1")), "GET /x 200 12\n");
    assert_eq!(read(&path), "GET /x 404 0\n");

    // A bad format is refused and the old one stays.
    assert!(access::init(Some(path.to_str().unwrap()), "%(h)q").is_err());
    access::log(&f.record());
    assert_eq!(read(&path), "GET /x 404 0\nGET /x 200 12\n");

    // A render-time error goes to the error log and writes no access line.
    access::init(Some(path.to_str().unwrap()), "%(h)d").unwrap();
    access::log(&f.record());
    assert_eq!(read(&path), "GET /x 404 0\nGET /x 200 12\n");
    let logged = read(&errors);
    assert!(
        logged.contains("[ERROR] Error writing the access log line: access_log_format \"%(h)d\": TypeError: %d format: a real number is required, not str\n"),
        "{logged}"
    );

    access::init(None, DEFAULT_FORMAT).unwrap();
    assert_eq!(access::raw_fd(), None);
    error_log::init("-", "info").unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
