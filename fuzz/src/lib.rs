//! The input format shared by the fuzz targets: a five-byte header chooses the parser settings
//! and how the wire bytes are cut into pieces; everything after it is the wire.
//!
//! Owns only that format (`corpus.py` writes the same layout when it seeds the corpus) and the
//! piece cutting. The properties each target checks live in `fuzz_targets/`; nothing here may
//! call the parser, so a bug in this file cannot hide one there.
//!
//! Layout:
//! - byte 0, settings bits: 0 `permit_unconventional_http_method`, 1
//!   `permit_unconventional_http_version`, 2 `casefold_http_method`, 3 `permit_obsolete_folding`,
//!   4 `strip_header_spaces`, 5-6 `header_map` (0 drop, 1 refuse, 2 dangerous, 3 drop), 7 the
//!   peer is trusted.
//! - byte 1, `limit_request_line`: 0 is the default 4094, 1 is 0 (unlimited), 2 is -1, 3 is 8200,
//!   any other value is itself.
//! - byte 2, `limit_request_fields`: 0 is the default 100, 255 is 0, any other value is itself.
//! - byte 3, `limit_request_field_size`: 0 is the default 8190, 1 is 0, 2 is 8210, any other value
//!   is itself.
//! - byte 4, cutting: bits 0-1 the mode (0 one byte at a time, 1 after every LF, 2 the first byte
//!   alone then the rest, 3 pseudo-random sizes), bits 2-6 the largest random piece, bit 7 the
//!   listener is TLS.

use ferrocorn_h1::{HeaderMapPolicy, ParserConfig};

/// Bytes before the wire.
pub const HEADER_LEN: usize = 5;

/// One decoded fuzz input.
#[derive(Debug, Clone)]
pub struct FuzzInput<'a> {
    pub cfg: ParserConfig,
    pub peer_trusted: bool,
    pub wire: &'a [u8],
    cut: u8,
}

fn header_map(bits: u8) -> HeaderMapPolicy {
    match bits & 0b11 {
        1 => HeaderMapPolicy::Refuse,
        2 => HeaderMapPolicy::Dangerous,
        _ => HeaderMapPolicy::Drop,
    }
}

impl<'a> FuzzInput<'a> {
    /// `None` when the input is too short to hold the header.
    pub fn decode(data: &'a [u8]) -> Option<Self> {
        let (&[flags, line, fields, field_size, cut], wire) = data.split_first_chunk()?;
        let cfg = ParserConfig {
            limit_request_line: match line {
                0 => 4094,
                1 => 0,
                2 => -1,
                3 => 8200,
                n => i64::from(n),
            },
            limit_request_fields: match fields {
                0 => 100,
                255 => 0,
                n => i64::from(n),
            },
            limit_request_field_size: match field_size {
                0 => 8190,
                1 => 0,
                2 => 8210,
                n => i64::from(n),
            },
            permit_unconventional_http_method: flags & 1 != 0,
            permit_unconventional_http_version: flags & 2 != 0,
            casefold_http_method: flags & 4 != 0,
            permit_obsolete_folding: flags & 8 != 0,
            strip_header_spaces: flags & 16 != 0,
            header_map: header_map(flags >> 5),
            is_ssl: cut & 0x80 != 0,
            ..ParserConfig::default()
        };
        Some(FuzzInput {
            cfg,
            peer_trusted: flags & 0x80 != 0,
            wire,
            cut,
        })
    }

    /// Where the wire is cut: the end offset of each piece, increasing, the last one being the
    /// wire's length. Every piece holds at least one byte; an empty wire has no pieces.
    pub fn cut_points(&self) -> Vec<usize> {
        cut_points(self.wire, self.cut)
    }
}

/// See [`FuzzInput::cut_points`]; `cut` is header byte 4.
pub fn cut_points(wire: &[u8], cut: u8) -> Vec<usize> {
    let len = wire.len();
    if len == 0 {
        return Vec::new();
    }
    let mut ends: Vec<usize> = match cut & 0b11 {
        0 => (1..=len).collect(),
        1 => wire
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(at, _)| at + 1)
            .collect(),
        2 => vec![1],
        _ => random_ends(len, cut),
    };
    if ends.last() != Some(&len) {
        ends.push(len);
    }
    ends
}

/// Piece sizes from a xorshift generator seeded by the cut byte and the wire length, so a
/// mutation of the wire's content keeps its cuts and the fuzzer can attribute a new path to it.
fn random_ends(len: usize, cut: u8) -> Vec<usize> {
    let param = usize::from((cut >> 2) & 0x1f);
    // Small pieces (1..=16) stress resumption; larger ones (up to 512 KiB) reach the fast paths.
    let largest = if param < 16 {
        param + 1
    } else {
        1 << (param - 12)
    };
    let mut state = (u64::from(cut) << 32) ^ (len as u64) ^ 0x9e37_79b9_7f4a_7c15;
    let mut ends = Vec::new();
    let mut at = 0;
    while at < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = (state % largest as u64) as usize + 1;
        at = (at + size).min(len);
        ends.push(at);
    }
    ends
}
