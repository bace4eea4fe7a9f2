//! Static-file mounts (`static_mount`): requests under a mount's URL prefix are answered
//! from its directory by the worker's I/O side, before anything else happens to them (no
//! hooks, no environ or scope, no GIL). Every worker type serves through this module.
//!
//! Owns: matching a request path to a mount and resolving it safely (`path`: decoding
//! once, refusing `..`, `.`, encoded slashes, backslashes, NUL and hidden names; `fs`: the
//! kernel keeps every open under the directory, symlinks included), choosing the
//! representation (`negotiate`: precompressed `.br`/`.gz` siblings by `Accept-Encoding`),
//! the response (`reply`: validators, conditional requests, one range, cache headers,
//! sans I/O) and its head bytes. Must not: touch a socket (each worker writes the reply
//! through its own transport, sendfile included), call Python, or log: the worker writes
//! the access line and counts the request.

mod cache;
mod fs;
mod negotiate;
mod path;
mod ranges;
mod reply;

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use ferrocorn_h1::DateCache;

use crate::config::StaticSettings;
pub use fs::Refusal;
use negotiate::{Accepted, Coding};
use path::Resolution;
pub use reply::{reason, Body, Reply};

thread_local! {
    static DATE: RefCell<DateCache> = RefCell::new(DateCache::new());
}

/// The mounts of one worker, their directories open.
#[derive(Debug)]
pub struct Statics {
    mounts: Vec<Mount>,
    cache_control: String,
}

#[derive(Debug)]
struct Mount {
    prefix: String,
    root: fs::Root,
}

/// A request path under a mount.
#[derive(Debug)]
pub struct Target<'s> {
    mount: &'s Mount,
    resolution: Resolution,
}

/// A decided response: what to write, and the file its body comes from.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub file: Option<Arc<File>>,
}

impl Statics {
    /// Open every mount's directory; None when nothing is mounted. An error names the
    /// directory (it was there at load and has gone since).
    pub fn open(settings: &StaticSettings) -> io::Result<Option<Statics>> {
        if settings.mounts.is_empty() {
            return Ok(None);
        }
        let mut mounts = Vec::with_capacity(settings.mounts.len());
        for m in &settings.mounts {
            let root = fs::Root::open(&m.root).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("static_mount {}: {}: {e}", m.prefix, m.root.display()),
                )
            })?;
            mounts.push(Mount {
                prefix: m.prefix.clone(),
                root,
            });
        }
        Ok(Some(Statics {
            mounts,
            cache_control: reply::cache_control(settings.max_age),
        }))
    }

    /// The mount `raw_path` (as received) falls under, longest prefix first; None sends
    /// the request to the app.
    pub fn lookup(&self, raw_path: &str, decoded: bool) -> Option<Target<'_>> {
        self.mounts.iter().find_map(
            |mount| match path::resolve(&mount.prefix, raw_path, decoded) {
                Resolution::Elsewhere => None,
                resolution => Some(Target { mount, resolution }),
            },
        )
    }

    /// Decide the response to `method` with request `headers` (UPPER-case names) for
    /// `target`, opening what it needs.
    pub fn answer(&self, target: Target<'_>, method: &str, headers: &[(String, String)]) -> Answer {
        let head_only = match method {
            "GET" => false,
            "HEAD" => true,
            _ => return Answer::text(Reply::method_not_allowed()),
        };
        let rel = match target.resolution {
            Resolution::File(rel) => rel,
            Resolution::Malformed => return Answer::text(Reply::text(400, head_only, vec![])),
            Resolution::Hidden | Resolution::Elsewhere => {
                return Answer::text(Reply::text(404, head_only, vec![]))
            }
        };
        let root = &target.mount.root;
        let opened = match root.open_cached(&rel) {
            Ok(opened) => opened,
            Err(Refusal::NotFound) => return Answer::text(Reply::text(404, head_only, vec![])),
            Err(Refusal::Forbidden) => return Answer::text(Reply::text(403, head_only, vec![])),
            Err(Refusal::Unavailable(e)) => {
                crate::telemetry::error_log::error(&format!(
                    "static files: cannot open {}: {e}",
                    rel.display()
                ));
                return Answer::text(Reply::text(503, head_only, vec![]));
            }
        };
        let accepted = Accepted::parse(
            headers
                .iter()
                .filter(|(n, _)| n == "ACCEPT-ENCODING")
                .map(|(_, v)| v.as_str()),
        )
        .unwrap_or(Accepted::IDENTITY_ONLY);
        let sibling = |coding: Coding| {
            let mut name = rel.clone().into_os_string();
            name.push(coding.suffix());
            root.open_cached(&PathBuf::from(name)).ok()
        };
        // Siblings are looked for whatever the client accepts: a response that has
        // compressed siblings varies by Accept-Encoding even when it is the plain one.
        let (br, gz) = (sibling(Coding::Br), sibling(Coding::Gzip));
        let varies = br.is_some() || gz.is_some();
        let coding = accepted.choose(br.is_some(), gz.is_some());
        let chosen_file = match coding {
            Coding::Br => br.expect("chosen only when present"),
            Coding::Gzip => gz.expect("chosen only when present"),
            Coding::Identity => opened,
        };
        let content_type = content_type(&rel);
        let chosen = reply::Chosen {
            coding,
            facts: chosen_file.facts,
            content_type: &content_type,
            varies,
        };
        let reply = reply::decide(headers, head_only, &chosen, &self.cache_control);
        let file = matches!(reply.body, Body::File { .. }).then_some(chosen_file.file);
        Answer { reply, file }
    }
}

impl Answer {
    fn text(reply: Reply) -> Answer {
        Answer { reply, file: None }
    }

    /// The reply's headers as the access log takes them.
    pub fn log_headers(&self) -> Vec<(String, String)> {
        self.reply
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    /// The status line's text, `200 OK`.
    pub fn status_line(&self) -> String {
        format!("{} {}", self.reply.status, reason(self.reply.status))
    }

    /// The response head: status line, `Server`, `Date`, `Connection` (`close`, or
    /// `keep-alive`), then the reply's headers, in the order the other responses use.
    /// Every value here is ASCII (made by this module), so it is copied as it is.
    pub fn head(&self, version: (u8, u8), close: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        out.extend_from_slice(match version {
            (1, 0) => b"HTTP/1.0 ",
            _ => b"HTTP/1.1 ",
        });
        out.extend_from_slice(self.reply.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason(self.reply.status).as_bytes());
        out.extend_from_slice(b"\r\nServer: ferrocorn\r\nDate: ");
        DATE.with(|d| out.extend_from_slice(d.borrow_mut().get().as_bytes()));
        out.extend_from_slice(if close {
            b"\r\nConnection: close\r\n"
        } else {
            b"\r\nConnection: keep-alive\r\n"
        });
        for (name, value) in &self.reply.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// The media type of a file from its name; text gets `charset=utf-8`, which is what text
/// files on a web server are today, and unknown names are `application/octet-stream`.
fn content_type(rel: &std::path::Path) -> Cow<'static, str> {
    let Some(mime) = mime_guess::from_path(rel).first_raw() else {
        return Cow::Borrowed("application/octet-stream");
    };
    // The common textual types without an allocation per request.
    let known = match mime {
        "text/plain" => "text/plain; charset=utf-8",
        "text/html" => "text/html; charset=utf-8",
        "text/css" => "text/css; charset=utf-8",
        "text/javascript" => "text/javascript; charset=utf-8",
        "application/javascript" => "application/javascript; charset=utf-8",
        "application/json" => "application/json; charset=utf-8",
        "application/xml" => "application/xml; charset=utf-8",
        "image/svg+xml" => "image/svg+xml; charset=utf-8",
        other if other.starts_with("text/") => {
            return Cow::Owned(format!("{other}; charset=utf-8"))
        }
        other => other,
    };
    Cow::Borrowed(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ct = |n: &str| content_type(std::path::Path::new(n));
        assert_eq!(ct("a.txt"), "text/plain; charset=utf-8");
        assert_eq!(ct("a.css"), "text/css; charset=utf-8");
        assert_eq!(ct("a.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a.json"), "application/json; charset=utf-8");
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a.unknownext"), "application/octet-stream");
        assert_eq!(ct("noext"), "application/octet-stream");
    }
}
