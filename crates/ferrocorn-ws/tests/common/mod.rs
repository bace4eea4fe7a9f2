//! What the integration tests share: building client frames as a browser would (masked,
//! optionally compressed with flate2 directly, not through the crate) and running a codec over
//! a wire cut in several ways, insisting every cut gives the same outcome.
#![allow(dead_code)]

use ferrocorn_ws::{Event, ProtocolError, WsCodec, WsConfig};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CONT: u8 = 0x0;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame with the shortest length encoding.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_bits(u8::from(fin) << 7 | opcode, payload)
}

/// A masked client frame whose first byte is given whole (FIN, RSV bits, opcode).
pub fn frame_bits(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A whole message in one final frame.
pub fn msg(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, opcode, payload)
}

pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// The client's compressor: raw DEFLATE, sync flush, tail removed (RFC 7692 section 7.2.1).
pub fn deflate(z: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut rest = data;
    loop {
        let before = z.total_in();
        z.compress_vec(rest, &mut out, FlushCompress::Sync).unwrap();
        rest = &rest[(z.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

pub fn compressor() -> Compress {
    Compress::new(Compression::default(), false)
}

/// The client's decompressor for one server message payload.
pub fn inflate(z: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1024);
    let mut rest = &input[..];
    loop {
        let before = z.total_in();
        z.decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .unwrap();
        rest = &rest[(z.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// Splits a server frame into (first byte, payload); panics if it is masked or malformed.
pub fn server_frame(bytes: &[u8]) -> (u8, &[u8]) {
    assert_eq!(bytes[1] & 0x80, 0, "server frames are unmasked");
    let (len, at) = match bytes[1] {
        126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 => {
            let mut be = [0; 8];
            be.copy_from_slice(&bytes[2..10]);
            (u64::from_be_bytes(be) as usize, 10)
        }
        n => (n as usize, 2),
    };
    assert_eq!(bytes.len(), at + len, "exactly one frame");
    (bytes[0], &bytes[at..])
}

/// Everything a run produced: the events, then the error that ended it, if any.
pub type Outcome = (Vec<Event>, Option<ProtocolError>);

/// Feeds `wire` in pieces ending at `ends`, draining events after each piece.
pub fn run_pieces(config: WsConfig, wire: &[u8], ends: &[usize]) -> Outcome {
    let mut codec = WsCodec::new(config);
    let mut events = Vec::new();
    let mut from = 0;
    for &end in ends {
        codec.feed(&wire[from..end]);
        from = end;
        loop {
            match codec.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(codec.next_event(), Err(e), "errors repeat");
                    return (events, Some(e));
                }
            }
        }
    }
    (events, None)
}

/// Runs `wire` whole, one byte at a time, in halves, and in pieces of 3 and 7 bytes, asserts
/// all agree, and returns the outcome.
pub fn run(config: WsConfig, wire: &[u8]) -> Outcome {
    let len = wire.len();
    let whole = run_pieces(config, wire, &[len]);
    let cuts: [Vec<usize>; 4] = [
        (1..=len).collect(),
        vec![len / 2, len],
        (1..=len).filter(|i| i % 3 == 0 || *i == len).collect(),
        (1..=len).filter(|i| i % 7 == 0 || *i == len).collect(),
    ];
    for ends in cuts {
        assert_eq!(run_pieces(config, wire, &ends), whole, "cut at {ends:?}");
    }
    whole
}

/// The close code a wire fails with (after any events).
pub fn error_code(config: WsConfig, wire: &[u8]) -> Option<u16> {
    run(config, wire).1.map(|e| e.code)
}

pub fn unlimited() -> WsConfig {
    WsConfig {
        max_message_size: 0,
        deflate: None,
    }
}

pub fn limited(max: usize) -> WsConfig {
    WsConfig {
        max_message_size: max,
        deflate: None,
    }
}

pub fn text(s: &str) -> Event {
    Event::Text(s.to_owned())
}
