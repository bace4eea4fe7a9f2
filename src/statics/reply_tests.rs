use super::*;

const CC: &str = "public, max-age=60";

fn chosen(coding: Coding) -> Chosen<'static> {
    Chosen {
        coding,
        facts: Facts {
            len: 1000,
            // Sun, 06 Nov 1994 08:49:37 GMT and a bit.
            mtime_ns: 784_111_777_500_000_000,
            ino: 42,
        },
        content_type: "text/plain; charset=utf-8",
        varies: false,
    }
}

fn req(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn get(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn etag() -> String {
    chosen(Coding::Identity).facts.etag(Coding::Identity)
}

#[test]
fn a_plain_get() {
    let r = decide(&[], false, &chosen(Coding::Identity), CC);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        Body::File {
            start: 0,
            len: 1000
        }
    );
    assert_eq!(get(&r, "content-length").as_deref(), Some("1000"));
    assert_eq!(
        get(&r, "last-modified").as_deref(),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    assert_eq!(get(&r, "cache-control").as_deref(), Some(CC));
    assert_eq!(get(&r, "accept-ranges").as_deref(), Some("bytes"));
    assert!(get(&r, "vary").is_none());
    assert!(get(&r, "content-encoding").is_none());
    let tag = get(&r, "etag").expect("etag");
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
}

#[test]
fn head_has_the_headers_and_no_body() {
    let r = decide(
        &req(&[("RANGE", "bytes=0-1")]),
        true,
        &chosen(Coding::Identity),
        CC,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, Body::Empty);
    assert_eq!(get(&r, "content-length").as_deref(), Some("1000"));
}

#[test]
fn etags_differ_per_encoding_and_file() {
    let f = chosen(Coding::Identity).facts;
    let tags = [
        f.etag(Coding::Identity),
        f.etag(Coding::Br),
        f.etag(Coding::Gzip),
        Facts { ino: 43, ..f }.etag(Coding::Identity),
        Facts { len: 1, ..f }.etag(Coding::Identity),
        Facts {
            mtime_ns: f.mtime_ns + 1,
            ..f
        }
        .etag(Coding::Identity),
    ];
    let distinct: std::collections::HashSet<_> = tags.iter().collect();
    assert_eq!(distinct.len(), tags.len());
}

#[test]
fn if_none_match_gives_304_and_beats_if_modified_since() {
    let tag = etag();
    for inm in [
        tag.as_str(),
        "*",
        &format!("W/{tag}"),
        &format!("\"x\", {tag}"),
    ] {
        let r = decide(
            &req(&[("IF-NONE-MATCH", inm)]),
            false,
            &chosen(Coding::Identity),
            CC,
        );
        assert_eq!(r.status, 304, "{inm}");
        assert_eq!(r.body, Body::Empty);
        assert_eq!(get(&r, "etag"), Some(tag.clone()));
        assert!(get(&r, "content-length").is_none());
    }
    // A tag that does not match wins over a date that would.
    let r = decide(
        &req(&[
            ("IF-NONE-MATCH", "\"other\""),
            ("IF-MODIFIED-SINCE", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]),
        false,
        &chosen(Coding::Identity),
        CC,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn if_modified_since() {
    let c = chosen(Coding::Identity);
    let at = |d: &str| decide(&req(&[("IF-MODIFIED-SINCE", d)]), false, &c, CC).status;
    assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), 304);
    assert_eq!(at("Sunday, 06-Nov-94 08:49:38 GMT"), 304);
    assert_eq!(at("Sun Nov  6 08:49:36 1994"), 200);
    assert_eq!(at("not a date"), 200);
}

#[test]
fn preconditions() {
    let c = chosen(Coding::Identity);
    let status = |pairs: &[(&str, &str)]| decide(&req(pairs), false, &c, CC).status;
    assert_eq!(status(&[("IF-MATCH", "\"nope\"")]), 412);
    assert_eq!(status(&[("IF-MATCH", &format!("W/{}", etag()))]), 412);
    assert_eq!(status(&[("IF-MATCH", &etag())]), 200);
    assert_eq!(status(&[("IF-MATCH", "*")]), 200);
    assert_eq!(
        status(&[("IF-UNMODIFIED-SINCE", "Sun, 06 Nov 1994 08:49:36 GMT")]),
        412
    );
    assert_eq!(
        status(&[("IF-UNMODIFIED-SINCE", "Sun, 06 Nov 1994 08:49:37 GMT")]),
        200
    );
}

#[test]
fn ranges_and_if_range() {
    let c = chosen(Coding::Identity);
    let r = decide(&req(&[("RANGE", "bytes=10-19")]), false, &c, CC);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, Body::File { start: 10, len: 10 });
    assert_eq!(
        get(&r, "content-range").as_deref(),
        Some("bytes 10-19/1000")
    );
    assert_eq!(get(&r, "content-length").as_deref(), Some("10"));

    let r = decide(&req(&[("RANGE", "bytes=2000-")]), false, &c, CC);
    assert_eq!(r.status, 416);
    assert_eq!(get(&r, "content-range").as_deref(), Some("bytes */1000"));
    assert_eq!(r.body, Body::Text("Range Not Satisfiable\n"));

    let r = decide(&req(&[("RANGE", "bytes=0-1,4-5")]), false, &c, CC);
    assert_eq!(r.status, 200);

    let with_if_range = |v: &str| {
        decide(
            &req(&[("RANGE", "bytes=0-1"), ("IF-RANGE", v)]),
            false,
            &c,
            CC,
        )
        .status
    };
    assert_eq!(with_if_range(&etag()), 206);
    assert_eq!(with_if_range(&format!("W/{}", etag())), 200);
    assert_eq!(with_if_range("\"old\""), 200);
    assert_eq!(with_if_range("Sun, 06 Nov 1994 08:49:37 GMT"), 206);
    assert_eq!(with_if_range("Sun, 06 Nov 1994 08:49:38 GMT"), 200);
}

#[test]
fn an_encoded_representation() {
    let mut c = chosen(Coding::Br);
    c.varies = true;
    let r = decide(&[], false, &c, CC);
    assert_eq!(get(&r, "content-encoding").as_deref(), Some("br"));
    assert_eq!(get(&r, "vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(
        get(&r, "content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert!(get(&r, "etag").unwrap().ends_with("-br\""));
    let r = decide(&req(&[("IF-NONE-MATCH", &etag())]), false, &c, CC);
    assert_eq!(
        r.status, 200,
        "the identity tag does not validate the br body"
    );
}

#[test]
fn empty_file() {
    let mut c = chosen(Coding::Identity);
    c.facts.len = 0;
    let r = decide(&req(&[("RANGE", "bytes=0-")]), false, &c, CC);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, Body::Empty);
    assert_eq!(get(&r, "content-length").as_deref(), Some("0"));
}

#[test]
fn error_replies() {
    let r = Reply::method_not_allowed();
    assert_eq!(r.status, 405);
    assert_eq!(get(&r, "allow").as_deref(), Some("GET, HEAD"));
    assert_eq!(r.body_len(), "Method Not Allowed\n".len() as u64);
    assert_eq!(Reply::text(404, true, Vec::new()).body, Body::Empty);
    assert_eq!(cache_control(0), "no-cache");
    assert_eq!(cache_control(60), "public, max-age=60");
}
