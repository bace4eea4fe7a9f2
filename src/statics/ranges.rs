//! `Range: bytes=...` (RFC 9110 14.2): one range is served as 206, several as the whole
//! file (200; multipart/byteranges is not worth its cost for static files), and a range
//! that starts past the end as 416.

/// What a `Range` value asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// No usable range (absent, malformed, several, another unit): the whole file, 200.
    Whole,
    /// Bytes `start..start+len`, 206.
    Part { start: u64, len: u64 },
    /// Nothing of it exists: 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// One `Range` value against a representation of `total` bytes. An empty representation
/// has no byte to send, so any range of it is served as the whole (empty) body.
pub fn parse(value: &str, total: u64) -> Wanted {
    let Some((unit, set)) = value.split_once('=') else {
        return Wanted::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') || total == 0 {
        return Wanted::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // A position too large for u64 is past any end.
        Some(s.parse().unwrap_or(u64::MAX))
    };
    if first.is_empty() {
        // `-N`: the last N bytes.
        return match number(last) {
            None => Wanted::Whole,
            Some(0) => Wanted::Unsatisfiable,
            Some(n) => {
                let len = n.min(total);
                Wanted::Part {
                    start: total - len,
                    len,
                }
            }
        };
    }
    let Some(start) = number(first) else {
        return Wanted::Whole;
    };
    let end = if last.is_empty() {
        total - 1
    } else {
        match number(last) {
            Some(end) if end >= start => end.min(total - 1),
            // `5-3` is invalid: the header is ignored.
            _ => return Wanted::Whole,
        }
    };
    if start >= total {
        return Wanted::Unsatisfiable;
    }
    Wanted::Part {
        start,
        len: end - start + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(
            parse("bytes=0-99", 1000),
            Wanted::Part { start: 0, len: 100 }
        );
        assert_eq!(
            parse("bytes=990-", 1000),
            Wanted::Part {
                start: 990,
                len: 10
            }
        );
        assert_eq!(
            parse("bytes=-10", 1000),
            Wanted::Part {
                start: 990,
                len: 10
            }
        );
        assert_eq!(
            parse("bytes=-5000", 1000),
            Wanted::Part {
                start: 0,
                len: 1000
            }
        );
        assert_eq!(
            parse("bytes=900-5000", 1000),
            Wanted::Part {
                start: 900,
                len: 100
            }
        );
        assert_eq!(
            parse("Bytes = 1-1", 1000),
            Wanted::Part { start: 1, len: 1 }
        );
        assert_eq!(
            parse("bytes=999-999", 1000),
            Wanted::Part { start: 999, len: 1 }
        );
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(parse("bytes=1000-", 1000), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=5000-6000", 1000), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Wanted::Unsatisfiable);
        assert_eq!(
            parse("bytes=99999999999999999999999-", 1000),
            Wanted::Unsatisfiable
        );
    }

    #[test]
    fn everything_else_is_the_whole_file() {
        for v in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-3",
            "bytes=a-b",
            "bytes=-",
            "bytes=1",
            "bytes 0-1",
            "bytes=-1-2",
            "bytes=+1-2",
        ] {
            assert_eq!(parse(v, 1000), Wanted::Whole, "{v}");
        }
        assert_eq!(parse("bytes=0-", 0), Wanted::Whole);
    }
}
