//! Replays Gunicorn 27.0.1's own request vectors (valid and invalid) through the codec, the way
//! Gunicorn's `RequestParser` consumes a connection, under several ways of splitting the bytes.
//!
//! The vectors live outside the crate: `FERROCORN_CONFORMANCE_DIR`, or
//! `<manifest>/../../../shared/conformance/gunicorn-requests`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use ferrocorn_h1::{
    head_eof_error, parse_head, parse_proxy_header, BodyDecoder, HeadParser, HeaderMapPolicy,
    ParseError, ParserConfig, ProxyInfo, ProxyMode, ProxyParse, RequestHead,
};
use serde_json::Value;

fn vector_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FERROCORN_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/gunicorn-requests")
}

struct Vector {
    name: String,
    json: Value,
    wire: Vec<u8>,
    cfg: ParserConfig,
    proxy: ProxyMode,
}

fn load(kind: &str) -> Vec<Vector> {
    let dir = vector_dir().join(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read vector");
            let json: Value = serde_json::from_str(&text).expect("vector json");
            let wire = base64::engine::general_purpose::STANDARD
                .decode(json["wire_base64"].as_str().expect("wire_base64"))
                .expect("base64");
            assert_eq!(wire.len() as u64, json["wire_length"].as_u64().unwrap());
            let (cfg, proxy) = config_for(&json["config"]);
            Vector {
                name: format!("{kind}/{}", path.file_stem().unwrap().to_string_lossy()),
                json,
                wire,
                cfg,
                proxy,
            }
        })
        .collect()
}

/// Applies a vector's `config` (the `cfg.set` values) to Gunicorn's defaults.
fn config_for(config: &Value) -> (ParserConfig, ProxyMode) {
    // The corpus records Gunicorn, which never requires Host; a third of its HTTP/1.1 vectors
    // have none. The Host rule is checked on its own in `host_rule_on_the_corpus`.
    let mut cfg = ParserConfig {
        permit_missing_host: true,
        ..ParserConfig::default()
    };
    let mut proxy = ProxyMode::Off;
    let int = |v: &Value| v.as_i64().expect("integer setting");
    let flag = |v: &Value| v.as_bool().expect("boolean setting");
    for (key, value) in config.as_object().expect("config object") {
        match key.as_str() {
            "limit_request_line" => cfg.limit_request_line = int(value),
            "limit_request_fields" => cfg.limit_request_fields = int(value),
            "limit_request_field_size" => cfg.limit_request_field_size = int(value),
            "permit_unconventional_http_method" => {
                cfg.permit_unconventional_http_method = flag(value)
            }
            "permit_unconventional_http_version" => {
                cfg.permit_unconventional_http_version = flag(value)
            }
            "casefold_http_method" => cfg.casefold_http_method = flag(value),
            "permit_obsolete_folding" => cfg.permit_obsolete_folding = flag(value),
            "strip_header_spaces" => cfg.strip_header_spaces = flag(value),
            "header_map" => {
                cfg.header_map = match value.as_str().expect("header_map") {
                    "drop" => HeaderMapPolicy::Drop,
                    "refuse" => HeaderMapPolicy::Refuse,
                    "dangerous" => HeaderMapPolicy::Dangerous,
                    other => panic!("unknown header_map {other}"),
                }
            }
            "proxy_protocol" => {
                proxy = match value.as_str().expect("proxy_protocol") {
                    "off" => ProxyMode::Off,
                    "v1" => ProxyMode::V1,
                    "v2" => ProxyMode::V2,
                    "auto" => ProxyMode::Auto,
                    other => panic!("unknown proxy_protocol {other}"),
                }
            }
            // The harness peer is None, which Gunicorn always trusts; the setting changes nothing.
            "forwarded_allow_ips" => {}
            other => panic!("vector sets an unhandled setting: {other}"),
        }
    }
    (cfg, proxy)
}

/// A request as the harness observed it.
struct Parsed {
    head: RequestHead,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
    proxy: Option<ProxyInfo>,
}

/// Feeds the wire in the given chunks, like Gunicorn's IterUnreader.
struct Feed<'a> {
    chunks: Vec<&'a [u8]>,
    next: usize,
}

impl Feed<'_> {
    fn more(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.chunks.get(self.next) {
            Some(chunk) => {
                buf.extend_from_slice(chunk);
                self.next += 1;
                true
            }
            None => false,
        }
    }
}

/// Gunicorn's `RequestParser` over one connection. `read_bodies` is true for the valid harness
/// (the matchers read every body); the invalid harness only drains a body when moving on to
/// the next request, which does not happen after a request that closes the connection.
/// `incremental` parses heads with a kept [`HeadParser`] (as a server does) rather than the
/// stateless [`parse_head`].
fn run(
    vector: &Vector,
    chunks: Vec<&[u8]>,
    read_bodies: bool,
    incremental: bool,
) -> (Vec<Parsed>, Option<ParseError>) {
    let mut head_parser = HeadParser::new();
    let mut feed = Feed { chunks, next: 0 };
    let mut buf = Vec::new();
    let mut parsed = Vec::new();
    let mut first = true;
    loop {
        let mut proxy = None;
        if first && vector.proxy != ProxyMode::Off {
            loop {
                match parse_proxy_header(&buf, vector.proxy, None) {
                    Err(e) => return (parsed, Some(e)),
                    Ok(ProxyParse::Absent) => break,
                    Ok(ProxyParse::Present { info, consumed }) => {
                        buf.drain(..consumed);
                        proxy = Some(info);
                        break;
                    }
                    Ok(ProxyParse::Incomplete) => {
                        if !feed.more(&mut buf) {
                            let error = (!buf.is_empty())
                                .then(|| ParseError::NoMoreData(Some(buf.clone())));
                            return (parsed, error);
                        }
                    }
                }
            }
        }
        first = false;
        let head = loop {
            let step = if incremental {
                head_parser.parse(&buf, &vector.cfg, true)
            } else {
                parse_head(&buf, &vector.cfg, true)
            };
            match step {
                Err(e) => return (parsed, Some(e)),
                Ok(Some((head, consumed))) => {
                    buf.drain(..consumed);
                    break head;
                }
                Ok(None) => {
                    if !feed.more(&mut buf) {
                        return (parsed, head_eof_error(&buf));
                    }
                }
            }
        };
        let closes = head.should_close();
        let mut decoder = BodyDecoder::new(head.body, &vector.cfg);
        let mut body = Vec::new();
        if read_bodies || !closes {
            loop {
                match decoder.decode(&buf, &mut body) {
                    Err(e) => return (parsed, Some(e)),
                    Ok(used) => {
                        buf.drain(..used);
                    }
                }
                if decoder.is_done() {
                    break;
                }
                if !feed.more(&mut buf) {
                    if let Err(e) = decoder.finish_eof() {
                        return (parsed, Some(e));
                    }
                    break;
                }
            }
        }
        let trailers = decoder.trailers().to_vec();
        parsed.push(Parsed {
            head,
            body,
            trailers,
            proxy,
        });
        if closes {
            return (parsed, None);
        }
    }
}

/// A tiny xorshift64* generator, so random splits are reproducible without a crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 1..=max.
    fn size(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}

fn split_lines(wire: &[u8]) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for i in 1..wire.len() {
        if wire[i - 1] == b'\r' && wire[i] == b'\n' {
            chunks.push(&wire[start..=i]);
            start = i + 1;
        }
    }
    if start < wire.len() {
        chunks.push(&wire[start..]);
    }
    chunks
}

fn split_random(wire: &[u8], seed: u64) -> Vec<&[u8]> {
    // Gunicorn's send_random: chunk sizes in 1..=round(len / 10).
    let max = ((wire.len() + 5) / 10).max(1);
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < wire.len() {
        let end = (start + rng.size(max)).min(wire.len());
        chunks.push(&wire[start..end]);
        start = end;
    }
    chunks
}

const RANDOM_SEEDS: u64 = 25;
const MODES: [&str; 5] = ["whole", "lines", "bytes", "first+rest", "random"];

/// Every split of a mode; a vector passes a mode only if it passes all of them.
fn splits_for<'w>(mode: &str, wire: &'w [u8]) -> Vec<Vec<&'w [u8]>> {
    match mode {
        "whole" => vec![vec![wire]],
        "lines" => vec![split_lines(wire)],
        "bytes" => vec![wire.chunks(1).collect()],
        "first+rest" => vec![vec![&wire[..1], &wire[1..]]],
        "random" => (0..RANDOM_SEEDS).map(|s| split_random(wire, s)).collect(),
        other => unreachable!("{other}"),
    }
}

fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .expect("pair list")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_string(),
                pair[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected_body(body: &Value) -> Vec<u8> {
    if let Some(text) = body.get("text") {
        return text.as_str().unwrap().as_bytes().to_vec();
    }
    base64::engine::general_purpose::STANDARD
        .decode(body["base64"].as_str().unwrap())
        .unwrap()
}

fn check_request(got: &Parsed, want: &Value) -> Result<(), String> {
    let uri = &want["uri"];
    let head = &got.head;
    let version = (
        want["version"][0].as_u64().unwrap() as u8,
        want["version"][1].as_u64().unwrap() as u8,
    );
    let checks = [
        (
            "method",
            head.method.clone(),
            want["method"].as_str().unwrap().to_string(),
        ),
        (
            "uri",
            head.uri.clone(),
            uri["raw"].as_str().unwrap().to_string(),
        ),
        (
            "path",
            head.path.clone(),
            uri["path"].as_str().unwrap().to_string(),
        ),
        (
            "query",
            head.query.clone(),
            uri["query"].as_str().unwrap().to_string(),
        ),
        (
            "fragment",
            head.fragment.clone(),
            uri["fragment"].as_str().unwrap().to_string(),
        ),
        (
            "version",
            format!("{:?}", head.version),
            format!("{version:?}"),
        ),
        (
            "headers",
            format!("{:?}", head.headers),
            format!("{:?}", pairs(&want["headers"])),
        ),
        (
            "body",
            String::from_utf8_lossy(&got.body).into_owned(),
            String::from_utf8_lossy(&expected_body(&want["body"])).into_owned(),
        ),
        (
            "trailers",
            format!("{:?}", got.trailers),
            format!("{:?}", pairs(&want["trailers"])),
        ),
    ];
    for (what, got, want) in checks {
        if got != want {
            return Err(format!("{what}: got {got:?}, want {want:?}"));
        }
    }
    Ok(())
}

fn check_valid(vector: &Vector, chunks: Vec<&[u8]>, incremental: bool) -> Result<(), String> {
    let (parsed, error) = run(vector, chunks, true, incremental);
    if let Some(e) = error {
        return Err(format!("{}: {e}", e.class_name()));
    }
    let want = vector.json["requests"].as_array().expect("requests");
    if parsed.len() != want.len() {
        return Err(format!("{} requests, want {}", parsed.len(), want.len()));
    }
    for (got, want) in parsed.iter().zip(want) {
        check_request(got, want)?;
    }
    Ok(())
}

/// Gunicorn's test uses `pytest.raises(class)`, so a subclass passes too.
fn class_matches(got: &str, want: &str) -> bool {
    got == want
        || matches!(
            (got, want),
            ("InvalidResponseHeader", "InvalidHeader")
                | ("InvalidResponseHeaderName", "InvalidHeaderName")
        )
}

fn check_invalid(
    vector: &Vector,
    chunks: Vec<&[u8]>,
    exact: bool,
    incremental: bool,
) -> Result<(), String> {
    let (_, error) = run(vector, chunks, false, incremental);
    let want_class = vector.json["exception"].as_str().unwrap();
    let Some(error) = error else {
        return Err(format!("no error, want {want_class}"));
    };
    if !class_matches(error.class_name(), want_class) {
        return Err(format!(
            "{}: {error}, want {want_class}",
            error.class_name()
        ));
    }
    match vector.json["http_status"].as_u64() {
        Some(status) if u64::from(error.status()) != status => {
            return Err(format!("status {}, want {status}", error.status()));
        }
        None if !matches!(error, ParseError::NoMoreData(_)) => {
            return Err("a response was expected to be skipped".to_string());
        }
        _ => {}
    }
    if exact {
        // With all bytes at once Gunicorn's own run recorded the message and the live servers
        // recorded the response bytes: both must match exactly.
        let want_message = vector.json["observed_python_parser"]["message"]
            .as_str()
            .unwrap();
        if error.message() != want_message {
            return Err(format!(
                "message {:?}, want {want_message:?}",
                error.message()
            ));
        }
        let live = vector.json["live_sync"].as_str().unwrap();
        let live_bytes: Vec<u8> = live.chars().map(|c| c as u32 as u8).collect();
        let ours = if live.is_empty() {
            Vec::new()
        } else {
            error.error_response()
        };
        if ours != live_bytes {
            return Err(format!(
                "response {:?}, live {live:?}",
                String::from_utf8_lossy(&ours)
            ));
        }
    }
    Ok(())
}

/// For PROXY vectors, the live environ shows the client address Gunicorn took from the header.
fn check_proxy_environ(vector: &Vector) -> Result<(), String> {
    let (parsed, _) = run(vector, vec![&vector.wire], true, false);
    let Some(info) = parsed.first().and_then(|p| p.proxy.as_ref()) else {
        return Ok(());
    };
    let live = vector.json["live_sync"].as_str().unwrap();
    let body = live.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // Only the first response matters; a keep-alive run has more after it.
    let environ: Value = serde_json::Deserializer::from_str(body)
        .into_iter::<Value>()
        .next()
        .ok_or("empty live body")?
        .map_err(|e| format!("live body: {e}"))?;
    let want_addr = environ["REMOTE_ADDR"].as_str().unwrap_or("");
    let want_port = environ["REMOTE_PORT"].as_str().unwrap_or("");
    let got_port = info.client_port.map(|p| p.to_string()).unwrap_or_default();
    if info.client_addr.as_deref() != Some(want_addr) || got_port != want_port {
        return Err(format!("proxy {info:?}, live {want_addr}:{want_port}"));
    }
    Ok(())
}

#[test]
fn gunicorn_request_vectors() {
    let valid = load("valid");
    let invalid = load("invalid");
    let total = valid.len() + invalid.len();
    assert_eq!(total, 143, "the corpus should hold 143 vectors");
    let mut passed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for mode in MODES {
        // The stateless entry point in some modes, the kept parser in the others.
        let incremental = matches!(mode, "bytes" | "random");
        let mut count = 0;
        for vector in &valid {
            let outcome = splits_for(mode, &vector.wire)
                .into_iter()
                .try_for_each(|chunks| check_valid(vector, chunks, incremental));
            match outcome {
                Ok(()) => count += 1,
                Err(e) => failures.push(format!("[{mode}] {}: {e}", vector.name)),
            }
        }
        for vector in &invalid {
            let outcome = splits_for(mode, &vector.wire)
                .into_iter()
                .try_for_each(|chunks| check_invalid(vector, chunks, mode == "whole", incremental));
            match outcome {
                Ok(()) => count += 1,
                Err(e) => failures.push(format!("[{mode}] {}: {e}", vector.name)),
            }
        }
        passed.insert(mode, count);
    }
    let mut proxy_ok = 0;
    let proxy_vectors: Vec<&Vector> = valid.iter().filter(|v| v.proxy != ProxyMode::Off).collect();
    for vector in &proxy_vectors {
        match check_proxy_environ(vector) {
            Ok(()) => proxy_ok += 1,
            Err(e) => failures.push(format!("[proxy environ] {}: {e}", vector.name)),
        }
    }
    println!("conformance vectors passed per mode (of {total}):");
    for (mode, count) in &passed {
        println!("  {mode:<11} {count}/{total}");
    }
    println!(
        "  PROXY client address vs live environ: {proxy_ok}/{}",
        proxy_vectors.len()
    );
    for failure in &failures {
        println!("FAIL {failure}");
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures",
        failures.len()
    );
}

/// The Host rule (RFC 9112 3.2, a ferrocorn addition) changes exactly one thing on the corpus:
/// an HTTP/1.1 head that Gunicorn accepts without Host is refused with MissingHeader; every other
/// head gets the answer it gets with the rule relaxed.
#[test]
fn host_rule_on_the_corpus() {
    let mut refused = 0;
    for vector in load("valid").into_iter().chain(load("invalid")) {
        if vector.proxy != ProxyMode::Off {
            continue;
        }
        let strict = ParserConfig {
            permit_missing_host: false,
            ..vector.cfg.clone()
        };
        let relaxed = parse_head(&vector.wire, &vector.cfg, true);
        let got = parse_head(&vector.wire, &strict, true);
        match relaxed {
            Ok(Some((head, _))) if head.version >= (1, 1) && head.header("HOST").is_none() => {
                assert_eq!(
                    got,
                    Err(ParseError::MissingHeader("HOST".into())),
                    "{}",
                    vector.name
                );
                refused += 1;
            }
            other => assert_eq!(got, other, "{}", vector.name),
        }
    }
    // The corpus' HTTP/1.1 heads without Host that are otherwise valid.
    assert!(refused >= 20, "only {refused} vectors lacked Host");
}
