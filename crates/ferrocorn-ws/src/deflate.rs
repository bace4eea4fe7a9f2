//! permessage-deflate's data path (RFC 7692 section 7.2): compressing the server's messages and
//! inflating the client's, with the size limit enforced while inflating.
//!
//! Owns: the DEFLATE streams, their context takeover resets and the `00 00 ff ff` tail. It must
//! not parse frames or check UTF-8; negotiation lives in `handshake::extension`.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::close::ProtocolError;

/// What a sync flush ends with, removed by the sender and put back by the receiver.
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];
/// How much inflated output one call produces at most before the limit is checked again.
const SCRATCH: usize = 16 * 1024;

/// The server's compressor.
pub(crate) struct Deflater {
    z: Compress,
    /// `server_no_context_takeover`: every message starts from an empty window.
    reset_each: bool,
}

impl Deflater {
    pub(crate) fn new(no_context_takeover: bool) -> Self {
        Deflater {
            z: Compress::new(Compression::default(), false),
            reset_each: no_context_takeover,
        }
    }

    /// Appends `data` compressed as one message's payload, the sync flush tail removed.
    ///
    /// Returns false, with `out` as it was and a fresh compressor, if the compressor failed; the
    /// caller then sends the message uncompressed, which the RFC allows for any message. A fresh
    /// compressor is safe with context takeover too: it only forgets what the peer still knows.
    pub(crate) fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let ok = self.compress_into(data, out) && out[start..].ends_with(&TAIL);
        if ok {
            out.truncate(out.len() - TAIL.len());
        } else {
            out.truncate(start);
        }
        if self.reset_each || !ok {
            self.z.reset();
        }
        ok
    }

    fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> bool {
        let mut rest = data;
        loop {
            // Room for the whole input plus block overhead usually needs a single call.
            out.reserve(rest.len() + 64);
            let before = self.z.total_in();
            if self.z.compress_vec(rest, out, FlushCompress::Sync).is_err() {
                return false;
            }
            rest = &rest[(self.z.total_in() - before) as usize..];
            // A flush is complete once the compressor stops short of filling the output.
            if rest.is_empty() && out.len() < out.capacity() {
                return true;
            }
        }
    }
}

/// The decompressor for the client's messages.
pub(crate) struct Inflater {
    z: Decompress,
    /// `client_no_context_takeover`: the client starts every message from an empty window.
    reset_each: bool,
    /// The stream ended with a BFINAL block; the rest of this message's bytes are ignored, as a
    /// DEFLATE decoder ignores what follows a final block.
    ended: bool,
    scratch: Box<[u8]>,
}

impl Inflater {
    pub(crate) fn new(no_context_takeover: bool) -> Self {
        Inflater {
            z: Decompress::new(false),
            reset_each: no_context_takeover,
            ended: false,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
        }
    }

    /// Inflates more of the current message's payload onto `msg`.
    ///
    /// `msg` never grows past `limit + 1` bytes (`limit` 0 is unlimited): one byte over is how
    /// a message is known to be too big, and a bomb stops there. On any error the bytes written
    /// so far are already in `msg`, so the caller can judge them (UTF-8) before the error,
    /// whatever the pieces the payload arrived in.
    pub(crate) fn inflate(
        &mut self,
        mut input: &[u8],
        msg: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        while !self.ended {
            let room = if limit == 0 {
                SCRATCH
            } else {
                (limit + 1).saturating_sub(msg.len()).min(SCRATCH)
            };
            let (in_before, out_before) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress(input, &mut self.scratch[..room], FlushDecompress::None);
            let used = (self.z.total_in() - in_before) as usize;
            let wrote = (self.z.total_out() - out_before) as usize;
            input = &input[used..];
            msg.extend_from_slice(&self.scratch[..wrote]);
            if limit > 0 && msg.len() > limit {
                return Err(ProtocolError::too_big("message too big"));
            }
            match status {
                Err(_) => return Err(ProtocolError::protocol("invalid compressed data")),
                Ok(Status::StreamEnd) => self.ended = true,
                Ok(_) if wrote < room && input.is_empty() => break,
                // No progress with input and room left would loop forever; miniz never does
                // this on a live stream, so it can only be a broken one.
                Ok(_) if used == 0 && wrote == 0 => {
                    return Err(ProtocolError::protocol("invalid compressed data"));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Ends the current message: inflates the tail the sender removed, then resets the stream
    /// if the client does not keep its window or its stream ended.
    pub(crate) fn finish(&mut self, msg: &mut Vec<u8>, limit: usize) -> Result<(), ProtocolError> {
        let result = self.inflate(&TAIL, msg, limit);
        if self.reset_each || self.ended {
            self.z.reset(false);
            self.ended = false;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(d: &mut Deflater, i: &mut Inflater, data: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        assert!(d.compress(data, &mut wire));
        let mut msg = Vec::new();
        i.inflate(&wire, &mut msg, 0).unwrap();
        i.finish(&mut msg, 0).unwrap();
        msg
    }

    #[test]
    fn hello_compresses_as_in_rfc_7692() {
        let mut d = Deflater::new(false);
        let mut wire = Vec::new();
        assert!(d.compress(b"Hello", &mut wire));
        let mut i = Inflater::new(false);
        let mut msg = Vec::new();
        i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut msg, 0)
            .unwrap();
        i.finish(&mut msg, 0).unwrap();
        assert_eq!(msg, b"Hello");
        // Context taken over: the second "Hello" is a back-reference, shorter than the first.
        let mut again = Vec::new();
        assert!(d.compress(b"Hello", &mut again));
        assert!(again.len() < wire.len(), "{again:02x?} vs {wire:02x?}");
    }

    #[test]
    fn round_trips_with_and_without_takeover() {
        for reset in [false, true] {
            let (mut d, mut i) = (Deflater::new(reset), Inflater::new(reset));
            for msg in [&b""[..], b"a", b"hello hello hello", &[7u8; 100_000]] {
                assert_eq!(round_trip(&mut d, &mut i, msg), msg);
            }
        }
    }

    #[test]
    fn bomb_stops_one_byte_over_the_limit() {
        let mut d = Deflater::new(false);
        let mut wire = Vec::new();
        assert!(d.compress(&vec![0u8; 10_000_000], &mut wire));
        assert!(wire.len() < 20_000);
        let mut i = Inflater::new(false);
        let mut msg = Vec::new();
        let err = i.inflate(&wire, &mut msg, 1000).unwrap_err();
        assert_eq!(err.code, 1009);
        assert_eq!(msg.len(), 1001);
    }

    #[test]
    fn corrupt_stream_is_a_protocol_error() {
        let mut i = Inflater::new(false);
        let mut msg = Vec::new();
        // Block type 3 does not exist.
        assert_eq!(i.inflate(&[0xff], &mut msg, 0).unwrap_err().code, 1002);
    }

    #[test]
    fn bytes_after_a_final_block_are_ignored_and_the_stream_restarts() {
        // RFC 7692 section 7.2.3.4: "Hello" in a BFINAL block, then padding.
        let mut i = Inflater::new(false);
        let mut msg = Vec::new();
        let wire = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        i.inflate(&wire, &mut msg, 0).unwrap();
        i.finish(&mut msg, 0).unwrap();
        assert_eq!(msg, b"Hello");
        msg.clear();
        i.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut msg, 0)
            .unwrap();
        i.finish(&mut msg, 0).unwrap();
        assert_eq!(msg, b"Hello");
    }
}
