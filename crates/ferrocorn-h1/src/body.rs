//! Request body decoding: the incremental chunked decoder (Gunicorn 27's `ChunkedReader`, with
//! its trailer rules and end-of-stream errors) and a small wrapper over both framings.
//!
//! Decoders consume only their own bytes and stop right after the body, so pipelined requests
//! stay with the caller. This module does not decide framing (`framing`) and does no I/O.

use crate::chunk_line::{check_size_line_prefix, parse_size_line};
use crate::config::{HeaderMapPolicy, Limits, ParserConfig};
use crate::error::ParseError;
use crate::framing::BodyKind;
use crate::headers::{visible, walk_fields, FieldRules, FieldWalk};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Gathering a chunk-size line.
    SizeLine,
    /// Copying chunk data; this many bytes remain.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: gathering the trailer section.
    Trailers,
    Done,
}

/// An incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// The unfinished size line, data terminator or trailer section.
    pending: Vec<u8>,
    /// The trailer fields, judged once the section is complete.
    walk: FieldWalk,
    /// How much of an unfinished trailer section was already searched for bare LFs.
    scanned: usize,
    limits: Limits,
    strip_header_spaces: bool,
    permit_obsolete_folding: bool,
    header_map: HeaderMapPolicy,
}

const TRAILER_SECTION_LIMIT: &str = "limit request trailer section size";

impl ChunkedDecoder {
    pub fn new(cfg: &ParserConfig) -> Self {
        ChunkedDecoder {
            state: State::SizeLine,
            pending: Vec::new(),
            walk: FieldWalk::new("http"),
            scanned: 0,
            limits: cfg.limits(),
            strip_header_spaces: cfg.strip_header_spaces,
            permit_obsolete_folding: cfg.permit_obsolete_folding,
            header_map: cfg.header_map,
        }
    }

    /// Decodes from `input`, appending body bytes to `out`. Returns how many input bytes were
    /// consumed: all of them until the body ends, then nothing past the trailer section.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ParseError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok(pos),
                State::Data(remaining) => {
                    let available = input.len() - pos;
                    if available == 0 {
                        return Ok(pos);
                    }
                    let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
                    out.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::SizeLine => {
                    if !self.take_line(input, &mut pos) {
                        check_size_line_prefix(
                            visible(&self.pending, true),
                            self.pending.ends_with(b"\r"),
                            self.limits.field_size,
                        )?;
                        return Ok(pos);
                    }
                    let line = &self.pending[..self.pending.len() - 2];
                    let size = parse_size_line(line, self.limits.field_size)?;
                    self.pending.clear();
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::DataEnd => {
                    while self.pending.len() < 2 && pos < input.len() {
                        self.pending.push(input[pos]);
                        pos += 1;
                    }
                    // Gunicorn reads both bytes before comparing, and reports both; a first
                    // byte that is not CR is refused alone (same status), rather than waiting
                    // for a second byte that cannot mend it.
                    if self.pending.len() < 2 {
                        if self.pending.first().is_some_and(|&b| b != b'\r') {
                            return Err(ParseError::ChunkMissingTerminator(self.pending.clone()));
                        }
                        return Ok(pos);
                    }
                    if self.pending != b"\r\n" {
                        return Err(ParseError::ChunkMissingTerminator(self.pending.clone()));
                    }
                    self.pending.clear();
                    self.state = State::SizeLine;
                }
                State::Trailers => {
                    if !self.take_trailers(input, &mut pos) {
                        self.check_unfinished_trailers(self.pending.len())?;
                        self.scanned = self.pending.len();
                        return Ok(pos);
                    }
                    // The buffers Gunicorn examined before the end arrived, when it trickles in.
                    self.check_unfinished_trailers(self.pending.len() - 1)?;
                    self.finish_trailers()?;
                }
            }
        }
    }

    /// Moves bytes into `pending` up to and including the first CRLF; true once it is there.
    /// A bare LF stays inside the line, where the size checks refuse it.
    fn take_line(&mut self, input: &[u8], pos: &mut usize) -> bool {
        let start = *pos;
        let mut scan = start;
        while let Some(offset) = input[scan..].iter().position(|&b| b == b'\n') {
            let lf = scan + offset;
            let before = if lf > start {
                Some(input[lf - 1])
            } else {
                self.pending.last().copied()
            };
            if before == Some(b'\r') {
                self.pending.extend_from_slice(&input[start..=lf]);
                *pos = lf + 1;
                return true;
            }
            scan = lf + 1;
        }
        self.pending.extend_from_slice(&input[start..]);
        *pos = input.len();
        false
    }

    /// Moves bytes into `pending` until the trailer section ends (an immediate CRLF, or the
    /// first empty line); true once it has.
    fn take_trailers(&mut self, input: &[u8], pos: &mut usize) -> bool {
        while *pos < input.len() {
            self.pending.push(input[*pos]);
            *pos += 1;
            if self.pending == b"\r\n" || self.pending.ends_with(b"\r\n\r\n") {
                return true;
            }
        }
        false
    }

    fn trailer_rules(&self) -> FieldRules<'static> {
        FieldRules {
            strip_header_spaces: self.strip_header_spaces,
            permit_obsolete_folding: self.permit_obsolete_folding,
            header_map: self.header_map,
            limits: self.limits,
            from_trailer: true,
            version: (1, 1),
            secure_scheme_headers: &[],
            forwarder_headers: &[],
        }
    }

    fn finish_trailers(&mut self) -> Result<(), ParseError> {
        if self.pending.len() > 2 {
            let rules = self.trailer_rules();
            let section = &self.pending[..self.pending.len() - 4];
            walk_fields(section, true, &rules, &mut self.walk)?;
        }
        self.pending.clear();
        self.state = State::Done;
        Ok(())
    }

    /// Gunicorn's checks while a trailer section is unfinished, over its first `len` bytes:
    /// at most `max_buffer_headers` bytes, then no bare LF, applied as each byte arrives.
    ///
    /// The verdict is the one Gunicorn gives when the bytes trickle in one at a time, whichever
    /// way they really arrive: the first byte that breaks a rule decides, and fields are judged
    /// only once the section is complete. Judging whatever happened to be buffered instead would
    /// let the split decide between a bare LF, the size limit and a bad field.
    fn check_unfinished_trailers(&self, len: usize) -> Result<(), ParseError> {
        let max = self.limits.max_buffer_headers;
        let section = &self.pending[..len];
        // Bytes before `scanned` were searched by an earlier call and held no bare LF.
        let bare_lf = (self.scanned.min(len)..len)
            .find(|&i| section[i] == b'\n' && (i == 0 || section[i - 1] != b'\r'));
        match bare_lf {
            // The prefix ending at this LF was still within the size limit.
            Some(at) if at < max => Err(ParseError::InvalidHeader(
                "bare LF as line terminator".to_string(),
            )),
            _ if len > max => Err(ParseError::LimitRequestHeaders(TRAILER_SECTION_LIMIT)),
            _ => Ok(()),
        }
    }

    /// The body and its trailer section are complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields, `(UPPER-CASED name, value)`, once the body is done.
    pub fn trailers(&self) -> &[(String, String)] {
        if self.state == State::Done {
            &self.walk.fields
        } else {
            &[]
        }
    }

    /// The client closed the connection: the error Gunicorn raises at EOF in this state.
    pub fn finish_eof(&self) -> Result<(), ParseError> {
        match self.state {
            State::Done => Ok(()),
            State::SizeLine | State::Data(_) => Err(ParseError::NoMoreData(None)),
            State::DataEnd => Err(ParseError::ChunkMissingTerminator(self.pending.clone())),
            // RFC 9112 7.1.2: the last chunk must be followed by a terminated trailer section.
            State::Trailers => Err(ParseError::ChunkMissingTerminator(Vec::new())),
        }
    }
}

/// Decodes a request body of either framing.
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
}

impl BodyDecoder {
    pub fn new(kind: BodyKind, cfg: &ParserConfig) -> Self {
        match kind {
            BodyKind::Length(remaining) => BodyDecoder::Length { remaining },
            BodyKind::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new(cfg)),
        }
    }

    /// Appends body bytes from `input` to `out`; returns the input bytes consumed, never past
    /// the end of the body.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ParseError> {
        match self {
            BodyDecoder::Length { remaining } => {
                let take = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                out.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                Ok(take)
            }
            BodyDecoder::Chunked(decoder) => decoder.decode(input, out),
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Length { remaining } => *remaining == 0,
            BodyDecoder::Chunked(decoder) => decoder.is_done(),
        }
    }

    pub fn trailers(&self) -> &[(String, String)] {
        match self {
            BodyDecoder::Length { .. } => &[],
            BodyDecoder::Chunked(decoder) => decoder.trailers(),
        }
    }

    /// The client closed the connection. A short Content-Length body is not an error in
    /// Gunicorn (the application just reads fewer bytes); a chunked one is.
    pub fn finish_eof(&self) -> Result<(), ParseError> {
        match self {
            BodyDecoder::Length { .. } => Ok(()),
            BodyDecoder::Chunked(decoder) => decoder.finish_eof(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(wire: &[u8]) -> (Result<usize, ParseError>, Vec<u8>, ChunkedDecoder) {
        let mut d = ChunkedDecoder::new(&ParserConfig::default());
        let mut out = Vec::new();
        let r = d.decode(wire, &mut out);
        (r, out, d)
    }

    #[test]
    fn decodes_and_stops_at_the_end() {
        let wire = b"5\r\nhello\r\n6; a=b\r\n world\r\n0\r\nVary: *\r\n\r\nGET /";
        let (r, out, d) = decode_all(wire);
        assert_eq!(r, Ok(wire.len() - 5));
        assert_eq!(out, b"hello world");
        assert!(d.is_done());
        assert_eq!(d.trailers(), &[("VARY".to_string(), "*".to_string())]);
    }

    #[test]
    fn byte_at_a_time() {
        let wire = b"1e\r\nall your base are belong to us\r\n0\r\n\r\nX";
        let mut d = ChunkedDecoder::new(&ParserConfig::default());
        let mut out = Vec::new();
        let mut used = 0;
        for i in 0..wire.len() {
            used += d.decode(&wire[i..=i], &mut out).unwrap();
        }
        assert_eq!(used, wire.len() - 1);
        assert_eq!(out, b"all your base are belong to us");
    }

    #[test]
    fn eof_errors() {
        let (_, _, d) = decode_all(b"5\r\nhel");
        assert_eq!(d.finish_eof(), Err(ParseError::NoMoreData(None)));
        let (_, _, d) = decode_all(b"5\r\nhello\r");
        assert_eq!(
            d.finish_eof(),
            Err(ParseError::ChunkMissingTerminator(b"\r".to_vec()))
        );
        let (_, _, d) = decode_all(b"0\r\n");
        assert_eq!(
            d.finish_eof(),
            Err(ParseError::ChunkMissingTerminator(vec![]))
        );
    }

    /// Decodes one byte per call: the first error, else the bytes consumed.
    fn decode_bytewise(wire: &[u8], cfg: &ParserConfig) -> Result<usize, ParseError> {
        let mut d = ChunkedDecoder::new(cfg);
        let mut out = Vec::new();
        let mut used = 0;
        for b in wire {
            used += d.decode(std::slice::from_ref(b), &mut out)?;
        }
        Ok(used)
    }

    /// Whole and byte by byte must give the same error: found by the `chunked` fuzz target.
    fn assert_split_agrees(wire: &[u8], cfg: &ParserConfig, want: ParseError) {
        let mut d = ChunkedDecoder::new(cfg);
        assert_eq!(d.decode(wire, &mut Vec::new()), Err(want.clone()), "whole");
        assert_eq!(decode_bytewise(wire, cfg), Err(want), "byte by byte");
    }

    /// A whole size line gets Gunicorn's error (the bare CR in the extension is judged first);
    /// one arriving byte by byte is refused on its first byte, which no continuation can make
    /// valid, with the same status.
    #[test]
    fn size_line_verdict_does_not_depend_on_the_split() {
        let wire = b"\0;ext=val\rue\r\nhello\r\n0\r\n\r\n";
        let cfg = ParserConfig::default();
        let mut d = ChunkedDecoder::new(&cfg);
        assert_eq!(
            d.decode(wire, &mut Vec::new()),
            Err(ParseError::InvalidChunkExtension("bare CR not allowed"))
        );
        let mut d = ChunkedDecoder::new(&cfg);
        assert_eq!(
            d.decode(b"\0", &mut Vec::new()),
            Err(ParseError::InvalidChunkSize(b"\0".to_vec()))
        );
        assert_eq!(
            decode_bytewise(wire, &cfg).map_err(|e| e.status()),
            Err(400)
        );
    }

    /// A forbidden trailer name used to be refused as soon as its colon arrived, while the whole
    /// section is refused first for the bare LF further on.
    #[test]
    fn trailer_error_does_not_depend_on_the_split() {
        assert_split_agrees(
            b"5\r\nhello\r\n0\r\nContent-LengTh: 99\x0c\n\r\n",
            &ParserConfig::default(),
            ParseError::InvalidHeader("bare LF as line terminator".into()),
        );
        // A complete section over max_buffer_headers (1 * (3 + 2) + 4 = 9 bytes) is refused for
        // its size, as it is when it trickles in, not for its first field.
        let small = ParserConfig {
            limit_request_fields: 1,
            limit_request_field_size: 3,
            ..ParserConfig::default()
        };
        assert_split_agrees(
            b"0\r\nAAAAAAAAAA: b\r\n\r\n",
            &small,
            ParseError::LimitRequestHeaders(TRAILER_SECTION_LIMIT),
        );
        // A bare LF within the first 9 bytes comes before the size limit is passed.
        assert_split_agrees(
            b"0\r\nA\nAAAAAAAAAA: b\r\n\r\n",
            &small,
            ParseError::InvalidHeader("bare LF as line terminator".into()),
        );
    }

    /// A bad chunk terminator is reported with both of its bytes however they arrive.
    #[test]
    fn terminator_verdict_does_not_depend_on_the_split() {
        let cfg = ParserConfig::default();
        let (r, _, _) = decode_all(b"5\r\nhelloxy");
        assert_eq!(r, Err(ParseError::ChunkMissingTerminator(b"xy".to_vec())));
        // The first wrong byte is enough.
        let (r, _, _) = decode_all(b"5\r\nhellox");
        assert_eq!(r, Err(ParseError::ChunkMissingTerminator(b"x".to_vec())));
        assert_eq!(
            decode_bytewise(b"5\r\nhelloxy", &cfg).map_err(|e| e.status()),
            Err(400)
        );
        // A CR may still be followed by LF.
        assert_eq!(decode_bytewise(b"5\r\nhello\r", &cfg), Ok(9));
    }

    #[test]
    fn terminator_and_trailer_errors() {
        let (r, _, _) = decode_all(b"5\r\nhelloxy");
        assert_eq!(r, Err(ParseError::ChunkMissingTerminator(b"xy".to_vec())));
        let (r, _, _) = decode_all(b"0\r\nHost: a\r\n\r\n");
        assert_eq!(r, Err(ParseError::InvalidHeaderName("HOST".into())));
        let (r, _, _) = decode_all(b"0\r\nX: a\nY");
        assert_eq!(
            r,
            Err(ParseError::InvalidHeader(
                "bare LF as line terminator".into()
            ))
        );
    }
}
