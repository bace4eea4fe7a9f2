//! Frame headers (RFC 6455 section 5.2): parsing a client's, writing the server's, and masking.
//!
//! Owns: the byte layout of a header and every rule that can be judged from the header alone
//! (reserved bits and opcodes, masking, minimal lengths, control frame limits, fragmentation
//! order, the size limit). It must not look at payloads: the codec streams those.

use crate::close::ProtocolError;

/// The largest payload a control frame may carry.
pub(crate) const MAX_CONTROL_PAYLOAD: usize = 125;
/// Two fixed bytes, eight of extended length, four of mask.
pub(crate) const MAX_HEADER_LEN: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    pub(crate) fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A client frame's header, fully read and accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub fin: bool,
    /// The per-message compressed bit; only ever set on the first frame of a data message.
    pub rsv1: bool,
    pub opcode: OpCode,
    pub mask: [u8; 4],
    pub len: u64,
    /// Bytes the header took on the wire.
    pub size: usize,
}

/// What the header rules depend on besides the header's own bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context {
    /// permessage-deflate was negotiated, so RSV1 may mark a compressed message.
    pub deflate: bool,
    /// A fragmented data message is open, waiting for continuation frames.
    pub message_open: bool,
    /// The open message is compressed, so its wire size says nothing of its real size.
    pub message_compressed: bool,
    /// Payload bytes of the open message received so far.
    pub message_len: u64,
    /// `max_message_size`; 0 is unlimited.
    pub limit: u64,
}

/// Reads a header from the start of `buf`.
///
/// Each field is judged as soon as its bytes are there, in wire order, so the same bytes give
/// the same verdict however they were cut, and a bad first byte is refused without waiting for
/// the rest. `Ok(None)` means the header is not complete yet.
pub(crate) fn parse_header(buf: &[u8], cx: &Context) -> Result<Option<Header>, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 {
        return Err(ProtocolError::protocol("reserved bits set"));
    }
    let Some(opcode) = OpCode::from_bits(b0 & 0x0F) else {
        return Err(ProtocolError::protocol("reserved opcode"));
    };
    if rsv1 {
        if !cx.deflate {
            return Err(ProtocolError::protocol(
                "RSV1 set without permessage-deflate",
            ));
        }
        if opcode.is_control() {
            return Err(ProtocolError::protocol("compressed control frame"));
        }
        if opcode == OpCode::Continuation {
            return Err(ProtocolError::protocol("RSV1 set on a continuation frame"));
        }
    }
    if opcode.is_control() && !fin {
        return Err(ProtocolError::protocol("fragmented control frame"));
    }
    match opcode {
        OpCode::Continuation if !cx.message_open => {
            return Err(ProtocolError::protocol(
                "continuation frame without a message",
            ));
        }
        OpCode::Text | OpCode::Binary if cx.message_open => {
            return Err(ProtocolError::protocol(
                "new message inside a fragmented one",
            ));
        }
        _ => {}
    }

    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    if b1 & 0x80 == 0 {
        return Err(ProtocolError::protocol("unmasked client frame"));
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::protocol(
            "control frame payload over 125 bytes",
        ));
    }
    let (len, at) = match len7 {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u16::from_be_bytes([bytes[0], bytes[1]]);
            if len < 126 {
                return Err(ProtocolError::protocol("non-minimal frame length"));
            }
            (u64::from(len), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(ProtocolError::protocol("frame length with the top bit set"));
            }
            if len <= u64::from(u16::MAX) {
                return Err(ProtocolError::protocol("non-minimal frame length"));
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    // Judged before the mask and payload arrive, so a huge declared length costs nothing.
    if cx.limit > 0 && !opcode.is_control() {
        let compressed = if opcode == OpCode::Continuation {
            cx.message_compressed
        } else {
            rsv1
        };
        let so_far = if opcode == OpCode::Continuation {
            cx.message_len
        } else {
            0
        };
        // A compressed message's wire size is not its size; the inflater checks that one.
        if len > cx.limit || (!compressed && so_far.saturating_add(len) > cx.limit) {
            return Err(ProtocolError::too_big("message too big"));
        }
    }
    let Some(bytes) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mut mask = [0; 4];
    mask.copy_from_slice(bytes);
    Ok(Some(Header {
        fin,
        rsv1,
        opcode,
        mask,
        len,
        size: at + 4,
    }))
}

/// Appends an unmasked, final frame's header: the server never masks and never fragments.
pub(crate) fn write_header(out: &mut Vec<u8>, opcode: OpCode, compressed: bool, len: usize) {
    let b0 = 0x80 | if compressed { 0x40 } else { 0 } | opcode.bits();
    if len < 126 {
        // The branch guarantees the length fits in seven bits.
        out.extend_from_slice(&[b0, len as u8]);
    } else if let Ok(len16) = u16::try_from(len) {
        out.extend_from_slice(&[b0, 126]);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.extend_from_slice(&[b0, 127]);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// XORs `data` with the mask, `offset` being how many payload bytes came before `data`.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    let mut key = mask;
    key.rotate_left((offset % 4) as usize);
    // Whole words first: payloads can be megabytes, and this is the only per-byte work.
    let word = u32::from_ne_bytes(key);
    let mut words = data.chunks_exact_mut(4);
    for chunk in &mut words {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, k) in words.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Context = Context {
        deflate: false,
        message_open: false,
        message_compressed: false,
        message_len: 0,
        limit: 0,
    };

    fn code(buf: &[u8], cx: &Context) -> Option<u16> {
        parse_header(buf, cx).err().map(|e| e.code)
    }

    #[test]
    fn short_header_with_mask() {
        let h = parse_header(&[0x81, 0x85, 1, 2, 3, 4], &OPEN)
            .unwrap()
            .unwrap();
        assert_eq!(
            h,
            Header {
                fin: true,
                rsv1: false,
                opcode: OpCode::Text,
                mask: [1, 2, 3, 4],
                len: 5,
                size: 6
            }
        );
        for cut in 0..6 {
            assert_eq!(
                parse_header(&[0x81, 0x85, 1, 2, 3, 4][..cut], &OPEN),
                Ok(None)
            );
        }
    }

    #[test]
    fn extended_lengths() {
        let h = parse_header(&[0x82, 0xFE, 0, 126, 0, 0, 0, 0], &OPEN);
        assert_eq!(h.unwrap().unwrap().len, 126);
        let h = parse_header(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9], &OPEN);
        let h = h.unwrap().unwrap();
        assert_eq!((h.len, h.size, h.mask), (65536, 14, [9; 4]));
    }

    #[test]
    fn header_rule_violations() {
        assert_eq!(code(&[0x83], &OPEN), Some(1002), "reserved opcode");
        assert_eq!(code(&[0x8B], &OPEN), Some(1002), "reserved control opcode");
        assert_eq!(code(&[0xA1], &OPEN), Some(1002), "RSV2");
        assert_eq!(code(&[0x91], &OPEN), Some(1002), "RSV3");
        assert_eq!(code(&[0xC1], &OPEN), Some(1002), "RSV1 without deflate");
        let deflate = Context {
            deflate: true,
            ..OPEN
        };
        assert_eq!(code(&[0xC1, 0x80], &deflate), None, "RSV1 on a text frame");
        assert_eq!(code(&[0xC9], &deflate), Some(1002), "RSV1 on ping");
        let open_deflate = Context {
            message_open: true,
            ..deflate
        };
        assert_eq!(
            code(&[0xC0], &open_deflate),
            Some(1002),
            "RSV1 on continuation"
        );
        assert_eq!(code(&[0x09], &OPEN), Some(1002), "fragmented ping");
        assert_eq!(code(&[0x80], &OPEN), Some(1002), "continuation, no message");
        let open = Context {
            message_open: true,
            ..OPEN
        };
        assert_eq!(code(&[0x82], &open), Some(1002), "binary inside a message");
        assert_eq!(code(&[0x89, 0x80], &open), None, "ping inside a message");
        assert_eq!(code(&[0x81, 0x05], &OPEN), Some(1002), "unmasked");
        assert_eq!(code(&[0x89, 0xFE], &OPEN), Some(1002), "control over 125");
        assert_eq!(
            code(&[0x81, 0xFE, 0, 125], &OPEN),
            Some(1002),
            "16-bit for 125"
        );
        let long = [0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];
        assert_eq!(code(&long, &OPEN), Some(1002), "64-bit for 65535");
        let top = [0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(code(&top, &OPEN), Some(1002), "top bit");
    }

    #[test]
    fn size_limit_from_the_header() {
        let limited = Context { limit: 100, ..OPEN };
        assert_eq!(code(&[0x82, 0xE4], &limited), None, "100 fits");
        assert_eq!(code(&[0x82, 0xE5], &limited), Some(1009), "101 does not");
        let huge = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(code(&huge, &limited), Some(1009), "refused before the mask");
        let open = Context {
            message_open: true,
            message_len: 60,
            ..limited
        };
        assert_eq!(code(&[0x80, 0xA8], &open), None, "60 + 40");
        assert_eq!(code(&[0x80, 0xA9], &open), Some(1009), "60 + 41");
        let compressed = Context {
            message_compressed: true,
            ..open
        };
        assert_eq!(
            code(&[0x80, 0xA9], &compressed),
            None,
            "inflated size decides"
        );
        assert_eq!(code(&[0x89, 0xFD], &Context { limit: 1, ..OPEN }), None);
    }

    #[test]
    fn written_headers_use_the_shortest_length() {
        let mut out = Vec::new();
        write_header(&mut out, OpCode::Text, false, 125);
        assert_eq!(out, [0x81, 125]);
        out.clear();
        write_header(&mut out, OpCode::Binary, true, 126);
        assert_eq!(out, [0xC2, 126, 0, 126]);
        out.clear();
        write_header(&mut out, OpCode::Binary, false, 65536);
        assert_eq!(out, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn mask_resumes_at_any_offset() {
        let plain: Vec<u8> = (0..23).collect();
        let mask = [0x11, 0x22, 0x33, 0x44];
        let mut whole = plain.clone();
        apply_mask(&mut whole, mask, 0);
        for (i, b) in whole.iter().enumerate() {
            assert_eq!(*b, plain[i] ^ mask[i % 4]);
        }
        for cut in 0..plain.len() {
            let mut split = plain.clone();
            let (a, b) = split.split_at_mut(cut);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, cut as u64);
            assert_eq!(split, whole, "cut at {cut}");
        }
    }
}
