//! From a request's path to a file under a mount: percent-decoding each segment once,
//! matching the mount's prefix, and refusing every segment that could leave the directory
//! or name what is not served. The filesystem side (symlinks) is `fs.rs`'s.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What a request path is to one mount.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Not under this mount's prefix.
    Elsewhere,
    /// Under the prefix, relative to the mount's directory (empty: the directory itself).
    File(PathBuf),
    /// Under the prefix and never served: a `..` or `.` segment, an encoded `/`, a
    /// backslash or a NUL (400).
    Malformed,
    /// Under the prefix, a hidden name, or a path ending in `/` (a directory) (404).
    Hidden,
}

/// Python's `unquote_to_bytes` for one segment: a `%XX` with two hex digits becomes its
/// byte, anything else stays as it is. Decoded once: `%252e` stays the three bytes `%2e`.
fn decode(raw: &str) -> Cow<'_, [u8]> {
    let b = raw.as_bytes();
    if !b.contains(&b'%') {
        return Cow::Borrowed(b);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Where `raw_path` (as received, before decoding) leads under a mount whose prefix is
/// `prefix` (`/` and decoded segments, no trailing slash). Empty segments (`a//b`) are
/// skipped. A name starting with `.` is hidden, except `.well-known` (RFC 8615), so a
/// mounted checkout does not serve its `.git` or `.env`.
///
/// `decoded`: the path was already percent-decoded by a gateway (uWSGI's PATH_INFO, held
/// as latin-1 text), so it is taken byte for byte and not decoded again. A path that ends
/// in `/` names a directory, which is never served.
pub fn resolve(prefix: &str, raw_path: &str, decoded: bool) -> Resolution {
    let Some(rest) = raw_path.strip_prefix('/') else {
        return Resolution::Elsewhere;
    };
    let bytes = |seg: &'_ str| -> Vec<u8> {
        if decoded {
            seg.chars()
                .map(|c| u8::try_from(c).unwrap_or(b'?'))
                .collect()
        } else {
            decode(seg).into_owned()
        }
    };
    let mut segments = rest.split('/');
    for want in prefix[1..].split('/') {
        match segments.next() {
            Some(seg) if bytes(seg) == want.as_bytes() => {}
            _ => return Resolution::Elsewhere,
        }
    }
    let mut rel = PathBuf::new();
    let mut hidden = false;
    let mut trailing_slash = false;
    for seg in segments {
        let name = bytes(seg);
        trailing_slash = name.is_empty();
        if name.is_empty() {
            continue;
        }
        if name.iter().any(|&c| matches!(c, b'/' | b'\\' | 0)) || *name == *b"." || *name == *b".."
        {
            return Resolution::Malformed;
        }
        hidden |= name[0] == b'.' && *name != *b".well-known";
        rel.push(OsStr::from_bytes(&name));
    }
    if hidden || (trailing_slash && !rel.as_os_str().is_empty()) {
        Resolution::Hidden
    } else {
        Resolution::File(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(prefix: &str, raw_path: &str) -> Resolution {
        super::resolve(prefix, raw_path, false)
    }

    #[test]
    fn a_gateway_s_decoded_path_is_not_decoded_again() {
        assert_eq!(
            super::resolve("/static", "/static/100%41.txt", true),
            Resolution::File(PathBuf::from("100%41.txt"))
        );
        assert_eq!(
            super::resolve("/static", "/static/caf\u{e9}.txt", true),
            Resolution::File(PathBuf::from(OsStr::from_bytes(b"caf\xe9.txt")))
        );
        assert_eq!(
            super::resolve("/static", "/static/../x", true),
            Resolution::Malformed
        );
    }

    #[test]
    fn a_file_path_ending_in_a_slash_is_not_served() {
        assert_eq!(resolve("/static", "/static/a.txt/"), Resolution::Hidden);
    }

    fn file(s: &str) -> Resolution {
        Resolution::File(PathBuf::from(s))
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        assert_eq!(resolve("/static", "/static/a.txt"), file("a.txt"));
        assert_eq!(resolve("/static", "/static"), file(""));
        assert_eq!(resolve("/static", "/static/"), file(""));
        assert_eq!(resolve("/static", "/staticx/a.txt"), Resolution::Elsewhere);
        assert_eq!(resolve("/static", "/"), Resolution::Elsewhere);
        assert_eq!(resolve("/static", "//etc/passwd"), Resolution::Elsewhere);
        assert_eq!(resolve("/static", "*"), Resolution::Elsewhere);
        assert_eq!(resolve("/a/b", "/a/b/c/d"), file("c/d"));
        assert_eq!(resolve("/a/b", "/a/c"), Resolution::Elsewhere);
        // The prefix is compared decoded.
        assert_eq!(resolve("/static", "/st%61tic/a"), file("a"));
    }

    #[test]
    fn segments_are_decoded_once() {
        assert_eq!(resolve("/s", "/s/a%20b.txt"), file("a b.txt"));
        assert_eq!(resolve("/s", "/s/%252e%252e/x"), file("%2e%2e/x"));
        assert_eq!(resolve("/s", "/s/100%"), file("100%"));
        assert_eq!(resolve("/s", "/s/%zz%4"), file("%zz%4"));
        assert_eq!(resolve("/s", "/s/a//b"), file("a/b"));
        assert_eq!(resolve("/s", "/s//etc/passwd"), file("etc/passwd"));
    }

    #[test]
    fn traversal_and_odd_bytes_are_malformed() {
        for path in [
            "/s/../secret",
            "/s/%2e%2e/secret",
            "/s/%2E%2E/secret",
            "/s/..%2fsecret",
            "/s/%2e%2e%2fsecret",
            "/s/sub/..%5c..%5csecret",
            "/s/a\\b",
            "/s/a%00.txt",
            "/s/./a",
            "/s/%2e/a",
            "/s/a/..",
            "/s/a%2Fb",
        ] {
            assert_eq!(resolve("/s", path), Resolution::Malformed, "{path}");
        }
    }

    #[test]
    fn hidden_names_are_not_served() {
        assert_eq!(resolve("/s", "/s/.env"), Resolution::Hidden);
        assert_eq!(resolve("/s", "/s/.git/config"), Resolution::Hidden);
        assert_eq!(resolve("/s", "/s/%2egit/config"), Resolution::Hidden);
        assert_eq!(
            resolve("/s", "/s/.well-known/security.txt"),
            file(".well-known/security.txt")
        );
        assert_eq!(resolve("/s", "/s/a.b/c"), file("a.b/c"));
    }
}
