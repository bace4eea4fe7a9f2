use super::*;
use crate::error::ParseError;

/// A packet with these vars (modifier1 0, modifier2 0), then `body`.
fn packet(vars: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k);
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v);
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(block.len() as u16).to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out.extend_from_slice(body);
    out
}

fn nginx_vars() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b"QUERY_STRING", b"a=1&b=%20"),
        (b"REQUEST_METHOD", b"POST"),
        (b"CONTENT_TYPE", b"text/plain"),
        (b"CONTENT_LENGTH", b"5"),
        (b"REQUEST_URI", b"/p%25q/x?a=1&b=%20"),
        (b"PATH_INFO", b"/p%q/x"),
        (b"DOCUMENT_ROOT", b"/srv"),
        (b"SERVER_PROTOCOL", b"HTTP/2.0"),
        (b"REQUEST_SCHEME", b"http"),
        (b"HTTPS", b""),
        (b"REMOTE_ADDR", b"203.0.113.7"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"443"),
        (b"SERVER_NAME", b"example.org"),
        (b"HTTP_HOST", b"example.org"),
        (b"HTTP_X_FORWARDED_FOR", b"198.51.100.1"),
        (b"HTTP_ACCEPT", b"*/*"),
    ]
}

fn parse_all(bytes: &[u8]) -> Result<Option<(RequestHead, usize)>, UwsgiError> {
    parse_uwsgi(bytes, &ParserConfig::default())
}

#[test]
fn an_nginx_packet_becomes_a_head() {
    let bytes = packet(&nginx_vars(), b"hello");
    let (head, used) = parse_all(&bytes).unwrap().unwrap();
    assert_eq!(&bytes[used..], b"hello");
    assert_eq!(head.method, "POST");
    assert_eq!(
        head.path, "/p%q/x",
        "PATH_INFO is kept as sent, not decoded again"
    );
    assert_eq!(head.query, "a=1&b=%20");
    assert_eq!(head.uri, "/p%25q/x?a=1&b=%20");
    assert_eq!(head.version, (1, 1));
    assert_eq!(head.scheme, "http");
    assert_eq!(head.body, BodyKind::Length(5));
    assert!(head.must_close && head.should_close());
    assert!(!head.expect_continue);
    assert_eq!(
        head.headers,
        [
            ("CONTENT-TYPE", "text/plain"),
            ("CONTENT-LENGTH", "5"),
            ("HOST", "example.org"),
            ("X-FORWARDED-FOR", "198.51.100.1"),
            ("ACCEPT", "*/*"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
    );
    let gw = head.gateway.unwrap();
    assert_eq!(gw.remote_addr.as_deref(), Some("203.0.113.7"));
    assert_eq!(gw.remote_port.as_deref(), Some("51234"));
    assert_eq!(gw.server_name.as_deref(), Some("example.org"));
    assert_eq!(gw.server_port.as_deref(), Some("443"));
    assert_eq!(gw.protocol.as_deref(), Some("HTTP/2.0"));
    assert_eq!(gw.script_name, None);
    let extra: Vec<&str> = gw.extra.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        extra,
        ["REQUEST_URI", "DOCUMENT_ROOT", "REQUEST_SCHEME", "HTTPS"]
    );
}

#[test]
fn every_split_of_a_packet_needs_more_until_the_vars_are_whole() {
    let bytes = packet(&nginx_vars(), b"");
    for cut in 0..bytes.len() {
        assert_eq!(parse_all(&bytes[..cut]), Ok(None), "cut at {cut}");
    }
    assert!(parse_all(&bytes).unwrap().is_some());
}

#[test]
fn an_empty_packet_is_a_get_of_the_root() {
    let (head, used) = parse_all(&[0, 0, 0, 0]).unwrap().unwrap();
    assert_eq!(used, 4);
    assert_eq!((head.method.as_str(), head.path.as_str()), ("GET", "/"));
    assert_eq!((head.uri.as_str(), head.query.as_str()), ("/", ""));
    assert_eq!(head.body, BodyKind::Length(0));
    assert!(head.headers.is_empty());
}

#[test]
fn a_wrong_modifier_is_refused_from_the_first_byte() {
    assert_eq!(parse_all(&[5]), Err(UwsgiError::UnsupportedModifier(5)));
    let e = ParseError::from(UwsgiError::UnsupportedModifier(5));
    assert_eq!(e.message(), "Unsupported uWSGI modifier1: 5");
    assert_eq!((e.status(), e.reason()), (501, "Not Implemented"));
    assert_eq!(e.class_name(), "UnsupportedModifier");
    assert!(e.is_client_error());
    // modifier2 is free.
    let mut bytes = packet(&[], b"");
    bytes[3] = 9;
    assert!(parse_all(&bytes).unwrap().is_some());
}

#[test]
fn lengths_that_disagree_with_the_block_are_refused() {
    let whole = packet(&[(b"PATH_INFO", b"/x")], b"");
    let block = &whole[4..];
    // Declare a shorter block than the vars need, at every length that cuts them.
    for size in 1..block.len() {
        let mut bytes = vec![0, 0, 0, 0];
        bytes[1..3].copy_from_slice(&(size as u16).to_le_bytes());
        bytes.extend_from_slice(&block[..size]);
        let err = parse_all(&bytes).unwrap_err();
        assert!(matches!(err, UwsgiError::Truncated(_)), "{size}: {err:?}");
        let e = ParseError::from(err);
        assert_eq!((e.status(), e.class_name()), (400, "InvalidUWSGIHeader"));
        assert!(
            e.message().starts_with("Invalid uWSGI header: "),
            "{}",
            e.message()
        );
    }
    let mut bytes = vec![0, 1, 0, 0, 7];
    assert_eq!(
        parse_all(&bytes),
        Err(UwsgiError::Truncated(
            "the vars block ends inside a key's length"
        ))
    );
    bytes = vec![0, 3, 0, 0, 2, 0, b'A'];
    assert_eq!(
        parse_all(&bytes),
        Err(UwsgiError::Truncated("a key runs past the vars block"))
    );
}

#[test]
fn the_var_count_is_capped_at_one_thousand() {
    let keys: Vec<String> = (0..=MAX_VARS).map(|i| format!("V{i}")).collect();
    let vars: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_bytes(), &b"1"[..])).collect();
    assert!(parse_all(&packet(&vars[..MAX_VARS], b""))
        .unwrap()
        .is_some());
    assert_eq!(parse_all(&packet(&vars, b"")), Err(UwsgiError::TooManyVars));
    assert_eq!(
        ParseError::from(UwsgiError::TooManyVars).message(),
        "Invalid uWSGI header: more than 1000 vars"
    );
}

#[test]
fn keys_must_be_printable_ascii() {
    for key in [&b""[..], b"A B", b"CAF\xc3\xa9", b"X\x00"] {
        let err = parse_all(&packet(&[(key, b"v")], b"")).unwrap_err();
        assert!(
            matches!(err, UwsgiError::InvalidVar { .. }),
            "{key:?}: {err:?}"
        );
        assert_eq!(ParseError::from(err).status(), 400);
    }
    let err = parse_all(&packet(&[(b"A B", b"v")], b"")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid uWSGI var 'A B': a key must be printable ASCII"
    );
}

#[test]
fn values_are_latin1_and_checked_where_they_have_rules() {
    // PATH_INFO holds what the gateway decoded: any byte, as latin-1 text (PEP 3333).
    let (head, _) = parse_all(&packet(&[(b"PATH_INFO", b"/caf\xc3\xa9\xff")], b""))
        .unwrap()
        .unwrap();
    assert_eq!(head.path, "/caf\u{c3}\u{a9}\u{ff}");
    let bad: &[(&[u8], &[u8])] = &[
        (b"HTTP_X_A", b"a\r\nB: c"),
        (b"HTTP_X_A", b"a\x00"),
        (b"HTTP_X:A", b"a"),
        (b"HTTP_", b"a"),
        (b"REQUEST_METHOD", b"GE T"),
        (b"REQUEST_METHOD", b""),
        (b"SERVER_PROTOCOL", b"HTTP/1.1 x"),
        (b"wsgi.url_scheme", b"ftp"),
        (b"REQUEST_SCHEME", b""),
    ];
    for (k, v) in bad {
        let err = parse_all(&packet(&[(k, v)], b"")).unwrap_err();
        assert!(
            matches!(err, UwsgiError::InvalidVar { .. }),
            "{k:?}={v:?}: {err:?}"
        );
    }
    // An empty address, server or protocol var says nothing.
    let (head, _) = parse_all(&packet(
        &[
            (b"SERVER_NAME", b""),
            (b"REMOTE_ADDR", b""),
            (b"SERVER_PROTOCOL", b""),
        ],
        b"",
    ))
    .unwrap()
    .unwrap();
    assert_eq!(*head.gateway.unwrap(), GatewayVars::default());
    // Obs-text and tabs are fine in a header value, as in an HTTP head.
    let (head, _) = parse_all(&packet(&[(b"HTTP_X_A", b"a\tb\xe9")], b""))
        .unwrap()
        .unwrap();
    assert_eq!(head.headers, [("X-A".into(), "a\tb\u{e9}".into())]);
}

#[test]
fn content_length_must_be_digits() {
    for v in [
        &b"-1"[..],
        b"1e3",
        b" 5",
        b"0x10",
        b"99999999999999999999999",
    ] {
        let err = parse_all(&packet(&[(b"CONTENT_LENGTH", v)], b"")).unwrap_err();
        assert!(matches!(err, UwsgiError::InvalidContentLength(_)), "{v:?}");
        assert_eq!(ParseError::from(err).status(), 400);
    }
    // nginx sends an empty CONTENT_LENGTH and CONTENT_TYPE for a request without a body.
    let (head, _) = parse_all(&packet(
        &[(b"CONTENT_LENGTH", b""), (b"CONTENT_TYPE", b"")],
        b"",
    ))
    .unwrap()
    .unwrap();
    assert_eq!(head.body, BodyKind::Length(0));
    assert!(head.headers.is_empty());
    // The CGI vars decide; HTTP_CONTENT_* copies are ignored, a repeated var replaces.
    let (head, _) = parse_all(&packet(
        &[
            (b"CONTENT_LENGTH", b"3"),
            (b"HTTP_CONTENT_LENGTH", b"900"),
            (b"CONTENT_LENGTH", b"12"),
        ],
        b"",
    ))
    .unwrap()
    .unwrap();
    assert_eq!(head.body, BodyKind::Length(12));
    assert_eq!(head.headers, [("CONTENT-LENGTH".into(), "12".into())]);
}

#[test]
fn the_scheme_comes_from_https_then_the_named_scheme_then_the_listener() {
    let scheme = |vars: &[(&[u8], &[u8])], ssl: bool| {
        let cfg = ParserConfig {
            is_ssl: ssl,
            ..ParserConfig::default()
        };
        parse_uwsgi(&packet(vars, b""), &cfg)
            .unwrap()
            .unwrap()
            .0
            .scheme
    };
    assert_eq!(scheme(&[], false), "http");
    assert_eq!(scheme(&[], true), "https");
    for on in [&b"on"[..], b"ON", b"1", b"true"] {
        assert_eq!(scheme(&[(b"HTTPS", on)], false), "https");
    }
    assert_eq!(scheme(&[(b"HTTPS", b"off")], true), "https");
    assert_eq!(scheme(&[(b"HTTPS", b"")], false), "http");
    assert_eq!(scheme(&[(b"wsgi.url_scheme", b"https")], false), "https");
    assert_eq!(scheme(&[(b"UWSGI_SCHEME", b"HTTPS")], false), "https");
    assert_eq!(scheme(&[(b"REQUEST_SCHEME", b"http")], true), "http");
    // The most specific named scheme wins, whatever the order.
    assert_eq!(
        scheme(
            &[(b"wsgi.url_scheme", b"https"), (b"REQUEST_SCHEME", b"http")],
            false
        ),
        "https"
    );
    // wsgi.* vars are never passed on to the app.
    let (head, _) = parse_all(&packet(
        &[(b"wsgi.url_scheme", b"https"), (b"wsgi.input", b"x")],
        b"",
    ))
    .unwrap()
    .unwrap();
    assert!(head.gateway.unwrap().extra.is_empty());
}

#[test]
fn without_path_info_the_request_uri_says_the_path_and_query() {
    let (head, _) = parse_all(&packet(&[(b"REQUEST_URI", b"/a%20b?x=1")], b""))
        .unwrap()
        .unwrap();
    assert_eq!(head.path, "/a b");
    assert_eq!(head.query, "x=1");
    assert_eq!(head.uri, "/a%20b?x=1");
    // Without REQUEST_URI the target is rebuilt from PATH_INFO and QUERY_STRING.
    let (head, _) = parse_all(&packet(
        &[(b"PATH_INFO", b"/x"), (b"QUERY_STRING", b"q=2")],
        b"",
    ))
    .unwrap()
    .unwrap();
    assert_eq!(head.uri, "/x?q=2");
}

#[test]
fn repeated_header_vars_stay_repeated() {
    let (head, _) = parse_all(&packet(
        &[
            (b"HTTP_X_TAG", b"a"),
            (b"HTTP_X_TAG", b"b"),
            (b"HTTP_lower_case", b"c"),
        ],
        b"",
    ))
    .unwrap()
    .unwrap();
    assert_eq!(
        head.headers,
        [("X-TAG", "a"), ("X-TAG", "b"), ("LOWER-CASE", "c")]
            .map(|(n, v)| (n.to_string(), v.to_string()))
    );
}

#[test]
fn a_forbidden_peer_gets_403() {
    let e = ParseError::from(UwsgiError::Forbidden("10.1.2.3".into()));
    assert_eq!(e.message(), "uWSGI request from '10.1.2.3' not allowed");
    assert_eq!((e.status(), e.reason()), (403, "Forbidden"));
    assert_eq!(e.page_message(), "Request forbidden");
    assert_eq!(e.class_name(), "ForbiddenUWSGIRequest");
}

#[test]
fn control_characters_in_the_request_s_identity_are_refused() {
    for key in [
        &b"REQUEST_URI"[..],
        b"QUERY_STRING",
        b"REMOTE_ADDR",
        b"SERVER_NAME",
        b"SCRIPT_NAME",
    ] {
        let bytes = packet(&[(key, b"/a\r\nforged 200")], b"");
        assert!(
            parse_all(&bytes).is_err(),
            "{}",
            String::from_utf8_lossy(key)
        );
    }
}

#[test]
fn a_decoded_newline_in_path_info_is_encoded_in_the_rebuilt_target() {
    let bytes = packet(&[(b"PATH_INFO", b"/a\nb"), (b"QUERY_STRING", b"x=1")], b"");
    let (head, _) = parse_all(&bytes).unwrap().unwrap();
    assert_eq!(head.path, "/a\nb");
    assert_eq!(head.uri, "/a%0Ab?x=1");
}
