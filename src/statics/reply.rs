//! The response to a request for a file, decided from the request's headers and the file's
//! metadata alone (sans I/O): validators (`ETag`, `Last-Modified`), conditional requests
//! (RFC 9110 13), one range, and the headers that describe the representation chosen.

use std::time::{SystemTime, UNIX_EPOCH};

use super::negotiate::Coding;
use super::ranges::{self, Wanted};

/// What the decision needs to know about the representation on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub len: u64,
    /// Modification time, nanoseconds since the epoch (may be negative before 1970).
    pub mtime_ns: i128,
    pub ino: u64,
}

impl Facts {
    /// Strong validator: a different size, modification time or inode is a different
    /// file; the encoding is part of it, so a `.br` and the file never share a tag.
    fn etag(&self, coding: Coding) -> String {
        let tag = match coding {
            Coding::Br => "-br",
            Coding::Gzip => "-gz",
            Coding::Identity => "",
        };
        format!(
            "\"{:x}-{:x}-{:x}{tag}\"",
            self.len, self.mtime_ns as u128 as u64, self.ino
        )
    }

    /// Whole seconds since the epoch, as `Last-Modified` carries them.
    fn modified_secs(&self) -> i64 {
        self.mtime_ns.div_euclid(1_000_000_000) as i64
    }
}

/// The representation chosen for a request.
#[derive(Debug, Clone)]
pub struct Chosen<'a> {
    pub coding: Coding,
    pub facts: Facts,
    /// The media type of the file's own name (a `.br` sibling is still a stylesheet).
    pub content_type: &'a str,
    /// Other representations exist: caches must key on `Accept-Encoding`.
    pub varies: bool,
}

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Nothing (HEAD, 304).
    Empty,
    /// Bytes of the chosen file.
    File { start: u64, len: u64 },
    /// A short text of our own (error statuses).
    Text(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// In the order they are written; `Server`, `Date` and `Connection` come from the
    /// writer.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Reply {
    /// A status with a short text body (GET) or its headers only (HEAD).
    pub fn text(status: u16, head_only: bool, extra: Vec<(&'static str, String)>) -> Reply {
        let text = match status {
            400 => "Bad Request\n",
            403 => "Forbidden\n",
            404 => "Not Found\n",
            405 => "Method Not Allowed\n",
            412 => "Precondition Failed\n",
            416 => "Range Not Satisfiable\n",
            _ => "Internal Server Error\n",
        };
        let mut headers = vec![
            h("Content-Type", "text/plain; charset=utf-8"),
            h("Content-Length", &text.len().to_string()),
        ];
        headers.extend(extra);
        Reply {
            status,
            headers,
            body: if head_only {
                Body::Empty
            } else {
                Body::Text(text)
            },
        }
    }

    /// 405 for anything but GET and HEAD.
    pub fn method_not_allowed() -> Reply {
        Reply::text(405, false, vec![h("Allow", "GET, HEAD")])
    }

    /// Body bytes this reply sends (what the access log's `%(b)s` shows).
    pub fn body_len(&self) -> u64 {
        match self.body {
            Body::Empty => 0,
            Body::File { len, .. } => len,
            Body::Text(t) => t.len() as u64,
        }
    }
}

fn h(name: &'static str, value: &str) -> (&'static str, String) {
    (name, value.to_string())
}

thread_local! {
    /// The last `Last-Modified` formatted on this thread: the same few files are asked
    /// for again and again.
    static LAST_MODIFIED: std::cell::RefCell<(i64, String)> =
        const { std::cell::RefCell::new((i64::MIN, String::new())) };
}

fn last_modified(secs: i64) -> String {
    LAST_MODIFIED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, ferrocorn_h1::http_date(secs.max(0)));
        }
        c.1.clone()
    })
}

/// The reason phrase written after a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        _ => "Internal Server Error",
    }
}

/// The first value of request header `upper` (an UPPER-cased name).
fn header<'r>(headers: &'r [(String, String)], upper: &str) -> Option<&'r str> {
    headers
        .iter()
        .find(|(n, _)| n == upper)
        .map(|(_, v)| v.as_str())
}

fn date(v: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(v.trim()).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// The opaque part of an entity tag and whether it is weak; None if it is not one.
fn entity_tag(v: &str) -> Option<(bool, &str)> {
    let (weak, rest) = match v.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then_some((weak, inner))
}

/// Whether a list of entity tags (or `*`) matches `etag`. `strong`: weak tags never match
/// (If-Match, If-Range); otherwise they compare by their opaque part (If-None-Match).
fn tag_matches(list: &str, etag: &str, strong: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let Some((_, ours)) = entity_tag(etag) else {
        return false;
    };
    list.split(',').any(|item| match entity_tag(item.trim()) {
        Some((weak, theirs)) => theirs == ours && !(strong && weak),
        None => false,
    })
}

/// Decide the answer to a GET (`head_only` false) or HEAD for `chosen`. `headers` are the
/// request's, UPPER-case names; `cache_control` the mount's header value.
pub fn decide(
    headers: &[(String, String)],
    head_only: bool,
    chosen: &Chosen<'_>,
    cache_control: &str,
) -> Reply {
    let facts = &chosen.facts;
    let etag = facts.etag(chosen.coding);
    let modified = facts.modified_secs();
    let validators = || {
        let mut v = vec![("ETag", etag.clone()), h("Cache-Control", cache_control)];
        if chosen.varies {
            v.push(h("Vary", "Accept-Encoding"));
        }
        v
    };
    // RFC 9110 13.2.2: If-Match, else If-Unmodified-Since; then If-None-Match, else
    // If-Modified-Since; then Range with If-Range.
    if let Some(list) = header(headers, "IF-MATCH") {
        if !tag_matches(list, &etag, true) {
            return Reply::text(412, head_only, Vec::new());
        }
    } else if let Some(since) = header(headers, "IF-UNMODIFIED-SINCE").and_then(date) {
        if modified > since {
            return Reply::text(412, head_only, Vec::new());
        }
    }
    let not_modified = match header(headers, "IF-NONE-MATCH") {
        Some(list) => tag_matches(list, &etag, false),
        None => header(headers, "IF-MODIFIED-SINCE")
            .and_then(date)
            .is_some_and(|since| modified <= since),
    };
    if not_modified {
        return Reply {
            status: 304,
            headers: validators(),
            body: Body::Empty,
        };
    }
    let mut wanted = Wanted::Whole;
    if !head_only {
        if let Some(range) = header(headers, "RANGE") {
            let current = match header(headers, "IF-RANGE").map(str::trim) {
                None => true,
                Some(v) if v.starts_with('"') || v.starts_with("W/") => tag_matches(v, &etag, true),
                // A date validates only if it is exactly the file's Last-Modified.
                Some(v) => date(v) == Some(modified),
            };
            if current {
                wanted = ranges::parse(range, facts.len);
            }
        }
    }
    let (status, start, len) = match wanted {
        Wanted::Whole => (200, 0, facts.len),
        Wanted::Part { start, len } => (206, start, len),
        Wanted::Unsatisfiable => {
            let extra = vec![h("Content-Range", &format!("bytes */{}", facts.len))];
            return Reply::text(416, head_only, extra);
        }
    };
    let mut headers = Vec::with_capacity(10);
    headers.push(h("Content-Type", chosen.content_type));
    headers.push(("Content-Length", len.to_string()));
    if status == 206 {
        let range = format!("bytes {}-{}/{}", start, start + len - 1, facts.len);
        headers.push(h("Content-Range", &range));
    }
    headers.push(("Last-Modified", last_modified(modified)));
    headers.extend(validators());
    headers.push(h("Accept-Ranges", "bytes"));
    if let Some(encoding) = chosen.coding.content_encoding() {
        headers.push(h("Content-Encoding", encoding));
    }
    let body = if head_only || len == 0 {
        Body::Empty
    } else {
        Body::File { start, len }
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Nanoseconds since the epoch of a file time (negative before 1970).
pub fn mtime_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The `Cache-Control` value for `static_max_age`.
pub fn cache_control(max_age: u64) -> String {
    if max_age == 0 {
        "no-cache".to_string()
    } else {
        format!("public, max-age={max_age}")
    }
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
