//! `Accept-Encoding` (RFC 9110 12.5.3): which of a file's representations, its precompressed
//! `.br` and `.gz` siblings or the file itself, a client takes, by q-value.

/// A representation of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// The sibling `NAME.br`.
    Br,
    /// The sibling `NAME.gz`.
    Gzip,
    /// The file itself.
    Identity,
}

impl Coding {
    /// The sibling's suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
            Coding::Identity => "",
        }
    }

    /// The `Content-Encoding` value (None for the file itself).
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Coding::Br => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }
}

/// The q-value of each coding in the `Accept-Encoding` values, in thousandths. A coding the
/// client does not name gets `*`'s, if given, else 0; identity stays acceptable unless it
/// (or `*` without it) is given q=0, below every coding the client named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub br: u16,
    pub gzip: u16,
    pub identity: u16,
}

impl Accepted {
    /// No `Accept-Encoding` at all: the file itself only (a client that says nothing may
    /// not decode anything).
    pub const IDENTITY_ONLY: Accepted = Accepted {
        br: 0,
        gzip: 0,
        identity: 1000,
    };

    /// Reads every `Accept-Encoding` value; None when the client sent none.
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> Option<Accepted> {
        let (mut br, mut gzip, mut identity, mut star) = (None, None, None, None);
        let mut any = false;
        for value in values {
            any = true;
            for item in value.split(',') {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or("").trim();
                if name.is_empty() {
                    continue;
                }
                let mut q = 1000;
                for param in parts {
                    if let Some((k, v)) = param.split_once('=') {
                        if k.trim().eq_ignore_ascii_case("q") {
                            q = qvalue(v.trim()).unwrap_or(0);
                        }
                    }
                }
                let slot = if name.eq_ignore_ascii_case("br") {
                    &mut br
                } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if name.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if name == "*" {
                    &mut star
                } else {
                    continue;
                };
                // Named twice: the higher q wins (a lenient reading of a malformed header).
                *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
            }
        }
        if !any {
            return None;
        }
        Some(Accepted {
            br: br.or(star).unwrap_or(0),
            gzip: gzip.or(star).unwrap_or(0),
            // Acceptable unless excluded, but preferred below any coding the client named.
            identity: identity.or(star).unwrap_or(1),
        })
    }

    /// The best of the representations `available` has (br, gzip), by q-value; on equal
    /// q-values br before gzip before the file itself, the smaller first. The file itself
    /// when nothing is acceptable (RFC 9110 allows ignoring the header rather than 406).
    pub fn choose(&self, has_br: bool, has_gzip: bool) -> Coding {
        let mut best = (self.identity, Coding::Identity);
        if has_gzip && self.gzip > 0 && self.gzip >= best.0 {
            best = (self.gzip, Coding::Gzip);
        }
        if has_br && self.br > 0 && self.br >= best.0 {
            best = (self.br, Coding::Br);
        }
        best.1
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths; None when
/// malformed (treated as 0, "not acceptable", the safe reading).
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Accepted {
        Accepted::parse(std::iter::once(v)).expect("a value")
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.25"), Some(250));
        assert_eq!(qvalue("0.001"), Some(1));
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue("0.1234"), None);
        assert_eq!(qvalue("2"), None);
        assert_eq!(qvalue("x"), None);
    }

    #[test]
    fn choice_follows_q_values_and_what_exists() {
        assert_eq!(parse("gzip, br").choose(true, true), Coding::Br);
        assert_eq!(parse("gzip, br").choose(false, true), Coding::Gzip);
        assert_eq!(parse("gzip, br").choose(false, false), Coding::Identity);
        assert_eq!(parse("br;q=0.5, gzip").choose(true, true), Coding::Gzip);
        assert_eq!(
            parse("br;q=0, gzip;q=0").choose(true, true),
            Coding::Identity
        );
        assert_eq!(
            parse("gzip;q=0.5, identity").choose(true, true),
            Coding::Identity
        );
        assert_eq!(parse("*").choose(true, true), Coding::Br);
        assert_eq!(
            parse("*;q=0.3, gzip;q=0.4").choose(true, true),
            Coding::Gzip
        );
        assert_eq!(parse("identity").choose(true, true), Coding::Identity);
        assert_eq!(parse("x-gzip").choose(true, true), Coding::Gzip);
        assert_eq!(parse("GZIP ; Q=0.9").choose(false, true), Coding::Gzip);
        assert_eq!(parse("deflate").choose(true, true), Coding::Identity);
        // identity refused and no sibling: the file all the same.
        assert_eq!(parse("identity;q=0").choose(false, false), Coding::Identity);
        assert_eq!(
            parse("identity;q=0, gzip").choose(false, true),
            Coding::Gzip
        );
        assert_eq!(parse("br;q=bogus, gzip").choose(true, true), Coding::Gzip);
        assert!(Accepted::parse(std::iter::empty()).is_none());
        assert_eq!(parse("identity").choose(true, true), Coding::Identity);
        assert_eq!(parse("").choose(true, true), Coding::Identity);
    }
}
