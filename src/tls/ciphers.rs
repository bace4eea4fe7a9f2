//! Gunicorn's `ciphers` setting: an OpenSSL cipher list (what Python's
//! `SSLContext.set_ciphers` takes) mapped onto the TLS 1.2 suites rustls's ring provider
//! offers, and OpenSSL's names for the suites we negotiate.
//!
//! Grammar and ordering follow OpenSSL 3 as `openssl ciphers -s -tls1_2` shows them,
//! restricted to our six suites; as in OpenSSL, the list never governs TLS 1.3.
//!
//! Owns: the cipher-list grammar and the suite name table. Must not: read settings, build a
//! rustls config or choose the TLS 1.3 suites (the caller does all three).

use rustls::crypto::ring::cipher_suite::*;
use rustls::{CipherSuite, SupportedCipherSuite};

/// In OpenSSL 3's default preference order: bare aliases append suites in this order, and
/// bit `i` of a `Mask` stands for `TLS12[i]`.
static TLS12: [&SupportedCipherSuite; 6] = [
    &TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    &TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    &TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    &TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    &TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    &TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

static TLS13: [&SupportedCipherSuite; 3] = [
    &TLS13_AES_256_GCM_SHA384,
    &TLS13_CHACHA20_POLY1305_SHA256,
    &TLS13_AES_128_GCM_SHA256,
];

/// OpenSSL's name and secret bits for each of `TLS12`, then each of `TLS13`.
static NAMES: [(&str, u32); 9] = [
    ("ECDHE-ECDSA-AES256-GCM-SHA384", 256),
    ("ECDHE-RSA-AES256-GCM-SHA384", 256),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", 256),
    ("ECDHE-RSA-CHACHA20-POLY1305", 256),
    ("ECDHE-ECDSA-AES128-GCM-SHA256", 128),
    ("ECDHE-RSA-AES128-GCM-SHA256", 128),
    ("TLS_AES_256_GCM_SHA384", 256),
    ("TLS_CHACHA20_POLY1305_SHA256", 256),
    ("TLS_AES_128_GCM_SHA256", 128),
];

type Mask = u8;
const ALL: Mask = 0b11_1111;
const AES: Mask = 0b11_0011;

/// Every alias Debian's OpenSSL 3 knows (found by trying all of libssl's words against
/// `openssl ciphers`), with the suites it selects and its strength class. OpenSSL intersects
/// classes bitwise, so `HIGH+FIPS` selects nothing though each alone selects our AES suites.
/// Other words, unsupported suites' names included, act as unknown ones: see `take_chain`
/// for where that differs. Not reproduced: OpenSSL forgetting `COMPLEMENTOFDEFAULT` when a
/// strength word (HIGH, a suite name) follows it in a chain.
static ALIASES: [(&str, Mask, u8); 12] = [
    ("ALL TLSv1.2 ECDH ECDHE EECDH kECDHE kEECDH", ALL, 0),
    ("HIGH", ALL, 1),
    ("FIPS", AES, 2),
    ("MEDIUM", 0, 4),
    ("LOW", 0, 8),
    ("AES AESGCM", AES, 0),
    ("AES256", 0b00_0011, 0),
    ("CHACHA20", 0b00_1100, 0),
    ("AES128", 0b11_0000, 0),
    ("aECDSA ECDSA", 0b01_0101, 0),
    ("aRSA", 0b10_1010, 0),
    (
        "3DES ADH aDSS AECDH AESCCM AESCCM8 aNULL aPSK ARIA ARIA128 ARIA256 ARIAGCM aSRP \
         CAMELLIA CAMELLIA128 CAMELLIA256 CBC COMPLEMENTOFALL COMPLEMENTOFDEFAULT DH DHE DSS \
         EDH eNULL kDHE kDHEPSK kECDHEPSK kEDH kPSK kRSA kRSAPSK kSRP MD5 NULL PSK RSA SHA \
         SHA1 SHA256 SHA384 SRP SSLv3 TLSv1 TLSv1.0",
        0,
        0,
    ),
];

/// OpenSSL's name and secret bits for a suite, as Python's `SSLSocket.cipher()` reports them.
/// None for a suite rustls's ring provider does not offer.
pub fn openssl_name(suite: CipherSuite) -> Option<(&'static str, u32)> {
    let i = TLS12
        .iter()
        .chain(&TLS13)
        .position(|s| s.suite() == suite)?;
    Some(NAMES[i])
}

/// The TLS 1.2 suites an OpenSSL cipher string selects, in the order OpenSSL would prefer
/// them. Err says in plain words why the string is malformed or selects nothing we offer.
pub fn select_tls12(spec: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let b = spec.as_bytes();
    if b.iter().all(|&c| is_sep(c)) {
        return Err("the cipher list is empty".to_string());
    }
    // OpenSSL swaps the whole string for a fixed one, and Suite B also restricts curves and
    // signature algorithms, which a suite list cannot express: refuse rather than half-honour.
    if spec.starts_with("SUITEB128") || spec.starts_with("SUITEB192") {
        return Err(format!(
            "{spec:?} asks for Suite B mode, which ferrocorn does not support; name the \
             suites instead (e.g. \"ECDHE-ECDSA-AES128-GCM-SHA256\")"
        ));
    }
    let mut list = List((0..TLS12.len()).map(|i| (i, false)).collect());
    let mut level = 0;
    let mut i = 0;
    // Only a leading DEFAULT is OpenSSL's built-in list (which holds all six); anywhere
    // else it is an unknown word.
    if let Some(rest) = spec.strip_prefix("DEFAULT") {
        list.apply(b'\0', ALL);
        i = 7 + usize::from(rest.starts_with(':'));
    }
    while i < b.len() {
        let op = b[i];
        if is_sep(op) {
            i += 1;
        } else if op == b'@' {
            i += 1;
            let word = take_word(spec, &mut i)?;
            if word == "STRENGTH" {
                list.by_strength();
            } else if let [d @ b'0'..=b'5'] =
                word.strip_prefix("SECLEVEL=").unwrap_or("").as_bytes()
            {
                level = d - b'0';
            } else {
                return Err(format!(
                    "{spec:?} is not a valid OpenSSL cipher list: unknown command \"@{word}\" \
                     (there are @STRENGTH and @SECLEVEL=0 to 5)"
                ));
            }
            skip_element(b, &mut i);
        } else {
            i += usize::from(matches!(op, b'-' | b'+' | b'!'));
            match take_chain(spec, &mut i)? {
                // A matched element needs no separator: OpenSSL reads "AES256!aRSA" as two.
                Some(mask) => list.apply(op, mask),
                None => skip_element(b, &mut i),
            }
        }
    }
    let chosen: Vec<usize> = list.0.iter().filter(|e| e.1).map(|e| e.0).collect();
    if chosen.is_empty() {
        return Err(format!(
            "{spec:?} selects no cipher suite ferrocorn can offer (it supports ECDHE with \
             AES-GCM or ChaCha20-Poly1305 for TLS 1.2; TLS 1.3 suites are always on)"
        ));
    }
    // OpenSSL keeps weaker suites in the list at levels 4 and 5 (192 and 256 bits of
    // security) but will not negotiate them, so `openssl ciphers -s` leaves them out.
    let min_bits = [0, 0, 0, 0, 192, 256][usize::from(level)];
    let strong_enough = |&&i: &&usize| NAMES[i].1 >= min_bits;
    let out: Vec<_> = chosen
        .iter()
        .filter(strong_enough)
        .map(|&i| *TLS12[i])
        .collect();
    if out.is_empty() {
        return Err(format!(
            "{spec:?} selects only cipher suites that @SECLEVEL={level} rules out (it needs \
             {min_bits}-bit ciphers such as AES256 or CHACHA20)"
        ));
    }
    Ok(out)
}

/// Reads `word+word+...` and returns the suites all its words select, or None when OpenSSL
/// abandons the element (an unknown word, or words that exclude each other) and skips the
/// rest of it up to the next separator, garbage included. OpenSSL decides "exclude" per
/// attribute class; a chain that selects none of ours is our stand-in, which differs only
/// for elements glued without a separator or followed by garbage.
fn take_chain(spec: &str, i: &mut usize) -> Result<Option<Mask>, String> {
    let (mut mask, mut class): (Option<Mask>, u8) = (None, 0);
    loop {
        let word = take_word(spec, i)?;
        let Some((m, c)) = lookup(word) else {
            return Ok(None);
        };
        let emptied = mask.is_some_and(|k| k & m == 0);
        if emptied || (class != 0 && c != 0 && class & c == 0) {
            return Ok(None);
        }
        mask = Some(mask.map_or(m, |k| k & m));
        if c != 0 {
            class = if class == 0 { c } else { class & c };
        }
        if spec.as_bytes().get(*i) != Some(&b'+') {
            return Ok(mask);
        }
        *i += 1;
    }
}

/// OpenSSL names are case-sensitive; None for a word OpenSSL ignores.
fn lookup(word: &str) -> Option<(Mask, u8)> {
    let mut aliases = ALIASES.iter();
    let alias = aliases.find(|(names, ..)| names.split(' ').any(|n| n == word));
    alias.map(|&(_, m, c)| (m, c)).or_else(|| {
        let i = NAMES[..TLS12.len()].iter().position(|n| n.0 == word)?;
        Some((1 << i, 0))
    })
}

fn is_sep(c: u8) -> bool {
    matches!(c, b':' | b',' | b' ' | b';')
}

/// The word at `i`, which must not be empty: OpenSSL rejects the whole list ("invalid
/// command") at a character that can neither separate elements nor start a word.
fn take_word<'a>(spec: &'a str, i: &mut usize) -> Result<&'a str, String> {
    let start = *i;
    let b = spec.as_bytes();
    while *i < b.len() && (b[*i].is_ascii_alphanumeric() || matches!(b[*i], b'-' | b'.' | b'=')) {
        *i += 1;
    }
    if *i > start {
        // Word bytes are ASCII, so both ends are char boundaries.
        return Ok(&spec[start..*i]);
    }
    let at = match spec[*i..].chars().next() {
        None => "it ends where a cipher name or alias should follow".to_string(),
        Some(c) => format!(
            "{c:?} (character {}) cannot start a cipher name or alias",
            spec[..*i].chars().count() + 1
        ),
    };
    Err(format!("{spec:?} is not a valid OpenSSL cipher list: {at}"))
}

fn skip_element(b: &[u8], i: &mut usize) {
    while *i < b.len() && !is_sep(b[*i]) {
        *i += 1;
    }
}

/// OpenSSL's working list: every suite not yet killed, selected (`true`) or not, in order.
/// An unselected suite's place matters: a later bare alias re-adds suites in list order.
struct List(Vec<(usize, bool)>);

impl List {
    /// `op` is the element's first byte: `-` deselects and moves to the front (so a later
    /// alias re-adds those first), `+` moves selected ones to the end, `!` removes for good,
    /// anything else appends the unselected ones.
    fn apply(&mut self, op: u8, mask: Mask) {
        let hit = |i: usize| mask & (1 << i) != 0;
        match op {
            b'-' => {
                let mut moved = self.pull(|i, on| on && hit(i));
                moved.iter_mut().for_each(|e| e.1 = false);
                moved.append(&mut self.0);
                self.0 = moved;
            }
            b'+' => {
                let moved = self.pull(|i, on| on && hit(i));
                self.0.extend(moved);
            }
            b'!' => drop(self.pull(|i, _| hit(i))),
            _ => {
                let added = self.pull(|i, on| !on && hit(i));
                self.0.extend(added.into_iter().map(|(i, _)| (i, true)));
            }
        }
    }

    /// Removes the entries `pred` picks and returns them; both sides keep their order.
    fn pull(&mut self, pred: impl Fn(usize, bool) -> bool) -> Vec<(usize, bool)> {
        let (picked, kept) = self.0.iter().partition(|&&(i, on)| pred(i, on));
        self.0 = kept;
        picked
    }

    /// Stable sort by secret bits, strongest first. OpenSSL moves only selected suites,
    /// so the unselected ones end up ahead of them all.
    fn by_strength(&mut self) {
        let key =
            |&(i, on): &(usize, bool)| (on, std::cmp::Reverse(if on { NAMES[i].1 } else { 0 }));
        self.0.sort_by_key(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each expectation is `openssl ciphers -s -tls1_2 '<spec>'` (OpenSSL 3.0.19) filtered
    /// to our six suites, abbreviated: E/R for ECDSA/RSA, then 256 or 128 (AES-GCM) or C.
    const CASES: &[&str] = &[
        "HIGH:!aNULL => E256 R256 EC RC E128 R128",
        "DEFAULT => E256 R256 EC RC E128 R128",
        "ECDHE+AESGCM => E256 R256 E128 R128",
        "ECDHE+AESGCM:ECDHE+CHACHA20 => E256 R256 E128 R128 EC RC",
        "ECDHE-RSA-AES128-GCM-SHA256 => R128",
        "AES256 => E256 R256",
        "FIPS => E256 R256 E128 R128",
        "HIGH+FIPS:aRSA => R256 RC R128",
        "!ECDSA:HIGH => R256 RC R128",
        "DEFAULT:!ECDSA => R256 RC R128",
        "HIGH:-AES256:+CHACHA20 => E128 R128 EC RC",
        "ECDHE+AES128:ECDHE+AES256:@STRENGTH => E256 R256 E128 R128",
        "HIGH:-ECDSA:ECDSA => R256 RC R128 E256 EC E128",
        "HIGH:!ECDSA:ECDSA => R256 RC R128",
        "aRSA+AES128:-ALL:AES256:ALL => E256 R256 R128 EC RC E128",
        "CHACHA20:AES128:@STRENGTH:ALL => EC RC E128 R128 E256 R256",
        "AES128:-AES128:@STRENGTH:ALL => E128 R128 E256 R256 EC RC",
        "ALL:+aRSA:+AES128 => E256 EC R256 RC E128 R128",
        "ALL:-ECDSA+AES256:+ECDSA => R256 RC R128 EC E128",
        "DEFAULT+aRSA => E256 EC E128 R256 RC R128",
        "HIGH:!ECDSA+AES128 => E256 R256 EC RC R128",
        "aRSA:AES256!CHACHA20:ECDSA => R256 R128 E256 E128",
        "ALL:MEDIUM!AES => EC RC",
        "ALL:HIGH+FIPS!AES:FOO!AES => E256 R256 EC RC E128 R128",
        "HIGH, !ECDSA;+AES128 aRSA => R256 RC R128",
        "HIGH:foo_bar:TLS_AES_128_GCM_SHA256:!aRSA+X$ => E256 R256 EC RC E128 R128",
        "HIGH:@STRENGTH+$$:@SECLEVEL=3 => E256 R256 EC RC E128 R128",
        "kRSA:DEFAULT:AES128-SHA:ECDSA => E256 EC E128",
        "HIGH:@SECLEVEL=5 => E256 R256 EC RC",
        "HIGH:@SECLEVEL=4:@SECLEVEL=1 => E256 R256 EC RC E128 R128",
    ];

    fn short(suite: &SupportedCipherSuite) -> String {
        let (name, _) = openssl_name(suite.suite()).unwrap();
        let kind = if name.contains("ECDSA") { "E" } else { "R" };
        let cipher = ["AES256", "AES128"].into_iter().find(|c| name.contains(c));
        format!("{kind}{}", cipher.map_or("C", |c| &c[3..]))
    }

    #[test]
    fn matches_openssl_order() {
        for case in CASES {
            let (spec, want) = case.split_once(" => ").unwrap();
            let got = select_tls12(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            let got: Vec<String> = got.iter().map(short).collect();
            assert_eq!(got.join(" "), want, "{spec}");
        }
    }

    /// OpenSSL accepts each of these but selects none of our suites (or nothing at all).
    #[test]
    fn selects_nothing_we_offer() {
        let specs = "AES128-SHA:DES-CBC3-SHA|kRSA|RSA|SHA256:SHA384|AEAD|MEDIUM:LOW:DHE:aNULL|\
            TLS_AES_128_GCM_SHA256|DHE-RSA-AES256-GCM-SHA384|high:ecdhe-rsa-aes128-gcm-sha256|\
            +HIGH|:DEFAULT|AES128+AES256|@STRENGTH";
        for spec in specs.split('|') {
            let err = select_tls12(spec).unwrap_err();
            assert!(
                err.contains("selects no cipher suite ferrocorn can"),
                "{spec}: {err}"
            );
        }
        assert_eq!(
            select_tls12("AES128-SHA:DES-CBC3-SHA").unwrap_err(),
            "\"AES128-SHA:DES-CBC3-SHA\" selects no cipher suite ferrocorn can offer (it \
             supports ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2; TLS 1.3 suites \
             are always on)"
        );
    }

    /// OpenSSL rejects each of these with "invalid command".
    #[test]
    fn rejects_malformed_lists() {
        let specs = "HIGH:!|HIGH:+|HIGH:aRSA+|HIGH:! ECDSA|HIGH:$$|AES256_X|kRSA_X|\
            HIGH:+ECDSA++AES|!!HIGH|HIGH:@FOO|HIGH:@strength|HIGH:@STRENGTHX|HIGH:@SECLEVEL=6|\
            HIGH:@SECLEVEL=04|HIGH:+@STRENGTH|HIGH\t!ECDSA|HIGH:é";
        for spec in specs.split('|') {
            let err = select_tls12(spec).unwrap_err();
            assert!(
                err.contains("is not a valid OpenSSL cipher list"),
                "{spec}: {err}"
            );
        }
        assert_eq!(
            select_tls12("HIGH:! ECDSA").unwrap_err(),
            "\"HIGH:! ECDSA\" is not a valid OpenSSL cipher list: ' ' (character 7) cannot \
             start a cipher name or alias"
        );
    }

    #[test]
    fn empty_suite_b_and_seclevel_errors() {
        for spec in ["", ":", " , ;"] {
            assert_eq!(select_tls12(spec).unwrap_err(), "the cipher list is empty");
        }
        let err = |spec| select_tls12(spec).unwrap_err();
        assert!(err("SUITEB128:aRSA").contains("Suite B"));
        assert!(err("AES128:@SECLEVEL=4").contains("@SECLEVEL=4 rules out"));
    }

    #[test]
    fn names_and_bits_as_python_reports_them() {
        use CipherSuite as C;
        let rsa = openssl_name(C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
        assert_eq!(rsa, Some(("ECDHE-RSA-AES128-GCM-SHA256", 128)));
        let aes = openssl_name(C::TLS13_AES_256_GCM_SHA384);
        assert_eq!(aes, Some(("TLS_AES_256_GCM_SHA384", 256)));
        let chacha = openssl_name(C::TLS13_CHACHA20_POLY1305_SHA256);
        assert_eq!(chacha, Some(("TLS_CHACHA20_POLY1305_SHA256", 256)));
        assert_eq!(openssl_name(C::TLS_RSA_WITH_AES_128_CBC_SHA), None);
        // Every suite the provider offers has a name, so `cipher()` is never left empty.
        for s in rustls::crypto::ring::ALL_CIPHER_SUITES {
            assert!(openssl_name(s.suite()).is_some(), "{:?}", s.suite());
        }
    }
}
